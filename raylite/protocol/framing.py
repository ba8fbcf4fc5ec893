"""Length-prefixed protobuf frames over a unix socket: the local fast path for task
streams between processes of one node.

gRPC's asyncio streams cost ~100 us per message here; a task round trip needs four.
Peers on the same node exchange the very same PushRequest/PushReply messages over a
plain unix socket instead. The socket lives in the session's 0700 directory, and the
first frame must be the cluster token before any other frame is even parsed.
"""
from __future__ import annotations

import hmac
import socket
import struct

HEADER = struct.Struct("<I")
MAX_FRAME = 1 << 31


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


def check_token(sock: socket.socket, token: str, buffer: FrameBuffer, pending: list,
                timeout: float = 5.0) -> bool:
    """Read the first frame and compare it with the cluster token (frames that
    arrived with it stay in ``pending``)."""
    sock.settimeout(timeout)
    try:
        frame = recv_frame(sock, buffer, pending)
    except (OSError, ValueError):
        return False
    finally:
        sock.settimeout(None)
    return frame is not None and hmac.compare_digest(frame, token.encode())
