"""The object half of the core worker: put/get/wait, values kept by their owner,
borrowed values fetched from owners, reference-driven freeing; cross-node pulls are
raylite.object_store.transfer's, given this worker's node table and channels.

ObjectManager is held by CoreWorker as ``worker.objects``. It gets every collaborator
explicitly; raylite.core.interfaces declares what it uses of each, so a unit test can
pass fakes (tests/unit/test_object_manager.py).
"""
from __future__ import annotations

import itertools
import threading
import time
from typing import TYPE_CHECKING

import grpc

from raylite import exceptions as exc
from raylite.core.interfaces import (
    BlockedNotifier,
    LoopRunner,
    NodeDirectory,
    PeerStubs,
    RefTable,
    StoreClient,
    ValueTable,
)
from raylite.core.object_ref import ObjectRef
from raylite.gcs.liveness import describe_node, is_alive
from raylite.ids import object_id_for, random_id
from raylite.object_store.transfer import pull_object
from raylite.protocol import common_pb2, objects_pb2, worker_pb2
from raylite.serialization import deserialize, serialize

if TYPE_CHECKING:
    from raylite.core.generators import GeneratorTable
    from raylite.core.reconstruction import Reconstruction


class ObjectManager:
    """Objects of one process. put/get/wait/get_async/when_ready may be called from any
    thread; methods that say so run on the event loop."""

    # The process's raylite.core.generators.GeneratorTable (set by CoreWorker): the
    # end of a generator task goes through it.
    generators: GeneratorTable | None = None

    def __init__(self, *, loop: LoopRunner, memory: ValueTable, refs: RefTable,
                 store: StoreClient, nodes: NodeDirectory, peers: PeerStubs,
                 notify_blocked: BlockedNotifier, owner_address: bytes, node_id: str,
                 worker_id: str, token: str):
        self.loop = loop
        self.memory = memory
        self.refs = refs
        self.store = store
        self.nodes = nodes
        self.peers = peers
        self.notify_blocked = notify_blocked
        self.owner_address = owner_address   # serialized Address of this process
        self.node_id = node_id
        self.worker_id = worker_id
        self.token = token
        self.closed = False                  # set at shutdown: nothing more is sent
        self._put_prefix = random_id()
        self._put_counter = itertools.count(1)
        self._fetching: set[bytes] = set()
        self._to_delete: list[bytes] = []
        self._owner_cache: dict[bytes, common_pb2.Address] = {}
        self._borrowed: dict[bytes, bytes] = {}      # borrowed object id -> owner address
        self._contained: dict[bytes, list] = {}      # put object/task id -> ids of refs inside
        # Lineage and recovery of owned objects (set by CoreWorker).
        self.reconstruction: Reconstruction | None = None

    def close(self) -> None:
        """The process is shutting down: frees and unborrows are no longer sent."""
        self.closed = True

    # ---- creating values ----------------------------------------------------------------
    def put(self, value) -> ObjectRef:
        """Store ``value``; raises TypeError if unserializable, ObjectStoreFullError if no room."""
        if isinstance(value, ObjectRef):
            raise TypeError("Calling 'put' on an ObjectRef is not allowed. If you really want to "
                            "do this, you can wrap the ObjectRef in a list and call 'put' on it.")
        oid = object_id_for(self._put_prefix, next(self._put_counter))
        ser = serialize(value)
        stored = self.store.to_value(oid, None, serialized=ser)
        if ser.contained_refs:
            self.pin_contained(ser.contained_refs, holder=oid)
        self.refs.add_owned(oid)
        self.memory.put(oid, stored)
        return ObjectRef(oid, self.owner_address)

    def pin_contained(self, refs, holder: bytes = b"") -> None:
        """Pin refs serialized into a value that leaves this process: the receiver may
        ask their owners for them at any time. With ``holder`` (a put object's or a
        task's id) they are unpinned when the holder is freed or the task finishes."""
        for ref in refs:
            self.refs.pin(ref.binary())
        if holder and refs:
            self._contained[holder] = [r.binary() for r in refs]

    def store_owned_value(self, value: common_pb2.ObjectValue) -> None:
        """Keep a value this process owns (a task's return), or free it at once when
        nobody references it any more."""
        oid = value.id
        if not self.refs.in_use(oid):
            if value.in_store:
                self.free_store([oid])
            return
        self.memory.put(oid, value)

    def finish_task(self, spec, returns, keep_args: bool = False) -> None:
        """A task or actor call is over (for good): keep its return values, free its
        stored arguments (unless ``keep_args``: its lineage may re-run it), and unpin
        the refs that were serialized into them."""
        generators = self.generators if spec.generator else None
        if generators is not None:
            returns = generators.finishing(spec, returns)
        for value in returns:
            self.store_owned_value(value)
        if generators is not None:
            generators.finished(spec.task_id)
        if spec.args.in_store and not keep_args:
            self.free_store([spec.args.id])
        for inner in self._contained.pop(spec.task_id, ()):
            self.refs.unpin(inner)

    # ---- freeing ------------------------------------------------------------------------
    def free_object(self, object_id: bytes, owned: bool) -> None:
        """The reference counter's verdict: nobody here holds ``object_id`` any more."""
        value = self.memory.delete(object_id)
        if owned:
            if value is not None and value.in_store and value.node_id == self.node_id:
                self.free_store([object_id])
            if self.reconstruction is not None:
                self.reconstruction.object_freed(object_id)
        for inner in self._contained.pop(object_id, ()):
            self.refs.unpin(inner)
        owner = self._borrowed.pop(object_id, None)
        if owner is not None and not self.closed:
            try:
                self.loop.call_soon_threadsafe(self._send_unborrow, object_id, owner)
            except RuntimeError:
                pass

    def free_store(self, object_ids: list[bytes]) -> None:
        """Delete objects from the node's store, batched into one call per loop turn."""
        if self.closed:
            return
        first = not self._to_delete
        self._to_delete.extend(object_ids)
        if first:
            try:
                self.loop.call_soon_threadsafe(self._flush_deletes)
            except RuntimeError:
                pass

    def _flush_deletes(self) -> None:  # on the loop
        ids, self._to_delete = self._to_delete, []
        if ids:
            stub = self.peers.local_store_stub()
            self.loop.create_task(_quiet(stub.Delete(objects_pb2.ObjectIds(ids=ids))))

    # ---- borrowing ----------------------------------------------------------------------
    def register_borrow(self, object_id: bytes, owner_bytes: bytes) -> None:
        """A ref owned elsewhere arrived here: tell its owner before using it.

        Synchronous so the owner learns of us before the sender can drop its pin.
        """
        if not owner_bytes or owner_bytes == self.owner_address or object_id in self._borrowed:
            return
        self._borrowed[object_id] = owner_bytes
        owner = self._owner_of(owner_bytes)
        try:
            self.peers.sync_peer_stub(owner).UpdateBorrows(
                worker_pb2.BorrowRequest(add_ids=[object_id], borrower=self.worker_id), timeout=10)
        except grpc.RpcError:
            pass  # the owner is gone; get() will report OwnerDiedError

    def _send_unborrow(self, object_id: bytes, owner_bytes: bytes) -> None:  # on the loop
        stub = self.peers.peer_stub(self._owner_of(owner_bytes))
        self.loop.create_task(_quiet(stub.UpdateBorrows(
            worker_pb2.BorrowRequest(remove_ids=[object_id], borrower=self.worker_id))))

    def _owner_of(self, owner_bytes: bytes) -> common_pb2.Address:
        owner = self._owner_cache.get(owner_bytes)
        if owner is None:
            owner = self._owner_cache[owner_bytes] = common_pb2.Address.FromString(owner_bytes)
        return owner

    # ---- other nodes' stores --------------------------------------------------------------
    def pull_remote(self, value: common_pb2.ObjectValue) -> str:
        """Copy an object from the node holding it into this node's store (see
        raylite.object_store.transfer); returns its local path. Raises ObjectLostError
        if it is gone, ObjectStoreFullError if there is no room here."""
        return pull_object(value, self.store, self._alive_node)

    def _alive_node(self, node_id: str):
        """Node ``node_id``'s NodeRecord; None when it is not alive."""
        node = self.nodes.nodes().get(node_id)
        return node if node is not None and is_alive(node, time.time()) else None

    # ---- waiting for values ---------------------------------------------------------------
    def _is_local(self, ref: ObjectRef) -> bool:
        return ref._owner == self.owner_address or self.refs.is_owned(ref._id) or not ref._owner

    def when_ready(self, ref: ObjectRef, callback) -> None:
        """Call ``callback(ObjectValue)`` (on any thread) once ``ref``'s value is known;
        a borrowed value is fetched from its owner."""
        oid = ref._id
        value = self.memory.get(oid)
        if value is not None:
            callback(value)
            return
        self.memory.on_ready(oid, lambda _oid, v: callback(v))
        if not self._is_local(ref) and oid not in self._fetching:
            self._fetching.add(oid)
            self.loop.call_soon_threadsafe(self._start_fetch, ref)

    def resolve_deps(self, spec, deps: list, on_resolved) -> None:
        """Fill ``spec.deps`` with the values of ``deps`` (the top-level ref arguments),
        in order, once all are known; then call ``on_resolved()`` on the event loop."""
        values = [None] * len(deps)
        remaining = [len(deps)]

        def arrived(index, value):  # on the loop
            values[index] = value
            remaining[0] -= 1
            if remaining[0] == 0:
                del spec.deps[:]
                spec.deps.extend(values)
                on_resolved()

        for index, ref in enumerate(deps):
            self.when_ready(ref, lambda v, i=index: self.loop.call_soon_threadsafe(arrived, i, v))

    def _start_fetch(self, ref: ObjectRef, lost_on_node: str = "") -> None:  # on the loop
        self.loop.create_task(self._fetch(ref, lost_on_node))

    async def _fetch(self, ref: ObjectRef, lost_on_node: str = "") -> None:
        oid = ref._id
        owner = self._owner_of(ref._owner)
        try:
            reply = await self.peers.peer_stub(owner).GetObject(
                worker_pb2.GetObjectRequest(id=oid, lost_on_node=lost_on_node))
            if reply.found:
                value = reply.value
            else:
                value = error_value(oid, exc.ObjectLostError(
                    oid.hex(), f"Object {oid.hex()} was freed by its owner or never existed."))
        except grpc.RpcError as err:
            value = error_value(oid, exc.OwnerDiedError(
                oid.hex(), f"The owner of object {oid.hex()} (worker {owner.worker_id[:8]}, pid "
                           f"{owner.pid}, on {describe_node(self.nodes, owner.node_id)}) "
                           f"died: {err.code().name}"))
        finally:
            self._fetching.discard(oid)
        self.memory.put(oid, value)

    def get(self, refs: list, timeout: float | None = None) -> list:
        """Values of ``refs`` in order. Raises GetTimeoutError, or the task's error
        (ObjectLostError / ObjectReconstructionFailedError for a value lost with its
        node that could not be rebuilt)."""
        values = [self.memory.get(r._id) if isinstance(r, ObjectRef) else _bad_ref(r) for r in refs]
        missing = [i for i, v in enumerate(values) if v is None]
        deadline = None if timeout is None else time.monotonic() + timeout
        if missing:
            self._wait_values(refs, values, missing, timeout)
        out = []
        for ref, value in zip(refs, values):
            while True:
                try:
                    out.append(self._materialize(value))
                    break
                except exc.ObjectLostError:
                    if not value.in_store or value.is_error:
                        raise
                # Its node is gone: the owner rebuilds it (or makes it an error value).
                self.recover_lost(ref, value.node_id)
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                box = [None]
                self._wait_values([ref], box, [0], left)
                value = box[0]
        return out

    def recover_lost(self, ref: ObjectRef, lost_on_node: str) -> None:
        """``ref``'s value could not be fetched from ``lost_on_node``: forget it and have
        it rebuilt -- here when we own it, else by its owner. Any thread."""
        oid = ref._id
        if ref._owner == self.owner_address or self.refs.is_owned(oid) or not ref._owner:
            reconstruction = self.reconstruction
            assert reconstruction is not None   # set by CoreWorker before any get
            reconstruction.recover(oid, lost_on_node)
            return
        self.memory.delete(oid)
        if oid not in self._fetching:
            self._fetching.add(oid)
            self.loop.call_soon_threadsafe(self._start_fetch, ref, lost_on_node)

    def resolve_values(self, refs: list) -> list:
        """The ObjectValues of refs (serialized, errors included), waiting for them."""
        values = [self.memory.get(r._id) for r in refs]
        missing = [i for i, v in enumerate(values) if v is None]
        if missing:
            self._wait_values(refs, values, missing, None)
        return values

    def _wait_values(self, refs, values, missing, timeout) -> None:
        done = threading.Event()
        remaining = [len(missing)]
        lock = threading.Lock()

        def ready(index, value):
            values[index] = value
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

        for i in missing:
            self.when_ready(refs[i], lambda v, i=i: ready(i, v))
        blocked = self.notify_blocked(True)
        try:
            if not done.wait(timeout):
                raise exc.GetTimeoutError(f"Get timed out: some object(s) not ready after {timeout}s.")
        finally:
            if blocked:
                self.notify_blocked(False)

    def _materialize(self, value: common_pb2.ObjectValue):
        obj = self.store.from_value(value)
        if value.is_error:
            if isinstance(obj, exc.RayTaskError):
                raise obj.as_instanceof_cause()
            raise obj
        return obj

    def get_async(self, ref: ObjectRef, callback) -> None:
        """Call ``callback(value, error)`` once ``ref`` is ready (for asyncio futures)."""
        def ready(value):
            try:
                callback(self._materialize(value), None)
            except BaseException as err:  # noqa: BLE001
                callback(None, err)
        self.when_ready(ref, ready)

    def wait(self, refs: list, num_returns: int, timeout: float | None, fetch_local: bool):
        """(ready, not_ready), each in the order of ``refs``, once ``num_returns`` are
        ready or ``timeout`` passes; ready holds at most ``num_returns`` refs."""
        ready_ids: set = set()
        done = threading.Event()
        lock = threading.Lock()

        def mark(oid):
            with lock:
                ready_ids.add(oid)
                if len(ready_ids) >= num_returns:
                    done.set()

        for ref in refs:
            if self.memory.contains(ref._id):
                mark(ref._id)
        if len(ready_ids) < num_returns:
            for ref in refs:
                if ref._id not in ready_ids:
                    self.when_ready(ref, lambda v, oid=ref._id: mark(oid))
            blocked = self.notify_blocked(True)
            try:
                done.wait(timeout)
            finally:
                if blocked:
                    self.notify_blocked(False)
        with lock:
            snapshot = set(ready_ids)
        ready: list = []
        not_ready: list = []
        for ref in refs:
            if ref._id in snapshot and len(ready) < num_returns:
                ready.append(ref)
            else:
                not_ready.append(ref)
        return ready, not_ready


