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
from raylite.object_store.transfer import pull_object
from raylite.protocol import objects_pb2_grpc

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


def test_pull_copies_an_object_between_stores_in_chunks(nodes, monkeypatch):
    a, b = nodes
    monkeypatch.setattr(service_module, "CHUNK", 256 * 1024)
    array = np.random.default_rng(0).random(MiB // 8 + 5)  # several chunks, one partial
    value = a.io.to_value(b"\x03" * 28, array)
    addresses = {"node-a": "addr-a"}
    path = pull_object(value, b.io, "token", lambda node: addresses.get(node, ""),
                       {"addr-a": a.channel}.__getitem__)
    assert path.startswith(b.store.directory)
    assert a.channel.chunks == 5
    assert b.store.objects[value.id.hex()].size == value.size
    assert np.array_equal(b.io.from_value(value), array)   # read locally now


def test_client_pulls_through_the_transfer_when_the_object_is_elsewhere(nodes):
    a, b = nodes
    b.io.pull = lambda v: pull_object(v, b.io, "token", {"node-a": "addr-a"}.get,
                                      {"addr-a": a.channel}.__getitem__)
    value = a.io.to_value(b"\x04" * 28, np.ones(MiB // 8))
    assert b.io.from_value(value).sum() == MiB // 8
    assert b.io.from_value(value).sum() == MiB // 8
    assert a.channel.pulls == 1                              # the local copy is reused


def test_pull_from_a_node_that_is_gone_raises_object_lost(nodes):
    a, b = nodes
    value = a.io.to_value(b"\x05" * 28, np.ones(MiB // 8))
    with pytest.raises(ObjectLostError, match="which is gone"):
        pull_object(value, b.io, "token", lambda node: "", lambda address: a.channel)


def test_pull_of_an_object_the_node_no_longer_has_raises_object_lost(nodes):
    a, b = nodes
    value = a.io.to_value(b"\x06" * 28, np.ones(MiB // 8))
    a.io.delete([value.id])
    with pytest.raises(ObjectLostError, match="NOT_FOUND"):
        pull_object(value, b.io, "token", lambda node: "addr-a", lambda address: a.channel)


def test_an_unreachable_store_raises_object_lost_without_a_pull_hook(nodes):
    a, b = nodes
    value = a.io.to_value(b"\x07" * 28, np.ones(MiB // 8))
    with pytest.raises(ObjectLostError, match="cannot be reached"):
        b.io.from_value(value)
