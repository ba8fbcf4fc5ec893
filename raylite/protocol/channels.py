"""gRPC plumbing shared by every process: authenticated servers and channels.

Every call carries the cluster token in metadata; servers reject calls without it
before any handler (and so any unpickling) runs, and before the request message is
even read: the refusal handler never asks for a message, so an unauthenticated
peer's payload is dropped with its stream rather than buffered.
"""
from __future__ import annotations

import hmac
import os

import grpc
import grpc.aio

from raylite.protocol.errors import is_unavailable, to_raylite_error  # noqa: F401 (re-export)

TOKEN_HEADER = "x-raylite-token"

# The largest message any process accepts. Big values never travel as one message:
# objects over 100 KiB go through the store and are pulled in 4 MiB chunks, so the
# largest legitimate messages are batches of small inline tasks or results.
MAX_MESSAGE = 256 << 20
MAX_STREAMS_PER_CONNECTION = 1024

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", MAX_MESSAGE),
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
TLS_CHANNEL_OPTIONS = CHANNEL_OPTIONS + [("grpc.ssl_target_name_override", "raylite-cluster")]
SERVER_OPTIONS = CHANNEL_OPTIONS + [("grpc.so_reuseport", 0),
                                    ("grpc.http2.min_ping_interval_without_data_ms", 5000),
                                    ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
                                    # A connection that never finishes its HTTP/2
                                    # preface is dropped, not held.
                                    ("grpc.server_handshake_timeout_ms", 5000),
                                    ("grpc.max_metadata_size", 16 << 10)]


async def _refuse(request_iterator, context):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong cluster token")


async def _refuse_streaming(request_iterator, context):
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong cluster token")
    yield  # pragma: no cover - makes this an async generator


# Request-streaming handlers even for unary methods: gRPC reads a unary request in
# full before calling its handler, but hands a streaming one an iterator it never
# has to touch, so the refusal costs no read of the (possibly huge) message.
_REFUSE_UNARY_REPLY = grpc.stream_unary_rpc_method_handler(_refuse)
_REFUSE_STREAMING_REPLY = grpc.stream_stream_rpc_method_handler(_refuse_streaming)


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
        return _REFUSE_STREAMING_REPLY if handler.response_streaming else _REFUSE_UNARY_REPLY


def make_server(token: str) -> grpc.aio.Server:
    """An asyncio gRPC server that authenticates every call with ``token``."""
    use_cluster_token(token)
    server = grpc.aio.server(interceptors=[TokenCheck(token)], options=SERVER_OPTIONS)
    server._raylite_token = token   # bind() derives the TLS credentials from it
    return server


# The cluster this process belongs to: TCP channels are mutual TLS with credentials
# derived from its token (raylite.security.cluster_tls). Set by make_server and by
# the CoreWorker; a process that set neither falls back to $RAYLITE_TOKEN.
_cluster_token: str = ""


def use_cluster_token(token: str) -> None:
    """Make TCP channels opened from now on authenticate as (and only trust) the
    cluster of ``token``."""
    global _cluster_token
    _cluster_token = token


def _tls():
    """This process's TLS credentials: the user's (raylite.security.user_tls) when
    RAYLITE_TLS_CERT/_KEY/_CA name them, else the ClusterTls derived from the token;
    None when TLS is off or no token is known. Raises user_tls.TlsConfigError or
    InsecurePathError when the user's files are incomplete or the key is not private."""
    from raylite.security import cluster_tls, user_tls
    given = user_tls.from_environment()
    if given is not None:
        return given
    token = _cluster_token or os.environ.get("RAYLITE_TOKEN", "")
    if not token or not cluster_tls.enabled():
        return None
    return cluster_tls.for_token(token)


def bind(server: grpc.aio.Server, host: str, uds_path: str | None) -> tuple[str, str]:
    """Listen on ``host`` (a free port) and, if given, a unix socket.

    Returns (tcp_address, uds_address). Raises RuntimeError if the port cannot be bound.
    """
    tls = _tls() if getattr(server, "_raylite_token", "") else None
    if tls is not None:
        port = server.add_secure_port(f"{host}:0", tls.server_credentials())
    else:
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


def _check_unix_target(target: str) -> None:
    """Refuse a unix socket outside a private directory of ours: an address read from
    the GCS must not lead us to send the token to another user's socket."""
    from raylite.security.files import check_private
    check_private(os.path.dirname(target[len("unix:"):]) or ".", want_dir=True)


def aio_channel(target: str) -> grpc.aio.Channel:
    """A channel to ``target``: plain for a unix socket in a private directory of ours,
    mutual TLS over TCP (see _tls). Raises raylite.security.files.InsecurePathError
    for a unix socket anywhere else (or a TLS key file that is not private)."""
    if target.startswith("unix:"):
        _check_unix_target(target)
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    tls = _tls()
    if tls is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=tls.channel_options(CHANNEL_OPTIONS))


def sync_channel(target: str) -> grpc.Channel:
    """As aio_channel, for blocking calls."""
    if target.startswith("unix:"):
        _check_unix_target(target)
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    tls = _tls()
    if tls is None:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.secure_channel(target, tls.channel_credentials(), options=tls.channel_options(CHANNEL_OPTIONS))


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

