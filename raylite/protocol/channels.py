"""gRPC plumbing shared by every process: authenticated servers and channels.

Every call carries the cluster token in metadata; servers reject calls without it
before any handler (and so any unpickling) runs.
"""
from __future__ import annotations

import hmac

import grpc
import grpc.aio

from raylite.protocol.errors import is_unavailable, to_raylite_error  # noqa: F401 (re-export)

TOKEN_HEADER = "x-raylite-token"

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.enable_http_proxy", 0),
    ("grpc.keepalive_time_ms", 20000),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    # Components boot in parallel and often dial a socket a few ms before it exists;
    # gRPC's default 1 s reconnect backoff would then dominate start-up.
    ("grpc.initial_reconnect_backoff_ms", 10),
    ("grpc.min_reconnect_backoff_ms", 10),
    ("grpc.max_reconnect_backoff_ms", 500),
]
SERVER_OPTIONS = CHANNEL_OPTIONS + [("grpc.so_reuseport", 0),
                                    ("grpc.http2.min_ping_interval_without_data_ms", 5000)]


def _deny(kind: str):
    async def unary(request, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong cluster token")

    async def streaming(request_or_iterator, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong cluster token")
        yield  # pragma: no cover - makes this an async generator

    return {
        "unary_unary": lambda h: grpc.unary_unary_rpc_method_handler(unary),
        "stream_unary": lambda h: grpc.stream_unary_rpc_method_handler(unary),
        "unary_stream": lambda h: grpc.unary_stream_rpc_method_handler(streaming),
        "stream_stream": lambda h: grpc.stream_stream_rpc_method_handler(streaming),
    }[kind]


class TokenCheck(grpc.aio.ServerInterceptor):
    """Rejects any call whose metadata lacks the cluster token."""

    def __init__(self, token: str):
        self._token = token.encode()

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        for key, value in details.invocation_metadata or ():
            if key == TOKEN_HEADER:
                given = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(given, self._token):
                    return handler
                break
        if handler is None:
            return None
        if handler.request_streaming and handler.response_streaming:
            kind = "stream_stream"
        elif handler.request_streaming:
            kind = "stream_unary"
        elif handler.response_streaming:
            kind = "unary_stream"
        else:
            kind = "unary_unary"
        return _deny(kind)(handler)


def make_server(token: str) -> grpc.aio.Server:
    """An asyncio gRPC server that authenticates every call with ``token``."""
    return grpc.aio.server(interceptors=[TokenCheck(token)], options=SERVER_OPTIONS)


def bind(server: grpc.aio.Server, host: str, uds_path: str | None) -> tuple[str, str]:
    """Listen on ``host`` (a free port) and, if given, a unix socket.

    Returns (tcp_address, uds_address). Raises RuntimeError if the port cannot be bound.
    """
    port = server.add_insecure_port(f"{host}:0")
    if not port:
        raise RuntimeError(f"could not bind a port on {host}")
    uds = ""
    if uds_path:
        server.add_insecure_port(f"unix:{uds_path}")
        uds = f"unix:{uds_path}"
    return f"{advertised_host(host)}:{port}", uds


def advertised_host(host: str) -> str:
    """The address peers should dial: a wildcard bind is advertised as this host's IP."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    import socket
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def aio_channel(target: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)


def sync_channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)


class AuthedStub:
    """Wraps a generated stub so every call carries the cluster token.

    A blocking call that fails raises the raylite error of raylite.protocol.errors
    (still a grpc.RpcError); asyncio calls report failures when awaited, as before.
    """

    __slots__ = ("_stub", "_metadata")

    def __init__(self, stub, token: str):
        self._stub = stub
        self._metadata = ((TOKEN_HEADER, token),)

    def __getattr__(self, name):
        method = getattr(self._stub, name)
        metadata = self._metadata

        def call(*args, **kwargs):
            kwargs.setdefault("metadata", metadata)
            try:
                return method(*args, **kwargs)
            except grpc.RpcError as err:
                raise to_raylite_error(err, name) from err

        return call


def pick_target(address, my_node_id: str) -> str:
    """Prefer the unix socket for a peer on this node, TCP otherwise."""
    if address.uds and address.node_id == my_node_id:
        return address.uds
    return address.tcp

