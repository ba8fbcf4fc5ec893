"""gRPC errors become raylite errors here, and only here.

``to_raylite_error`` names the failure in raylite's tree. The exception it returns is
also a grpc.RpcError (with the original code() and details()), so runtime code that
handles transport failures by catching grpc.RpcError keeps working, while a failure
that escapes to user code is a RayliteError and never a raw _InactiveRpcError.
"""
from __future__ import annotations

import grpc

from raylite import exceptions as exc

# Codes that mean the peer process is gone or unreachable, not that it refused.
UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                         grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})


class _MappedRpcError:
    """Mixin keeping the gRPC view (code, details) of a mapped error."""

    def __init__(self, message: str, code, details: str):
        super().__init__(message)  # type: ignore[call-arg]  # the exception it is mixed into
        self._code = code
        self._details = details

    def code(self):
        return self._code

    def details(self) -> str:
        return self._details


class RpcSystemError(_MappedRpcError, exc.RaySystemError, grpc.RpcError):
    """A raylite component could not be reached or failed a call."""


class RpcAuthenticationError(_MappedRpcError, exc.AuthenticationError, grpc.RpcError):
    """A raylite component refused our cluster token."""


class RpcTimeoutError(_MappedRpcError, exc.RaySystemError, TimeoutError, grpc.RpcError):
    """A call to a raylite component ran past its deadline."""


def _code_and_details(err: grpc.RpcError) -> tuple:
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    return code, details or ""


def to_raylite_error(err: grpc.RpcError, what: str) -> exc.RayliteError:
    """The raylite exception for ``err``, raised while doing ``what`` (e.g. "Seal").
    Already-mapped errors come back unchanged."""
    if isinstance(err, exc.RayliteError):
        return err
    code, details = _code_and_details(err)
    name = getattr(code, "name", str(code))
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return RpcAuthenticationError(f"{what} was refused: wrong or missing cluster token "
                                      f"({name}: {details})", code, details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return RpcTimeoutError(f"{what} timed out ({name}: {details})", code, details)
    if code in UNREACHABLE:
        return RpcSystemError(f"{what} failed: the raylite process it called is gone or "
                              f"unreachable ({name}: {details})", code, details)
    return RpcSystemError(f"{what} failed ({name}: {details})", code, details)


def is_unavailable(err: BaseException) -> bool:
    """True when a gRPC error means the peer process is gone or unreachable."""
    if isinstance(err, grpc.RpcError):
        code = err.code() if hasattr(err, "code") else None
        return code in UNREACHABLE
    return False


def describe(error) -> str:
    """A short text for a broken-connection cause (None: the peer closed)."""
    if error is None:
        return "the connection closed"
    if isinstance(error, grpc.RpcError):
        code, details = _code_and_details(error)
        return f"{getattr(code, 'name', code)}: {details}"
    return str(error)
