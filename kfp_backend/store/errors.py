"""Storage-level failures that services translate into API errors."""


class DuplicateKeyError(Exception):
    """A unique constraint refused the write (e.g. a name already taken)."""


class MissingReferenceError(Exception):
    """A foreign key refused the write: the row it refers to is gone (deleted meanwhile)."""


class ValueRefusedError(Exception):
    """The database refused a value (SQLSTATE class 22: a NUL character PostgreSQL text cannot hold, a
    number out of a column's range...): the caller's input, not a fault of ours."""


class WriteConflictError(Exception):
    """The database ended the transaction to break a deadlock between writers of the same rows: nothing was
    written, and trying again may succeed."""
