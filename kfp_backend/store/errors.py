"""Storage-level failures that services translate into API errors."""


class DuplicateKeyError(Exception):
    """A unique constraint refused the write (e.g. a name already taken)."""
