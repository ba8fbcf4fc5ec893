"""Rebuilding objects lost with their node, from the lineage kept in the GCS.

The owner of a task whose results went into a node's shared-memory store records the
task's spec in the GCS lineage table (asynchronously, pipelined: ``record``) and keeps
it while anything can need it (``raylite.core.lineage.LineageTable``; ``object_freed``
trims it). When one of those results cannot be fetched any more -- its node died --
``recover`` replaces the owner's value by a rebuilt one: it reads the spec back from
the GCS and submits the task again (same task id, same return ids) on the surviving
nodes. Arguments that were lost too are rebuilt the same way when the re-run reports
them missing (TASK_SYSTEM_ERROR with ``lost_object_id``), so recovery goes
recursively back through the lineage. An object with no lineage (``ray.put``, actor
results) or with no retries left becomes an error value instead: ObjectLostError
naming its node and why, or ObjectReconstructionFailedError. Never a hang.

``record`` runs on the owner's event loop; ``recover`` and ``object_freed`` on any
thread (a getter finds the loss; reference counts drop wherever a ref is collected).
"""
from __future__ import annotations

import asyncio
import sys
import threading
from typing import Protocol

from raylite import exceptions as exc
from raylite.core.lineage import LineageTable, producer
from raylite.gcs.liveness import describe_node
from raylite.gcs.records import LineageRecord
from raylite.ids import spec_return_ids
from raylite.protocol import common_pb2


class Gcs(Protocol):
    def put_lineage(self, task_id_hex: str, record: LineageRecord) -> None: ...
    def delete_lineage(self, task_id_hex: str) -> None: ...
    def get_lineage(self, task_id_hex: str) -> LineageRecord | None: ...
    def nodes(self, *, retry: bool = True) -> dict: ...


class Memory(Protocol):
    def get(self, object_id: bytes): ...
    def put(self, object_id: bytes, value) -> None: ...
    def delete(self, object_id: bytes): ...


