"""Identifiers: random 16-byte ids for tasks, jobs, actors and workers; 20-byte object ids.

An object id is its producing task's id plus a 4-byte index, so the lineage of any
object (which task made it) is readable from the id alone.
"""
from __future__ import annotations

import os

TASK_ID_LEN = 16
OBJECT_ID_LEN = 20


def random_id(n: int = TASK_ID_LEN) -> bytes:
    return os.urandom(n)


def object_id_for(task_id: bytes, index: int) -> bytes:
    """The id of return ``index`` (1-based; puts use their own counter) of a task."""
    return task_id + index.to_bytes(4, "little")


def task_id_of(object_id: bytes) -> bytes:
    return object_id[:TASK_ID_LEN]


def return_ids(task_id: bytes, num_returns: int) -> list[bytes]:
    return [object_id_for(task_id, i + 1) for i in range(num_returns)]


def spec_return_ids(spec) -> list[bytes]:
    """The return object ids a TaskSpec carries (concatenated in ``return_ids``)."""
    raw = spec.return_ids
    return [raw[i:i + OBJECT_ID_LEN] for i in range(0, len(raw), OBJECT_ID_LEN)]
