"""Generator tasks without processes: the caller's record of streamed items
(order, retries re-yielding what it has, the end of the stream, backpressure acks,
dropping the generator) and the worker's GeneratorFlow pausing for the caller."""
from __future__ import annotations

import threading

import pytest

from raylite.core import global_state
from raylite.core.generator_runner import GeneratorFlow
from raylite.core.generators import (
    DYNAMIC,
    STREAMING,
    UNLIMITED,
    DynamicObjectRefGenerator,
    GeneratorTable,
    ObjectRefGenerator,
    item_id,
)
from raylite.core.memory_store import MemoryStore
from raylite.core.object_ref import ObjectRef
from raylite.core.reference_counter import ReferenceCounter
from raylite.ids import object_id_for
from raylite.protocol import common_pb2, worker_pb2
from raylite.serialization import deserialize, serialize

TASK = b"t" * 16


class _Loop:
    def call_soon_threadsafe(self, fn, *args):
        fn(*args)


class _Stream:
    alive = True

    def __init__(self):
        self.acks: list = []

    def ack(self, task_id, consumed):
        self.acks.append(consumed)


class _IO:
    def from_value(self, value):
        return deserialize(value.data)

    def to_value(self, object_id, value, is_error=False, serialized=None, owner=""):
        ser = serialized if serialized is not None else serialize(value)
        return common_pb2.ObjectValue(id=object_id, data=ser.to_bytes(), is_error=is_error)


class _Objects:
    """The part of ObjectManager the generator table uses."""

    def __init__(self, worker):
        self.worker = worker
        self.contained: dict = {}

    def pin_contained(self, refs, holder=b""):
        for ref in refs:
            self.worker.refs.pin(ref.binary())
        if holder:
            self.contained[holder] = [r.binary() for r in refs]

    def free_store(self, object_ids):
        pass


class _Worker:
    address_bytes = b"owner"

    def __init__(self):
        self.freed: list = []
        self.refs = ReferenceCounter(lambda oid, owned: self.freed.append(oid))
        self.memory = MemoryStore()
        self.loop = _Loop()
        self.io = _IO()
        self.objects = _Objects(self)
        self.generators = GeneratorTable(self)

    def _notify_blocked(self, blocked):
        return False

    def error_value(self, object_id, error):
        return common_pb2.ObjectValue(id=object_id, data=serialize(error).to_bytes(), is_error=True)


def _item(index, value, task=TASK):
    data = serialize(value).to_bytes()
    return worker_pb2.GeneratorItem(task_id=task, index=index,
                                    value=common_pb2.ObjectValue(data=data))


def _spec(kind=STREAMING):
    return common_pb2.TaskSpec(task_id=TASK, generator=kind, num_returns=1,
                               return_ids=object_id_for(TASK, 1))


def _finish(worker, returns):
    spec = _spec(worker.generators.records[TASK].kind)
    returns = worker.generators.finishing(spec, returns)
    for value in returns:
        worker.memory.put(value.id, value)
    worker.generators.finished(TASK)
    return returns


def _streaming(worker, backpressure=0):
    record = worker.generators.register(TASK, STREAMING, backpressure)
    completion = ObjectRef(object_id_for(TASK, 1), worker.address_bytes)
    return ObjectRefGenerator(completion, record, worker.generators)


def _values(worker, refs):
    return [deserialize(worker.memory.get(r.binary()).data) for r in refs]


def test_items_reach_the_consumer_in_order_and_the_stream_ends():
    worker = _Worker()
    gen = _streaming(worker)
    worker.generators.items_arrived([_item(0, "a"), _item(1, "b")])
    assert gen.next_ready()
    first, second = next(gen), next(gen)
    assert first.binary() == item_id(TASK, 0)
    assert _values(worker, [first, second]) == ["a", "b"]
    assert not gen.next_ready() and not gen.is_finished()
    _finish(worker, [common_pb2.ObjectValue(id=object_id_for(TASK, 1), data=serialize(None).to_bytes())])
    assert gen.is_finished()
    with pytest.raises(StopIteration):
        next(gen)


def test_a_retry_re_yielding_items_delivers_each_once():
    worker = _Worker()
    gen = _streaming(worker)
    worker.generators.items_arrived([_item(0, 0), _item(1, 1)])
    # The worker died; the retry starts from index 0 again.
    worker.generators.items_arrived([_item(0, 0), _item(1, 1), _item(2, 2)])
    refs = [next(gen) for _ in range(3)]
    assert _values(worker, refs) == [0, 1, 2]
    assert not gen.next_ready()


