"""The error family services raise. HTTP mapping happens once, in kfp_backend.api.errors.

Each error carries the gRPC code the real server would use, the user-facing (external) message and the
internal context chain that the real server puts in `error`/`message` ("outer: inner: leaf").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class ApiError(Exception):
    """A service error: each kind names its gRPC code and the prefix of its internal message's leaf as class
    keywords (`class NotFound(ApiError, grpc_code=5, leaf_prefix=...)`)."""

    grpc_code = 2  # Unknown
    leaf_prefix = ""

    def __init_subclass__(cls, *, grpc_code: int | None = None, leaf_prefix: str | None = None) -> None:
        super().__init_subclass__()
        if grpc_code is not None:
            cls.grpc_code = grpc_code
        if leaf_prefix is not None:
            cls.leaf_prefix = leaf_prefix

    def __init__(self, message: str, *, internal: str | None = None) -> None:
        super().__init__(message)
        self.external_message = message
        self.internal_message = internal if internal is not None else self.leaf_prefix + message

    def wrap(self, context: str) -> ApiError:
        """Prefix this error's internal chain with one more layer of context, as upstream does."""
        self.internal_message = f"{context}: {self.internal_message}"
        return self

    def __str__(self) -> str:
        return self.internal_message


class InvalidArgument(ApiError, grpc_code=3, leaf_prefix="Invalid input error: "):
    pass


class EmptyNamespace(InvalidArgument):
    """Multi-user mode: a call that names no namespace where it must (the v2beta1 API words it as upstream's
    v2 server does, see api/v2/multi_user_errors.py)."""


class NoExperiment(InvalidArgument):
    """Multi-user mode: a new run or recurring run that names no experiment (the v2beta1 API words it as
    upstream's v2 server does)."""


class ValueRefused(InvalidArgument):
    """A value of the request the database refused (see services/unit_of_work.py): the caller's input, not a
    fault. Its message names no operation: the operations' contexts do not wrap it."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The database cannot store a value of the request: {reason}")

    def wrap(self, context: str) -> ApiError:
        return self


class NotFound(ApiError, grpc_code=5, leaf_prefix="ResourceNotFoundError: "):
    @classmethod
    def resource(cls, kind: str, resource_id: str) -> NotFound:
        return cls(f"{kind} {resource_id} not found.")


class AlreadyExists(ApiError, grpc_code=6, leaf_prefix="Already exist error: "):
    pass


class PermissionDenied(ApiError, grpc_code=7, leaf_prefix="PermissionDenied: "):
    pass


class NamespaceDenied(PermissionDenied):
    """Multi-user mode: the caller may not `verb` `resource` in `namespace` (authorization.permission_denied).
    `leaf` is the innermost internal message, which each API wraps in its own contexts."""

    def __init__(self, message: str, *, leaf: str, namespace: str, resource: str, verb: str) -> None:
        super().__init__(message, internal=leaf)
        self.leaf = leaf
        self.namespace = namespace
        self.resource = resource
        self.verb = verb


class FailedPrecondition(ApiError, grpc_code=9, leaf_prefix="FailedPreconditionError: "):
    pass


class Aborted(ApiError, grpc_code=10, leaf_prefix="BadRequestError: "):
    """Upstream's BadRequestError: a request that conflicts with the resource's current state (HTTP 409)."""


class IdempotencyKeyInUse(ApiError, grpc_code=10, leaf_prefix="Idempotency key conflict: "):
    """An `Idempotency-Key` whose first request is still being answered (HTTP 409, as Aborted)."""


class IdempotencyKeyReused(ApiError, grpc_code=3, leaf_prefix="Idempotency key reused: "):
    """An `Idempotency-Key` sent again with another request than its first (HTTP 422: the API maps this kind
    itself, as no gRPC code means 422)."""


class Unauthenticated(ApiError, grpc_code=16, leaf_prefix="Unauthenticated: "):
    pass


class Internal(ApiError, grpc_code=13, leaf_prefix="InternalServerError: "):
    def __init__(self, detail: str) -> None:
        super().__init__("Internal Server Error", internal=self.leaf_prefix + detail)


@contextmanager
def error_context(message: str) -> Iterator[None]:
    """Prefix the internal chain of any ApiError raised inside with `message`, as upstream wraps errors."""
    try:
        yield
    except ApiError as exc:
        raise exc.wrap(message) from None