class Reconstruction:
    """Lineage bookkeeping and recovery for the objects one process owns.

    ``resubmit(spec, deps, resources, strategy)`` submits a task again (the owner's
    task submitter); ``error_value(oid, error)`` makes an error value;
    ``free_store(ids)`` frees stored objects; ``make_ref(oid, owner)`` an ObjectRef.
    """

    def __init__(self, *, gcs: Gcs, memory: Memory, loop: asyncio.AbstractEventLoop,
                 owner_address: bytes, resubmit, error_value, free_store, make_ref):
        self.gcs = gcs
        self.owner_address = owner_address
        self.memory = memory
        self.loop = loop
        self.table = LineageTable()
        self._lock = threading.Lock()     # the table: object_freed comes from any thread
        self._resubmit = resubmit
        self._error_value = error_value
        self._free_store = free_store
        self._make_ref = make_ref
        self._rebuilding: set[bytes] = set()   # task ids being re-run

    # ---- keeping lineage -----------------------------------------------------------
    def record(self, spec, returns, deps, resources: dict, strategy: str,
               retries_left: int) -> bool:
        """A task finished: keep its lineage if a result lives in a store. Returns True
        when kept (its stored arguments must then outlive the task: they are freed when
        the lineage is trimmed)."""
        # Generator tasks are not kept: their items stream out while they run, and
        # re-running one to rebuild a single item is not supported yet.
        stored = [] if spec.generator else [v.id for v in returns if v.in_store and not v.is_error]
        if not stored:
            if self._rebuilding:
                with self._lock:
                    self._rebuilding.discard(spec.task_id)
            return False
        dep_ids = [ref.binary() for ref in deps or ()]
        args_id = spec.args.id if spec.args.in_store else b""
        with self._lock:
            fresh = spec.task_id not in self.table
            self.table.record(spec.task_id, stored, dep_ids, args_id,
                              retries_left if retries_left >= 0 else -1)
            self._rebuilding.discard(spec.task_id)
        if fresh:
            self.gcs.put_lineage(spec.task_id.hex(), LineageRecord(
                spec=spec.SerializeToString(), resources=dict(resources), strategy=strategy,
                dep_owners=[ref.owner_address for ref in deps or ()]))
        return True

    def object_freed(self, object_id: bytes) -> None:
        """An owned object is referenced nowhere any more: trim what it kept."""
        if not self.table.entries:   # the common case: nothing kept, no lock taken
            return
        with self._lock:
            trimmed = self.table.object_freed(object_id)
        for entry in trimmed:
            self.gcs.delete_lineage(entry.task_id.hex())
            if entry.args_id:
                self._free_store([entry.args_id])

    # ---- recovering ------------------------------------------------------------------
    def recover(self, object_id: bytes, lost_on_node: str, why: str = "") -> None:
        """The owned object ``object_id`` could not be fetched from ``lost_on_node``:
        make its value a rebuilt one (waiters block until it is ready) or an error.
        A second report of the same loss while the re-run is on its way is ignored.
        Any thread."""
        task_id = producer(object_id)
        with self._lock:
            current = self.memory.get(object_id)
            if task_id in self._rebuilding:
                return
            if current is not None and (not current.in_store or current.node_id != lost_on_node):
                return   # already rebuilt elsewhere (a late report of an old loss)
            kept = task_id in self.table
            allowed = kept and self.table.take_retry(task_id)
            if allowed:
                self._rebuilding.add(task_id)
                self.memory.delete(object_id)       # getters wait for the re-run from now on
        if not allowed:
            self._give_up(object_id, lost_on_node, why, kept)
            return
        rerun = self._rerun(task_id, object_id, lost_on_node)
        self.loop.call_soon_threadsafe(self.loop.create_task, rerun)

    async def _rerun(self, task_id: bytes, object_id: bytes, lost_on_node: str) -> None:
        try:
            record = await asyncio.to_thread(self.gcs.get_lineage, task_id.hex())
        except exc.RayliteError as err:
            record, why = None, f"the GCS could not be read: {err}"
        else:
            why = "its lineage is missing from the GCS"
        if record is None:
            with self._lock:
                self._rebuilding.discard(task_id)
            self.memory.put(object_id, self._error_value(object_id, exc.ObjectReconstructionFailedError(
                object_id.hex(), f"Object {object_id.hex()} was lost with node {lost_on_node[:8]} "
                                 f"and cannot be rebuilt: {why}.")))
            return
        spec = common_pb2.TaskSpec.FromString(record.spec)
        spec.attempt += 1
        for oid in spec_return_ids(spec):
            if oid != object_id:
                self.memory.delete(oid)
        deps = []
        for value, owner in zip(spec.deps, record.dep_owners):
            deps.append(self._make_ref(value.id, owner))   # holds it until the re-run ends
            if owner == self.owner_address and self.memory.get(value.id) is None:
                # An argument of ours freed since (only its lineage was kept): rebuild it.
                self.recover(value.id, value.node_id)
        sys.stderr.write(f"raylite: rebuilding object {object_id.hex()[:16]} (lost with node "
                         f"{lost_on_node[:8]}) by re-running {spec.name}\n")
        self._resubmit(spec, deps, dict(record.resources), record.strategy)

    def _give_up(self, object_id: bytes, node_id: str, why: str, kept: bool) -> None:
        hex_id = object_id.hex()
        node = describe_node(self.gcs, node_id)
        if kept:
            error: exc.ObjectLostError = exc.ObjectReconstructionFailedError(
                hex_id, f"Object {hex_id} was lost with {node} and could not be rebuilt: "
                        f"its task's retries (max_retries) are used up.")
        else:
            error = exc.ObjectLostError(
                hex_id, f"Object {hex_id} was stored on {node} and is lost: it was not made "
                        f"by a task (ray.put, or an actor method), so there is no lineage to "
                        f"rebuild it from. {why}".rstrip())
        self.memory.put(object_id, self._error_value(object_id, error))
