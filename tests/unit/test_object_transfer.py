"""The object store's room without sockets: the service (object_store/service.py) over
a store in a temporary directory, the client (object_store/client.py) calling it
through an in-process channel, and node-to-node pulls (object_store/transfer.py)."""
from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from raylite.exceptions import ObjectLostError
from raylite.object_store import service as service_module
from raylite.object_store.client import ObjectIO
from raylite.object_store.service import ObjectStoreService
from raylite.object_store.store import SharedMemoryStore
from raylite.object_store.transfer import Puller, TransferFailed, pull_object
from raylite.protocol import objects_pb2, objects_pb2_grpc

MiB = 1 << 20


class Aborted(grpc.RpcError):
    def __init__(self, code):
        self._code = code

    def code(self):
        return self._code


class Context:
    async def abort(self, code, details):
        raise Aborted(code)


class InProcessChannel:
    """A grpc.Channel stand-in that calls a servicer's async methods directly."""

    def __init__(self, service: ObjectStoreService):
        self.service = service
        self.pulls = 0
        self.chunks = 0  # messages in the last stream

    def unary_unary(self, path, **_):
        method = getattr(self.service, path.rsplit("/", 1)[1])
        return lambda request, metadata=None: asyncio.run(method(request, Context()))

    def unary_stream(self, path, **_):
        method = getattr(self.service, path.rsplit("/", 1)[1])

        def call(request, metadata=None):
            self.pulls += 1

            async def collect():
                return [chunk async for chunk in method(request, Context())]
            chunks = asyncio.run(collect())
            self.chunks = len(chunks)
            return iter(chunks)
        return call

    stream_unary = stream_stream = unary_stream

    def close(self):
        pass


class Node:
    """One node's store, its service and a client bound to it."""

    def __init__(self, root, node_id: str):
        self.node_id = node_id
        self.store = SharedMemoryStore(str(root / node_id / "shm"), 64 * MiB, str(root / node_id / "spill"))
        self.service = ObjectStoreService(self.store, node_id)
        self.channel = InProcessChannel(self.service)
        stub = objects_pb2_grpc.ObjectStoreStub(self.channel)
        self.io = ObjectIO(node_id, self.store.directory, stub)


@pytest.fixture
def nodes(tmp_path):
    a, b = Node(tmp_path, "node-a"), Node(tmp_path, "node-b")
    yield a, b
    a.store.cleanup()
    b.store.cleanup()


