"""The transfer connection: blocking sockets, framed protobuf headers, raw payloads.

Object bytes between nodes do not go through gRPC: its Python binding copies every
message three times (and HTTP/2 frames it at 16 KiB), which caps a stream near
0.5 GB/s here. A transfer connection instead carries length-prefixed protobuf headers
(objects.proto: TransferHello, RangeRequest, RangeReply) and, after each RangeReply,
the object's bytes as they are: the sender hands the file to the kernel
(``os.sendfile``), the receiver ``recv_into``s the destination mapping.

Security, as for every TCP connection of the cluster:
- Both ends prove they hold the cluster token before anything else is read or sent
  (a challenge-response over fresh nonces: the token itself never travels), and an
  unauthenticated peer gets at most a fixed-size hello read under a deadline.
- Between hosts the connection is mutual TLS, with the same identity as gRPC: the
  user's certificates and CA when given (raylite.security.user_tls: the server is
  checked against the host dialled, or RAYLITE_TLS_SERVER_NAME), else the cluster's
  token-derived one (raylite.security.cluster_tls). Over the loopback interface it stays
  plain: no other local user can read or inject loopback traffic (that takes root,
  who can read /dev/shm anyway), and encryption would halve the copy rate.
  RAYLITE_TLS=0 makes every connection plain (debugging only).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
import ssl
import struct
import tempfile
import time

from raylite.protocol import objects_pb2

HEADER = struct.Struct("<I")
MAX_HEADER = 64 << 10          # any header frame; a hello is under 100 bytes
NONCE = 16
HANDSHAKE_DEADLINE = 5.0
IO_TIMEOUT = 30.0              # no byte for this long: the peer is gone or stuck


class TransferError(ConnectionError):
    """A transfer connection failed: peer gone, refused, or not of this cluster."""


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_address(address: str) -> tuple[str, int]:
    """("host", port) of "host:port". Raises ValueError when it is not one."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"not a host:port address: {address!r}")
    return host.strip("[]"), int(port)


# ---- framing -----------------------------------------------------------------------------
def recv_exactly(sock: socket.socket, count: int) -> bytes:
    """Exactly ``count`` bytes. Raises TransferError at end of stream."""
    buf = bytearray(count)
    recv_into_exactly(sock, memoryview(buf))
    return bytes(buf)


def recv_into_exactly(sock: socket.socket, view: memoryview) -> None:
    """Fill ``view`` from the socket. Raises TransferError at end of stream, OSError
    (socket.timeout included) on a socket error."""
    have, want = 0, len(view)
    while have < want:
        got = sock.recv_into(view[have:])
        if not got:
            raise TransferError("connection closed mid-message")
        have += got


def send_message(sock: socket.socket, message) -> None:
    payload = message.SerializeToString()
    sock.sendall(HEADER.pack(len(payload)) + payload)


