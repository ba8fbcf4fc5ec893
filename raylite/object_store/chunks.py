"""How a node-to-node transfer cuts an object: pure arithmetic, no sockets.

A large object is split into a few contiguous *ranges*, one per concurrent stream
(connection); each range travels as one request answered by a continuous run of bytes
that the receiver reads straight into its place in the destination file, in *steps*
of a few MiB. Range boundaries fall on page boundaries, so two streams never write
into the same page of the destination mapping.
"""
from __future__ import annotations

import os

PAGE = 4096
MIN_RANGE = 8 << 20        # below this per stream, another connection costs more than it gains
STEP = 4 << 20             # bytes per read/write call: big enough for memory speed
DEFAULT_STREAMS = 4


def default_streams() -> int:
    """Concurrent streams per transfer: RAYLITE_TRANSFER_STREAMS, else 4.

    Raises ValueError when the variable is not a positive integer.
    """
    raw = os.environ.get("RAYLITE_TRANSFER_STREAMS", "")
    if not raw:
        return DEFAULT_STREAMS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"RAYLITE_TRANSFER_STREAMS must be a positive integer, got {raw!r}")
    return value


def split_ranges(total: int, streams: int, min_range: int = MIN_RANGE) -> list[tuple[int, int]]:
    """(offset, length) ranges that cover [0, total) in order, without gaps or overlap:
    at most ``streams`` of them, each at least ``min_range`` long (so a small object
    is one range), boundaries on PAGE multiples. An empty object is one empty range.

    Raises ValueError for a negative size or fewer than one stream.
    """
    if total < 0 or streams < 1:
        raise ValueError(f"cannot split {total} bytes over {streams} streams")
    count = max(1, min(streams, total // max(min_range, 1)))
    per = -(-total // count)                # ceiling division
    per = -(-per // PAGE) * PAGE            # round up to whole pages
    ranges = []
    offset = 0
    while offset < total:
        length = min(per, total - offset)
        ranges.append((offset, length))
        offset += length
    return ranges or [(0, 0)]


def steps(offset: int, length: int, step: int = STEP) -> list[tuple[int, int]]:
    """The (offset, length) pieces, at most ``step`` long, that move one range."""
    if step < 1:
        raise ValueError("step must be positive")
    return [(o, min(step, offset + length - o)) for o in range(offset, offset + length, step)]
