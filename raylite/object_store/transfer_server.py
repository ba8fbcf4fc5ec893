"""The sending end of node-to-node transfers: a TCP listener in the node scheduler that
serves ranges of this node's objects to other nodes' stores.

One thread per connection (a peer keeps a few open and reuses them); each thread
authenticates its peer (raylite.object_store.transfer_wire), then answers
RangeRequests: the object is looked up, pinned and opened by ``open_object`` (which the
store service runs on its event loop), its bytes go out with ``sendfile`` (or through
TLS between hosts), and it is released. Threads block in system calls that release the
GIL, so a transfer costs the scheduler's event loop one lookup per range.
"""
from __future__ import annotations

import logging
import mmap
import socket
import threading
from collections.abc import Callable
from typing import BinaryIO

from raylite.object_store import transfer_wire as wire
from raylite.object_store.chunks import steps
from raylite.protocol import objects_pb2

log = logging.getLogger("raylite.transfer")

MAX_CONNECTIONS = 512       # open connections at once (a peer keeps a few per stream count)
MAX_HANDSHAKES = 32         # of which not yet authenticated

# open_object(hex id, requester address) -> (open binary file, size); raises LookupError
# with a message for the peer. release(hex id) undoes the pin.
Opener = Callable[[str, str], "tuple[BinaryIO, int]"]


class TransferServer:
    """Serves object ranges on ``host`` (a free port) until ``close()``."""

    def __init__(self, host: str, token: str, open_object: Opener,
                 release: Callable[[str], None]):
        self.token = token
        self.open_object = open_object
        self.release = release
        self._connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._handshakes = threading.BoundedSemaphore(MAX_HANDSHAKES)
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host.strip("[]"), 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="raylite-transfer-accept").start()

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            if not self._connections.acquire(blocking=False):
                conn.close()
                continue
            if not self._handshakes.acquire(blocking=False):
                self._connections.release()
                conn.close()   # a flood of unauthenticated connections: shed it
                continue
            threading.Thread(target=self._serve, args=(conn, peer[0]), daemon=True,
                             name="raylite-transfer-conn").start()

    def _serve(self, conn: socket.socket, peer_host: str) -> None:
        try:
            sock = self._authenticate(conn, peer_host)
            if sock is not None:
                self._answer(sock)
        except Exception as err:  # noqa: BLE001  a peer going away is routine
            log.debug("transfer connection from %s ended: %s", peer_host, err)
        finally:
            self._connections.release()
            try:
                conn.close()
            except OSError:
                pass

    def _authenticate(self, conn: socket.socket, peer_host: str) -> socket.socket | None:
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = conn
            if wire.wants_tls(peer_host):
                conn.settimeout(wire.HANDSHAKE_DEADLINE)
                sock = wire.tls_context(self.token, True).wrap_socket(conn, server_side=True)
            ok = wire.server_handshake(sock, self.token)
        except (OSError, ValueError):
            ok = False
        finally:
            self._handshakes.release()
        return sock if ok else None

    def _answer(self, sock: socket.socket) -> None:
        while not self._closed:
            sock.settimeout(None)   # an idle pooled connection waits for its next request
            try:
                request = wire.recv_message(sock, objects_pb2.RangeRequest)
            except wire.TransferError:
                return
            sock.settimeout(wire.IO_TIMEOUT)
            hex_id = request.id.hex()
            try:
                f, total = self.open_object(hex_id, request.requester)
            except LookupError as err:
                wire.send_message(sock, objects_pb2.RangeReply(error=str(err.args[0] if err.args else err)))
                continue
            try:
                length = min(request.length, max(0, total - request.offset))
                if request.offset > total:
                    wire.send_message(sock, objects_pb2.RangeReply(
                        total=total, error=f"range at {request.offset} beyond the object ({total} bytes)"))
                    continue
                wire.send_message(sock, objects_pb2.RangeReply(total=total, length=length))
                send_range(sock, f, request.offset, length)
            finally:
                f.close()
                self.release(hex_id)


def send_range(sock: socket.socket, f: BinaryIO, offset: int, length: int) -> None:
    """Write ``length`` bytes of ``f`` from ``offset`` to the socket: by ``sendfile``
    (no copy through user space) on a plain socket, from a read-only mapping under TLS.
    Raises OSError when the peer goes away."""
    if length == 0:
        return
    if not isinstance(sock, wire.ssl.SSLSocket):
        sent = sock.sendfile(f, offset, length)
        if sent != length:
            raise wire.TransferError(f"sent {sent} of {length} bytes: the file shrank")
        return
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            for start, n in steps(offset, length):
                sock.sendall(view[start:start + n])
        finally:
            view.release()