def test_client_writes_large_values_into_the_store_and_maps_them_back(nodes):
    a, _ = nodes
    array = np.arange(MiB // 8, dtype=np.float64) * 0.5
    value = a.io.to_value(b"\x01" * 28, array)
    assert value.in_store and value.node_id == "node-a"
    assert value.id.hex() in a.store.objects
    back = a.io.from_value(value)
    assert np.array_equal(back, array) and not back.flags.writeable
    a.io.delete([value.id])
    assert value.id.hex() not in a.store.objects


def test_small_values_stay_inline(nodes):
    a, _ = nodes
    value = a.io.to_value(b"\x02" * 28, {"x": 1})
    assert not value.in_store and a.io.from_value(value) == {"x": 1}
    assert not a.store.objects


class FakePuller:
    """Stands in for transfer.Puller: copies the object from the holder's store file
    (no socket), once ``release`` is set; counts pulls."""

    def __init__(self, holder: Node, fail: str = ""):
        self.holder = holder
        self.fail = fail
        self.calls = 0
        self.release = asyncio.Event()

    async def pull(self, path, reused, request):
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise TransferFailed(self.fail)
        with open(self.holder.store.path(request.id.hex()), "rb") as src, open(path, "wb") as dst:
            dst.write(src.read())
        return 1


def read_through_store(node: Node) -> None:
    """Reads of remote objects go through ``node``'s store (Fetch), as in a worker."""
    node.io.pull = lambda v: node.io.fetch(v.id, v.size, v.node_id, "", "addr-" + v.node_id)


def fetch_request(value, node: Node):
    return objects_pb2.FetchRequest(id=value.id, size=value.size, node_id=node.node_id,
                                    transfer_address="", store_address="addr-" + node.node_id)


def test_concurrent_readers_share_one_pull(nodes):
    a, b = nodes
    value = a.io.to_value(b"\x03" * 28, np.arange(MiB // 8, dtype=np.float64))
    puller = b.service.puller = FakePuller(a)

    async def readers():
        calls = [asyncio.ensure_future(b.service.Fetch(fetch_request(value, a), Context()))
                 for _ in range(4)]
        await asyncio.sleep(0.01)
        assert puller.calls == 1 and not any(c.done() for c in calls)
        puller.release.set()
        return await asyncio.gather(*calls)
    replies = asyncio.run(readers())
    assert puller.calls == 1
    assert {r.path for r in replies} == {b.store.path(value.id.hex())} and not any(r.error for r in replies)
    stored = b.store.objects[value.id.hex()]
    assert stored.sealed and stored.secondary and stored.size == value.size
    read_through_store(b)
    assert np.array_equal(b.io.from_value(value), np.arange(MiB // 8, dtype=np.float64))
    # A later reader finds the copy: no second pull.
    assert asyncio.run(b.service.Fetch(fetch_request(value, a), Context())).path
    assert puller.calls == 1


def test_a_failed_pull_reports_to_every_reader_and_leaves_no_reservation(nodes):
    a, b = nodes
    value = a.io.to_value(b"\x04" * 28, np.ones(MiB // 8))
    puller = b.service.puller = FakePuller(a, fail="connection reset")
    puller.release.set()

    async def readers():
        return await asyncio.gather(*(b.service.Fetch(fetch_request(value, a), Context())
                                      for _ in range(3)))
    replies = asyncio.run(readers())
    assert puller.calls == 1
    assert all("connection reset" in r.error and not r.store_full for r in replies)
    assert value.id.hex() not in b.store.objects and b.store.used == 0
    read_through_store(b)
    with pytest.raises(ObjectLostError, match="connection reset"):
        b.io.from_value(value)


def test_reading_a_remote_object_always_asks_the_store(nodes):
    """A file that exists may be another reader's transfer in progress: the reader
    waits for the store's answer instead of mapping it."""
    a, b = nodes
    value = a.io.to_value(b"\x05" * 28, np.ones(MiB // 8))
    asked = []
    b.io.pull = lambda v: asked.append(v.id) or b.io.fetch(v.id, v.size, "node-a", "", "addr-a")
    b.service.puller = FakePuller(a)
    b.service.puller.release.set()
    assert b.io.from_value(value).sum() == MiB // 8
    assert b.io.from_value(value).sum() == MiB // 8
    assert asked == [value.id, value.id] and b.service.puller.calls == 1


def test_pull_from_a_node_that_is_gone_raises_object_lost(nodes):
    a, b = nodes
    value = a.io.to_value(b"\x06" * 28, np.ones(MiB // 8))
    with pytest.raises(ObjectLostError, match="which is gone"):
        pull_object(value, b.io, lambda node: None)


def test_an_unreachable_store_raises_object_lost_without_a_pull_hook(nodes):
    a, b = nodes
    value = a.io.to_value(b"\x07" * 28, np.ones(MiB // 8))
    with pytest.raises(ObjectLostError, match="cannot be reached"):
        b.io.from_value(value)


def test_the_grpc_fallback_writes_chunks_in_place(nodes, monkeypatch):
    """A holder without a transfer server: its Pull stream, chunk by chunk, into the
    destination mapping."""
    a, b = nodes
    monkeypatch.setattr(service_module, "CHUNK", 256 * 1024)
    array = np.random.default_rng(0).random(MiB // 8 + 5)   # several chunks, one partial
    value = a.io.to_value(b"\x08" * 28, array)
    puller = Puller("token", "addr-b", streams=4)
    puller.channel_to = {"addr-node-a": a.channel}.__getitem__
    b.service.puller = puller
    try:
        reply = asyncio.run(b.service.Fetch(fetch_request(value, a), Context()))
    finally:
        puller.close()
    assert not reply.error and reply.path.startswith(b.store.directory)
    assert a.channel.chunks == 5
    read_through_store(b)
    assert np.array_equal(b.io.from_value(value), array)


# ---- the sending side: pins and copies ---------------------------------------------------------
def test_an_object_being_sent_is_pinned_and_its_copies_are_dropped_with_it(nodes):
    a, _ = nodes
    value = a.io.to_value(b"\x09" * 28, np.ones(2 * MiB // 8))
    hex_id = value.id.hex()
    f, size = a.service._open(hex_id, "addr-b")
    assert size == value.size and a.store.pins == {hex_id: 1}
    forwarded = []

    async def record(address, ids):
        forwarded.append((address, ids))
    a.service._drop_copies = record

    async def delete():
        await a.service.Delete(objects_pb2.ObjectIds(ids=[value.id]), Context())
        await asyncio.sleep(0)
    asyncio.run(delete())
    assert forwarded == [("addr-b", [value.id])]
    # Deleted while being sent: unlinked, not recycled under the sender, which reads on.
    assert a.store.pool == []
    assert len(f.read()) == size
    f.close()
    a.store.unpin(hex_id)
    assert a.store.pins == {}


def test_open_for_transfer_refuses_an_object_that_is_not_here(nodes):
    a, _ = nodes
    with pytest.raises(LookupError, match="not in the store"):
        a.service._open("ab" * 28, "addr-b")


def test_a_forwarded_delete_drops_only_cached_copies(nodes):
    a, b = nodes
    primary = a.io.to_value(b"\x0a" * 28, np.ones(MiB // 8))
    asyncio.run(a.service.Delete(objects_pb2.ObjectIds(ids=[primary.id], copies_only=True), Context()))
    assert primary.id.hex() in a.store.objects          # a primary is never dropped that way
    b.service.puller = FakePuller(a)
    b.service.puller.release.set()
    asyncio.run(b.service.Fetch(fetch_request(primary, a), Context()))
    asyncio.run(b.service.Delete(objects_pb2.ObjectIds(ids=[primary.id], copies_only=True), Context()))
    assert primary.id.hex() not in b.store.objects
    assert [size for size, _ in b.store.pool] == [primary.size]   # recycled for the next pull