def recv_message(sock: socket.socket, cls):
    """The next framed ``cls`` message. Raises TransferError on a bad or missing frame."""
    (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    if size > MAX_HEADER:
        raise TransferError(f"header frame of {size} bytes refused")
    try:
        return cls.FromString(recv_exactly(sock, size))
    except Exception as err:  # protobuf's DecodeError
        raise TransferError(f"undecodable {cls.__name__}: {err}") from err


# ---- mutual proof of the token ---------------------------------------------------------------
def _proof(token: str, role: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return hmac.new(token.encode(), b"raylite-transfer-" + role + server_nonce + client_nonce,
                    hashlib.sha256).digest()


def server_handshake(sock: socket.socket, token: str) -> bool:
    """Challenge the client; True once it proved the token (and we proved it back).
    Never raises; reads at most one small frame from an unauthenticated peer."""
    deadline = time.monotonic() + HANDSHAKE_DEADLINE
    server_nonce = os.urandom(NONCE)
    try:
        sock.settimeout(HANDSHAKE_DEADLINE)
        send_message(sock, objects_pb2.TransferHello(nonce=server_nonce))
        (size,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
        if size > 256 or time.monotonic() > deadline:
            return False
        hello = objects_pb2.TransferHello.FromString(recv_exactly(sock, size))
        if len(hello.nonce) != NONCE or time.monotonic() > deadline:
            return False
        if not hmac.compare_digest(hello.proof, _proof(token, b"client", server_nonce, hello.nonce)):
            return False
        send_message(sock, objects_pb2.TransferHello(
            proof=_proof(token, b"server", server_nonce, hello.nonce)))
        sock.settimeout(None)
        return True
    except Exception:
        return False


def client_handshake(sock: socket.socket, token: str) -> None:
    """Answer the server's challenge and check its proof. Raises TransferError when
    the server is not of this cluster or the connection fails."""
    try:
        sock.settimeout(HANDSHAKE_DEADLINE)
        challenge = recv_message(sock, objects_pb2.TransferHello)
        if len(challenge.nonce) != NONCE:
            raise TransferError("malformed transfer challenge")
        client_nonce = os.urandom(NONCE)
        send_message(sock, objects_pb2.TransferHello(
            nonce=client_nonce, proof=_proof(token, b"client", challenge.nonce, client_nonce)))
        answer = recv_message(sock, objects_pb2.TransferHello)
        sock.settimeout(IO_TIMEOUT)
    except OSError as err:
        raise TransferError(f"transfer handshake failed: {err}") from err
    if not hmac.compare_digest(answer.proof, _proof(token, b"server", challenge.nonce, client_nonce)):
        raise TransferError("the transfer server did not prove the cluster token")


# ---- TLS between hosts --------------------------------------------------------------------
_contexts: dict[tuple, ssl.SSLContext] = {}


def _user_tls():
    from raylite.security import user_tls
    return user_tls.from_environment()


def wants_tls(host: str) -> bool:
    """Whether a connection to or from ``host`` is wrapped in TLS."""
    if is_loopback(host):
        return False
    from raylite.security import cluster_tls
    return _user_tls() is not None or cluster_tls.enabled()


def server_name(host: str) -> str:
    """The name a client expects in the server's certificate when dialling ``host``."""
    given = _user_tls()
    if given is not None:
        return given.server_name or host
    from raylite.security.cluster_tls import SERVER_NAME
    return SERVER_NAME


def tls_context(token: str, server_side: bool) -> ssl.SSLContext:
    """Mutual TLS with the cluster's identity (see the module docstring), cached.
    Raises user_tls.TlsConfigError / InsecurePathError for unusable user files."""
    given = _user_tls()
    key = (token, server_side, given.cert_file if given is not None else "")
    ctx = _contexts.get(key)
    if ctx is not None:
        return ctx
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    if not server_side:
        ctx.check_hostname = True
    if given is not None:
        ctx.load_verify_locations(cadata=given.ca_pem.decode())
        ctx.load_cert_chain(given.cert_file, given.key_file)
    else:
        from raylite.security import cluster_tls
        tls = cluster_tls.for_token(token)
        ctx.load_verify_locations(cadata=tls.cert_pem.decode())
        # load_cert_chain reads files only: a private file that lives for one call.
        with tempfile.NamedTemporaryFile("wb", suffix=".pem") as f:   # mode 0600
            f.write(tls.key_pem + tls.cert_pem)
            f.flush()
            ctx.load_cert_chain(f.name)
    _contexts[key] = ctx
    return ctx


def connect(address: str, token: str) -> socket.socket:
    """An authenticated transfer connection to ``address`` (host:port).

    Raises TransferError when it cannot be opened or the peer is not of this cluster.
    """
    host, port = split_address(address)
    try:
        sock = socket.create_connection((host, port), timeout=HANDSHAKE_DEADLINE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if wants_tls(host):
            sock = tls_context(token, False).wrap_socket(sock, server_hostname=server_name(host))
    except (OSError, ValueError) as err:
        raise TransferError(f"cannot open a transfer connection to {address}: {err}") from err
    try:
        client_handshake(sock, token)
    except TransferError:
        sock.close()
        raise
    return sock
