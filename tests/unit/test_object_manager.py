"""ObjectManager through fakes of its collaborators (raylite.core.interfaces): no
process, socket or event loop is started."""
from __future__ import annotations

import threading

import grpc
import pytest

from raylite import exceptions as exc
from raylite.core.memory_store import MemoryStore
from raylite.core.object_manager import ObjectManager, error_value
from raylite.core.object_ref import ObjectRef
from raylite.core.reference_counter import ReferenceCounter
from raylite.protocol import common_pb2, worker_pb2
from raylite.serialization import deserialize, serialize

ME = common_pb2.Address(node_id="node-1", worker_id="me", pid=1).SerializeToString()
OTHER = common_pb2.Address(node_id="node-1", worker_id="other", pid=2).SerializeToString()


class InlineLoop:
    """Runs what is handed to the loop at once, on the calling thread."""

    def call_soon_threadsafe(self, callback, *args):
        callback(*args)

    def create_task(self, coro):
        # The fakes' coroutines never suspend: one step runs them to the end.
        with pytest.raises(StopIteration):
            coro.send(None)


class PickleStore:
    """Every value inline, pickled as the real store client does for small values."""

    def to_value(self, object_id, value, is_error=False, serialized=None, owner=""):
        ser = serialized if serialized is not None else serialize(value)
        return common_pb2.ObjectValue(id=object_id, data=ser.to_bytes(), size=ser.total_size,
                                      is_error=is_error)

    def from_value(self, value):
        return deserialize(value.data)


class DeadOwner(grpc.RpcError):
    def code(self):
        return grpc.StatusCode.UNAVAILABLE


class FakeWorkerStub:
    def __init__(self, peers, owner):
        self.peers, self.owner = peers, owner

    async def GetObject(self, request):
        if self.owner.worker_id in self.peers.dead:
            raise DeadOwner()
        value = self.peers.remote_values.get(request.id)
        return worker_pb2.GetObjectReply(found=value is not None, ready=True, value=value)

    async def UpdateBorrows(self, request):
        self.peers.unborrows.extend(request.remove_ids)

    def sync_UpdateBorrows(self, request, timeout=None):
        self.peers.borrows.extend(request.add_ids)


class FakePeers:
    def __init__(self):
        self.remote_values: dict = {}    # what other owners hold
        self.dead: set = set()
        self.deleted: list = []
        self.borrows: list = []
        self.unborrows: list = []

    def peer_stub(self, address):
        return FakeWorkerStub(self, address)

    def sync_peer_stub(self, address):
        stub = FakeWorkerStub(self, address)
        stub.UpdateBorrows = stub.sync_UpdateBorrows
        return stub

    def sync_channel(self, target):
        raise AssertionError("no cross-node pull in these tests")

    def local_store_stub(self):
        peers = self

        class Store:
            async def Delete(self, request):
                peers.deleted.extend(request.ids)
        return Store()


class NoNodes:
    def nodes(self):
        return {}


def make_manager():
    peers = FakePeers()
    blocked: list = []

    def notify_blocked(flag):
        blocked.append(flag)
        return True

    manager = None
    refs = ReferenceCounter(lambda oid, owned: manager.free_object(oid, owned))
    manager = ObjectManager(loop=InlineLoop(), memory=MemoryStore(), refs=refs, store=PickleStore(),
                            nodes=NoNodes(), peers=peers, notify_blocked=notify_blocked,
                            owner_address=ME, node_id="node-1", worker_id="me", token="t")
    return manager, peers, blocked


def owned(manager, oid: bytes) -> ObjectRef:
    manager.refs.add_owned(oid)
    return ObjectRef(oid, ME, _count=False)


def value_of(oid: bytes, obj, *, in_store=False) -> common_pb2.ObjectValue:
    data = serialize(obj).to_bytes()
    return common_pb2.ObjectValue(id=oid, data=data, size=len(data), in_store=in_store,
                                  node_id="node-1" if in_store else "")


# ---- error_value ---------------------------------------------------------------------------

class NeedsTwoArgs(Exception):
    """Pickles, but cannot be rebuilt as cls(*args)."""

    def __init__(self, a, b):
        super().__init__(a)


def test_error_value_of_an_unpicklable_error_is_a_system_error():
    value = error_value(b"x" * 28, ValueError(threading.Lock()))
    assert value.is_error and value.id == b"x" * 28
    error = deserialize(value.data)
    assert isinstance(error, exc.RaySystemError) and "ValueError" in str(error)


def test_error_value_keeps_the_task_traceback_when_the_cause_cannot_be_rebuilt():
    task_error = exc.RayTaskError("f", "Traceback: line 7 in f", NeedsTwoArgs(1, 2), 9, "ip", "")
    error = deserialize(error_value(b"y" * 28, task_error).data)
    assert isinstance(error, exc.RayTaskError)
    assert "line 7 in f" in error.traceback_str
    assert isinstance(error.cause, exc.RayError) and "NeedsTwoArgs" in str(error.cause)