def test_an_error_ending_the_stream_is_handed_out_once():
    worker = _Worker()
    gen = _streaming(worker)
    worker.generators.items_arrived([_item(0, 1)])
    _finish(worker, [worker.error_value(object_id_for(TASK, 1), RuntimeError("died"))])
    assert next(gen).binary() == item_id(TASK, 0)
    assert gen.next_ready()
    assert next(gen) is gen.completed()
    assert gen.is_finished()
    with pytest.raises(StopIteration):
        next(gen)


def test_the_generators_own_exception_becomes_its_next_item():
    from raylite.exceptions import RayTaskError
    worker = _Worker()
    gen = _streaming(worker)
    worker.generators.items_arrived([_item(0, 1)])
    error = RayTaskError("numbers", "Traceback ...", ValueError("boom"), 1, "127.0.0.1", "")
    _finish(worker, [worker.error_value(object_id_for(TASK, 1), error)])
    assert next(gen).binary() == item_id(TASK, 0)
    second = next(gen)
    assert second.binary() == item_id(TASK, 1)
    assert worker.memory.get(second.binary()).is_error
    # The stream itself ended normally, as in Ray.
    assert not worker.memory.get(object_id_for(TASK, 1)).is_error
    with pytest.raises(StopIteration):
        next(gen)


def test_consumer_progress_is_acked_to_the_current_stream():
    worker = _Worker()
    gen = _streaming(worker, backpressure=2)
    first = _Stream()
    worker.generators.sent(TASK, first)
    worker.generators.items_arrived([_item(0, 0), _item(1, 1)])
    next(gen)
    next(gen)
    assert first.acks == [1, 2]
    # Sent again after a retry: the new worker learns at once what was consumed.
    second = _Stream()
    worker.generators.sent(TASK, second)
    assert second.acks == [2]


def test_dropping_the_generator_frees_untaken_items_and_unpauses_the_task(monkeypatch):
    worker = _Worker()
    monkeypatch.setattr(global_state, "_worker", worker)   # refs handed out are counted
    gen = _streaming(worker, backpressure=1)
    stream = _Stream()
    worker.generators.sent(TASK, stream)
    worker.generators.items_arrived([_item(0, 0), _item(1, 1)])
    taken = next(gen)
    del gen
    assert item_id(TASK, 1) in worker.freed
    assert item_id(TASK, 0) not in worker.freed     # the consumer still holds it
    assert stream.acks[-1] == UNLIMITED
    # Items still streaming in after the drop are ignored.
    worker.generators.items_arrived([_item(2, 2)])
    assert not worker.memory.contains(item_id(TASK, 2))
    assert taken.binary() == item_id(TASK, 0)


def test_async_consumer_wakes_when_an_item_arrives():
    import asyncio
    worker = _Worker()
    gen = _streaming(worker)

    async def consume():
        task = asyncio.ensure_future(gen.__anext__())
        await asyncio.sleep(0)
        assert not task.done()
        worker.generators.items_arrived([_item(0, "x")])
        return await task

    ref = asyncio.run(consume())
    assert _values(worker, [ref]) == ["x"]


def test_dynamic_return_lists_the_items_and_keeps_them_alive():
    worker = _Worker()
    worker.generators.register(TASK, DYNAMIC, 0)
    completion = object_id_for(TASK, 1)
    worker.refs.add_local(completion)        # the caller's ref to the return
    worker.generators.items_arrived([_item(0, 10), _item(1, 20)])
    returns = _finish(worker, [common_pb2.ObjectValue(id=completion, data=serialize(None).to_bytes())])
    value = deserialize(returns[0].data)
    assert isinstance(value, DynamicObjectRefGenerator)
    assert [r.binary() for r in value] == [item_id(TASK, 0), item_id(TASK, 1)]
    assert worker.objects.contained[completion] == [item_id(TASK, 0), item_id(TASK, 1)]
    assert TASK not in worker.generators.records


# ---- the worker's side ----------------------------------------------------------------------

class _Executor:
    def __init__(self):
        self.worker = _Worker()
        self.cancelled: set = set()   # ids of running tasks cancelled (Executor.cancelled)

    def wrap_error(self, spec, err):
        return err


def test_flow_pauses_when_the_caller_lags_and_resumes_on_ack():
    reported: list = []
    flow = GeneratorFlow(reported.append, limit=2)
    runner = threading.Thread(target=flow.run, args=(_Executor(), _spec(), iter(range(10))))
    runner.start()
    runner.join(0.2)
    assert runner.is_alive() and len(reported) == 2
    flow.acked(1)
    flow.acked(UNLIMITED)
    runner.join(10)
    assert not runner.is_alive()
    assert [item.index for item in reported] == list(range(10))


def test_flow_lets_the_generators_exception_end_the_task():
    reported: list = []

    def numbers():
        yield 1
        raise ValueError("boom")

    with pytest.raises(ValueError):
        GeneratorFlow(reported.append, limit=0).run(_Executor(), _spec(), numbers())
    assert [item.index for item in reported] == [0]