def error_value(object_id: bytes, error: BaseException) -> common_pb2.ObjectValue:
    """``error`` as the value of ``object_id``, inline. An error that cannot be pickled
    and rebuilt becomes a RayError describing it (inside the RayTaskError, keeping its
    traceback, when it is a task's) or a RaySystemError; never raises for that."""
    try:
        data = serialize(error).to_bytes()
        deserialize(data)  # some exceptions pickle but cannot be rebuilt (cls(*args))
    except Exception as why:
        if isinstance(error, exc.RayTaskError) and error.cause is not None:
            # Keep the remote traceback and message; the cause becomes a RayError
            # that describes it, as in Ray.
            kind = type(error.cause)
            reason = why
            try:
                deserialize(serialize(error.cause).to_bytes())
            except Exception as cause_why:
                reason = cause_why
            cause = exc.RayError(f"Exception {kind.__module__}.{kind.__qualname__} isn't "
                                 f"serializable: {reason}.\nOriginal exception details:\n"
                                 f"{error.traceback_str}")
            error = exc.RayTaskError(error.function_name, error.traceback_str, cause,
                                     error.pid, error.ip, error.call_site)
            data = serialize(error).to_bytes()
        else:
            data = serialize(exc.RaySystemError(f"{type(error).__name__}: {error}")).to_bytes()
    return common_pb2.ObjectValue(id=object_id, data=data, size=len(data), is_error=True)


def relabeled(value: common_pb2.ObjectValue, object_id: bytes) -> common_pb2.ObjectValue:
    """A copy of ``value`` stored under another id (an argument's error, passed on to
    each return of the task that received it)."""
    out = common_pb2.ObjectValue()
    out.CopyFrom(value)
    out.id = object_id
    return out


async def _quiet(awaitable) -> None:
    try:
        await awaitable
    except grpc.RpcError:
        pass


def _bad_ref(value):
    raise TypeError(f"get() expects ObjectRefs, got {type(value).__name__}: {value!r}")