def test_error_value_of_a_plain_error_round_trips():
    error = deserialize(error_value(b"z" * 28, KeyError("k")).data)
    assert isinstance(error, KeyError) and error.args == ("k",)


# ---- owned values and freeing ---------------------------------------------------------------

def test_store_owned_value_nobody_references_is_freed_at_once():
    manager, peers, _ = make_manager()
    oid = b"a" * 28
    manager.refs.add_owned(oid)
    manager.store_owned_value(value_of(oid, 1, in_store=True))
    assert manager.memory.get(oid) is None
    assert peers.deleted == [oid]


def test_store_owned_value_someone_references_is_kept():
    manager, peers, _ = make_manager()
    oid = b"b" * 28
    manager.refs.add_owned(oid)
    manager.refs.add_local(oid)
    manager.store_owned_value(value_of(oid, 1, in_store=True))
    assert manager.memory.get(oid) is not None and peers.deleted == []
    manager.refs.remove_local(oid)          # the last ref goes: value and stored copy too
    assert manager.memory.get(oid) is None and peers.deleted == [oid]


def test_refs_inside_a_put_value_stay_pinned_until_it_is_freed():
    manager, _, _ = make_manager()
    inner = owned(manager, b"i" * 28)
    ref = manager.put([inner])
    assert manager.refs.in_use(inner.binary())
    manager.refs.add_local(ref.binary())
    manager.refs.remove_local(ref.binary())
    assert not manager.refs.in_use(inner.binary())


def test_put_refuses_an_object_ref():
    manager, _, _ = make_manager()
    with pytest.raises(TypeError):
        manager.put(owned(manager, b"r" * 28))


# ---- dependencies and borrowed values ------------------------------------------------------------

def test_resolve_deps_fills_spec_deps_in_order_once_all_arrive():
    manager, _, _ = make_manager()
    refs = [owned(manager, bytes([n]) * 28) for n in (1, 2, 3)]
    spec = common_pb2.TaskSpec()
    resolved: list = []
    manager.resolve_deps(spec, refs, lambda: resolved.append(list(spec.deps)))
    for n in (3, 1):
        manager.memory.put(bytes([n]) * 28, value_of(bytes([n]) * 28, n))
    assert resolved == [] and len(spec.deps) == 0
    manager.memory.put(b"\x02" * 28, value_of(b"\x02" * 28, 2))
    assert len(resolved) == 1
    assert [deserialize(v.data) for v in resolved[0]] == [1, 2, 3]


def test_a_borrowed_value_is_fetched_from_its_owner():
    manager, peers, _ = make_manager()
    oid = b"f" * 28
    peers.remote_values[oid] = value_of(oid, "theirs")
    assert manager.get([ObjectRef(oid, OTHER, _count=False)], timeout=1) == ["theirs"]


def test_a_dead_owner_makes_get_raise_owner_died():
    manager, peers, _ = make_manager()
    peers.dead.add("other")
    with pytest.raises(exc.OwnerDiedError):
        manager.get([ObjectRef(b"g" * 28, OTHER, _count=False)], timeout=1)


def test_a_freed_borrow_is_reported_to_its_owner():
    manager, peers, _ = make_manager()
    oid = b"h" * 28
    manager.register_borrow(oid, OTHER)
    assert peers.borrows == [oid]
    manager.refs.add_local(oid)
    manager.refs.remove_local(oid)
    assert peers.unborrows == [oid]


# ---- get and wait -----------------------------------------------------------------------------

def test_get_raises_the_stored_error_and_times_out_on_missing_values():
    manager, _, blocked = make_manager()
    failed = owned(manager, b"e" * 28)
    manager.memory.put(failed.binary(), error_value(failed.binary(), KeyError("gone")))
    with pytest.raises(KeyError):
        manager.get([failed])
    with pytest.raises(exc.GetTimeoutError):
        manager.get([owned(manager, b"m" * 28)], timeout=0)
    assert blocked == [True, False]     # the CPU was lent back while blocked


def test_wait_returns_ready_refs_in_input_order_up_to_num_returns():
    manager, _, _ = make_manager()
    refs = [owned(manager, bytes([n]) * 28) for n in (10, 11, 12, 13)]
    for ref in (refs[3], refs[1]):
        manager.memory.put(ref.binary(), value_of(ref.binary(), 0))
    assert manager.wait(refs, 2, 0, True) == ([refs[1], refs[3]], [refs[0], refs[2]])
    assert manager.wait(refs, 1, 0, True) == ([refs[1]], [refs[0], refs[2], refs[3]])
    ready, not_ready = manager.wait(refs, 3, 0, True)          # times out with two ready
    assert ready == [refs[1], refs[3]] and not_ready == [refs[0], refs[2]]
