"""gRPC errors map to raylite's tree in one place, keeping the gRPC view."""
from __future__ import annotations

import grpc

from raylite import exceptions as exc
from raylite.protocol.errors import to_raylite_error


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details="boom"):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_unreachable_is_system_error_and_still_rpc_error():
    err = to_raylite_error(_FakeRpcError(grpc.StatusCode.UNAVAILABLE), "Seal")
    assert isinstance(err, exc.RaySystemError) and isinstance(err, grpc.RpcError)
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "Seal" in str(err)


def test_auth_and_deadline():
    assert isinstance(to_raylite_error(_FakeRpcError(grpc.StatusCode.UNAUTHENTICATED), "x"),
                      exc.AuthenticationError)
    err = to_raylite_error(_FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED), "x")
    assert isinstance(err, exc.RaySystemError) and isinstance(err, TimeoutError)


def test_already_mapped_is_unchanged():
    err = to_raylite_error(_FakeRpcError(grpc.StatusCode.INTERNAL), "x")
    assert to_raylite_error(err, "y") is err
