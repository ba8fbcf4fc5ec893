"""Length-prefixed protobuf frames over a unix socket: the local fast path for task
streams between processes of one node.

gRPC's asyncio streams cost ~100 us per message here; a task round trip needs four.
Peers on the same node exchange the very same PushRequest/PushReply messages over a
plain unix socket instead. The socket lives in the session's 0700 directory, and the
first frame must be the cluster token before any other frame is even parsed. Before
that, a peer is held to a small first frame and a total deadline, so an
unauthenticated connection can neither make us buffer much nor stay open long.
"""
from __future__ import annotations

import hmac
import socket
import struct
import time

HEADER = struct.Struct("<I")
MAX_FRAME = 1 << 31
MAX_TOKEN_FRAME = 4096       # the first (token) frame; a token is 32-64 bytes
HANDSHAKE_DEADLINE = 5.0     # seconds for the whole first frame, however it is split


def encode(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


class FrameBuffer:
    """Accumulates received bytes and splits them into frames."""

    def __init__(self):
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames = []
        while len(self._buf) >= HEADER.size:
            (size,) = HEADER.unpack_from(self._buf, 0)
            if size > MAX_FRAME:
                raise ValueError(f"frame of {size} bytes is too large")
            end = HEADER.size + size
            if len(self._buf) < end:
                break
            frames.append(bytes(self._buf[HEADER.size:end]))
            del self._buf[:end]
        return frames


def recv_frame(sock: socket.socket, buffer: FrameBuffer, pending: list) -> bytes | None:
    """Blocking read of the next frame; None at end of stream."""
    while not pending:
        data = sock.recv(1 << 20)
        if not data:
            return None
        pending.extend(buffer.feed(data))
    return pending.pop(0)


def _recv_exactly(sock: socket.socket, count: int, deadline: float) -> bytes | None:
    """``count`` bytes, or None at end of stream or once ``deadline`` has passed."""
    chunks, have = [], 0
    while have < count:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        data = sock.recv(count - have)
        if not data:
            return None
        chunks.append(data)
        have += len(data)
    return b"".join(chunks)


def check_token(sock: socket.socket, token: str, buffer: FrameBuffer, pending: list,
                timeout: float = HANDSHAKE_DEADLINE) -> bool:
    """Read the first frame and compare it with the cluster token.

    Reads exactly that frame (nothing after it), refuses a length prefix over
    MAX_TOKEN_FRAME before reading its body, and gives up once ``timeout`` seconds
    have passed in total (a peer dripping one byte at a time gains nothing).
    ``buffer`` and ``pending`` are left for the frames that follow.
    """
    deadline = time.monotonic() + timeout
    try:
        header = _recv_exactly(sock, HEADER.size, deadline)
        if header is None:
            return False
        (size,) = HEADER.unpack(header)
        if size > MAX_TOKEN_FRAME:
            return False
        frame = _recv_exactly(sock, size, deadline)
    except OSError:
        return False
    finally:
        try:
            sock.settimeout(None)
        except OSError:
            pass
    return frame is not None and hmac.compare_digest(frame, token.encode())
