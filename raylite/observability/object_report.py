"""One process's objects as ``raylite memory`` / ``list_objects`` show them.

Built on the task-event thread while someone is listing objects (see
GcsClient.want_object_reports), never on the task path. Reference kinds follow
Ray's ``ray memory``: LOCAL_REFERENCE (a live ObjectRef in this process),
USED_BY_PENDING_TASK (an argument of a task not finished yet), CAPTURED_IN_OBJECT
(serialized inside another object), PINNED_IN_MEMORY (owned and kept for a borrower
or a value that still needs it).
"""
from __future__ import annotations

import os

from raylite.ids import OBJECT_ID_LEN

MAX_OBJECTS_PER_PROCESS = 10_000


def reference_kind(object_id: bytes, local: dict, pinned: set, captured: set,
                   task_uses: dict | None = None) -> str:
    """Ray's reference type of an object id in one process (pure). ``local`` counts
    live ObjectRefs, of which ``task_uses`` are held by tasks not finished yet."""
    uses = task_uses.get(object_id, 0) if task_uses else 0
    if local.get(object_id, 0) > uses:
        return "LOCAL_REFERENCE"
    if object_id in captured:
        return "CAPTURED_IN_OBJECT"
    if uses or object_id in pinned:
        return "USED_BY_PENDING_TASK"
    return "PINNED_IN_MEMORY"


def _task_uses(worker) -> dict:
    """Object id -> how many refs the submitter's unfinished tasks hold as arguments."""
    uses: dict[bytes, int] = {}
    for _ in range(3):   # the loop thread may change the table while we copy it
        try:
            entries = list(worker.submitter.state.tasks.values())
            break
        except RuntimeError:
            continue
    else:
        return uses
    for entry in entries:
        for ref in entry.deps or ():
            oid = ref.binary()
            uses[oid] = uses.get(oid, 0) + 1
    return uses


def object_report(worker) -> list[dict]:
    """The objects this process owns or references, largest first (bounded)."""
    from raylite.core.task_events import creation_site
    refs = worker.refs
    with refs._lock:   # a consistent copy; the counter is never held for long
        local = dict(refs._local)
        owned = set(refs._owned)
        pinned = set(refs._pins)
        borrowed_out = set(refs._borrowers)
    captured: set = set()
    for holder, inner in list(worker.objects._contained.items()):
        if len(holder) == OBJECT_ID_LEN:   # a put object holds them (a task id otherwise)
            captured.update(inner)
    task_uses = _task_uses(worker)
    pid = os.getpid()
    is_driver = worker.mode == "driver"
    memory = worker.memory
    sized = []
    for oid in set(local) | owned | pinned | borrowed_out:
        value = memory.get(oid)
        if value is None:
            size = -1
        else:
            size = int(value.size) if value.in_store else len(value.data)
        sized.append((size, oid, value))
    if len(sized) > MAX_OBJECTS_PER_PROCESS:   # bounded: the largest are the interesting ones
        sized.sort(key=lambda item: item[0], reverse=True)
        del sized[MAX_OBJECTS_PER_PROCESS:]
    out = []
    for size, oid, value in sized:
        in_store = value is not None and bool(value.in_store)
        out.append({
            "object_id": oid.hex(), "object_size": size,
            "reference_type": reference_kind(oid, local, pinned, captured, task_uses),
            "call_site": creation_site(oid),
            "task_status": "FINISHED" if value is not None else ("PENDING" if oid in owned else "NIL"),
            "type": "DRIVER" if is_driver else "WORKER",
            "pid": pid, "ip": worker.host,
            "node_id": (value.node_id if in_store else "") or worker.node_id,
            "worker_id": worker.worker_id, "is_owner": oid in owned, "in_store": in_store,
            "is_error": bool(value.is_error) if value is not None else False,
        })
    return out
