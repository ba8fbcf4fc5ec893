"""Generator tasks, the caller's side: ObjectRefGenerator, DynamicObjectRefGenerator and
the per-task record of the items a generator task has reported so far.

A generator task (``num_returns="streaming"`` or ``"dynamic"``) reports each value it
yields as a GeneratorItem on its task stream, before its result. The caller owns the
items: item ``i`` is object ``object_id_for(task_id, i + 2)``; the task's one return
(index 1) ends the stream and holds None, or the error that ended it. A retried task
yields from index 0 again and the caller keeps only indices it does not have yet, so
nothing reaches the consumer twice (as in Ray, a retried generator must be
deterministic).
"""
from __future__ import annotations

import asyncio
import threading
import time

from raylite.core.object_ref import ObjectRef
from raylite.ids import object_id_for

# common.proto's GeneratorKind (not imported: `import raylite` loads no protobuf).
STREAMING = 1
DYNAMIC = 2
UNLIMITED = 1 << 62          # "consumed everything": unpauses a task nobody reads


def item_id(task_id: bytes, index: int) -> bytes:
    """The object id of the ``index``-th (0-based) value a generator task yields."""
    return object_id_for(task_id, index + 2)


class GeneratorRecord:
    """What the owner knows of one generator task: the ids of the items received, in
    order, and whether the task is over. Items arrive on the event loop; consumers read
    on their own threads (or event loops) under ``cond``."""

    __slots__ = ("task_id", "kind", "backpressure", "items", "finished", "cond", "waiters",
                 "read", "stream", "ack_scheduled", "dropped")

    def __init__(self, task_id: bytes, kind: int, backpressure: int):
        self.task_id = task_id
        self.kind = kind
        self.backpressure = backpressure
        self.items: list[bytes] = []
        self.finished = False
        self.cond = threading.Condition(threading.Lock())
        self.waiters: list = []          # (loop, future) of async consumers
        self.read = 0                    # items handed to the consumer so far
        self.stream = None               # the task stream it was last sent on (acks)
        self.ack_scheduled = False
        self.dropped = False

    def _wake(self) -> None:
        # Called with cond held.
        self.cond.notify_all()
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for loop, fut in waiters:
                loop.call_soon_threadsafe(_resolve, fut)


def common_item(task_id: bytes, index: int, value):
    """A GeneratorItem holding a copy of ``value`` (loads protobuf only when used)."""
    from raylite.protocol import common_pb2, worker_pb2
    copy = common_pb2.ObjectValue()
    copy.CopyFrom(value)
    return worker_pb2.GeneratorItem(task_id=task_id, index=index, value=copy)


def _resolve(fut) -> None:
    if not fut.done():
        fut.set_result(None)


class GeneratorTable:
    """The generator records of one CoreWorker (the owner side)."""

    def __init__(self, worker):
        self.worker = worker
        self.records: dict[bytes, GeneratorRecord] = {}

    def register(self, task_id: bytes, kind: int, backpressure: int) -> GeneratorRecord:
        record = self.records[task_id] = GeneratorRecord(task_id, kind, backpressure)
        return record

    # ---- event loop: the task's side -----------------------------------------------------
    def items_arrived(self, items) -> None:
        """GeneratorItems from a task stream (loop thread)."""
        worker = self.worker
        refs = worker.refs
        for item in items:
            record = self.records.get(item.task_id)
            if record is None or record.dropped:
                # Nobody will read it; its task ends on its own.
                if record is not None and item.value.in_store and item.index >= len(record.items):
                    worker.objects.free_store([item.value.id])
                continue
            with record.cond:
                if item.index != len(record.items):
                    continue     # a retried task re-yielding what we already have
                oid = item_id(item.task_id, item.index)
                # Pinned until the consumer takes its ref (or drops the generator).
                refs.add_owned(oid)
                refs.pin(oid)
                value = item.value
                value.id = oid
                worker.memory.put(oid, value)
                record.items.append(oid)
                record._wake()

    def sent(self, task_id: bytes, stream) -> None:
        """The task was (re)sent on ``stream``: acks go there from now on; a retried
        task learns at once how much the consumer has already read."""
        record = self.records.get(task_id)
        if record is None or record.backpressure <= 0:
            return
        record.stream = stream
        if record.read:
            stream.ack(task_id, record.read)

    def finishing(self, spec, returns: list) -> list:
        """The task is over for good (loop thread): the values to store as its returns
        (a dynamic generator's return becomes its DynamicObjectRefGenerator). Call
        ``finished`` once they are stored."""
        record = self.records.get(spec.task_id)
        if record is None:
            return returns
        if record.kind == STREAMING:
            return self._error_as_item(record, returns)
        del self.records[spec.task_id]
        items = record.items
        if not returns or returns[0].is_error or not self.worker.refs.in_use(returns[0].id):
            for oid in items:
                self.worker.refs.unpin(oid)
            return returns
        worker = self.worker
        value = DynamicObjectRefGenerator([ObjectRef(oid, worker.address_bytes) for oid in items])
        from raylite.serialization import serialize
        stored = worker.io.to_value(returns[0].id, None, serialized=serialize(value))
        # The items live as long as the value that lists them (their pins move to it).
        worker.objects.pin_contained(value._refs, holder=returns[0].id)
        for oid in items:
            worker.refs.unpin(oid)
        return [stored, *returns[1:]]

    def _error_as_item(self, record: GeneratorRecord, returns: list) -> list:
        # As in Ray, an exception the generator raised (or a cancel while it ran) is
        # its next item and the stream then ends normally; a system error (its worker
        # died for good) stays in the return, which next() hands out last.
        value = returns[0] if returns else None
        if value is None or not value.is_error:
            return returns
        from raylite.exceptions import RayTaskError
        try:
            error = self.worker.io.from_value(value)
        except Exception:
            return returns
        if not isinstance(error, RayTaskError):
            return returns
        item = common_item(record.task_id, len(record.items), value)
        self.items_arrived([item])
        from raylite.serialization import serialize
        ended = self.worker.io.to_value(value.id, None, serialized=serialize(None))
        return [ended, *returns[1:]]

    def finished(self, task_id: bytes) -> None:
        """The task's return is stored: wake the consumers waiting for the end."""
        record = self.records.get(task_id)
        if record is not None:
            with record.cond:
                record.finished = True
                record.stream = None
                record._wake()
            if record.dropped:
                del self.records[task_id]

    # ---- consumer side -------------------------------------------------------------------
    def consumed(self, record: GeneratorRecord) -> None:
        """The consumer took an item: tell the task (backpressure), batched per loop tick."""
        if record.backpressure > 0 and not record.ack_scheduled:
            record.ack_scheduled = True
            self.worker.loop.call_soon_threadsafe(self._send_ack, record)

    def _send_ack(self, record: GeneratorRecord) -> None:
        record.ack_scheduled = False
        stream = record.stream
        if stream is not None and stream.alive:
            stream.ack(record.task_id, record.read)

    def drop(self, record: GeneratorRecord) -> None:
        """The ObjectRefGenerator is gone: release the items nobody took, and let a
        task paused by backpressure run to its end (nobody will consume again)."""
        with record.cond:
            if record.dropped:
                return
            record.dropped = True
            untaken = record.items[record.read:]
            running = not record.finished
        if not running:
            self.records.pop(record.task_id, None)
        # else: kept until the task ends, so that a retry is told to run freely too
        refs = self.worker.refs
        for oid in untaken:
            refs.unpin(oid)
        if running and record.backpressure > 0:
            record.read = UNLIMITED
            self.worker.loop.call_soon_threadsafe(self._send_ack, record)


class ObjectRefGenerator:
    """What ``.remote()`` returns for a generator task (``num_returns="streaming"``,
    the default for generator functions): iterate it (``for ref in gen``, ``next``,
    ``async for``) to get one ObjectRef per value the task yields, as it yields them.

    ``next`` blocks until the task yields again; at the end it raises StopIteration.
    When the task raised (or was cancelled, or its worker died for good) after some
    yields, the refs already yielded stay valid and the next one raises the error on
    ``get``. Not serializable: it cannot be passed to other tasks.
    """

    def __init__(self, generator_ref: ObjectRef, record: GeneratorRecord, table: GeneratorTable):
        self._generator_ref = generator_ref
        self._record = record
        self._table = table
        self._raised = False

    def __iter__(self) -> ObjectRefGenerator:
        return self

    def __next__(self) -> ObjectRef:
        """The next item's ObjectRef. Raises StopIteration at the end."""
        record = self._record
        with record.cond:
            waiting = record.read >= len(record.items) and not record.finished
        if waiting:
            # A task waiting for another task's items lends its CPU back, as in get().
            blocked = self._table.worker._notify_blocked(True)
            try:
                with record.cond:
                    while record.read >= len(record.items) and not record.finished:
                        record.cond.wait()
            finally:
                if blocked:
                    self._table.worker._notify_blocked(False)
        return self._take(StopIteration)

    def _take(self, stop: type) -> ObjectRef:
        record = self._record
        with record.cond:
            if record.read < len(record.items):
                oid = record.items[record.read]
                record.read += 1
                ref = ObjectRef(oid, self._table.worker.address_bytes)
                taken = True
            else:
                taken = False
        if taken:
            self._table.worker.refs.unpin(oid)   # the ref handed out holds it now
            self._table.consumed(record)
            return ref
        # The stream ended: its return says how (None, or the error to hand out once).
        if self._raised or not self._ended_with_error():
            raise stop
        self._raised = True
        return self._generator_ref

    def _ended_with_error(self) -> bool:
        worker = self._table.worker
        value = worker.memory.get(self._generator_ref._id)
        if value is None:   # stored just after the record was marked finished
            value = worker.objects.resolve_values([self._generator_ref])[0]
        return value.is_error

    def __aiter__(self) -> ObjectRefGenerator:
        return self

    async def __anext__(self) -> ObjectRef:
        """The next item's ObjectRef. Raises StopAsyncIteration at the end."""
        record = self._record
        while True:
            with record.cond:
                if record.read < len(record.items) or record.finished:
                    break
                fut = asyncio.get_running_loop().create_future()
                record.waiters.append((fut.get_loop(), fut))
            await fut
        return self._take(StopAsyncIteration)

    def send(self, value):
        raise NotImplementedError("`gen.send` is not supported.")

    def throw(self, value):
        raise NotImplementedError("`gen.throw` is not supported.")

    def close(self):
        raise NotImplementedError("`gen.close` is not supported.")

    async def asend(self, value):
        raise NotImplementedError("`gen.asend` is not supported.")

    async def athrow(self, value):
        raise NotImplementedError("`gen.athrow` is not supported.")

    async def aclose(self):
        raise NotImplementedError("`gen.aclose` is not supported.")

    def completed(self) -> ObjectRef:
        """A ref ready when the task is over; ``get`` raises the task's error, if any."""
        return self._generator_ref

    def next_ready(self) -> bool:
        """True when ``next`` would not block (an item waits, or the stream ended
        with an error still to hand out)."""
        record = self._record
        with record.cond:
            if record.read < len(record.items):
                return True
            if not record.finished:
                return False
        return not self._raised and self._ended_with_error()

    def is_finished(self) -> bool:
        """True when ``next`` would raise StopIteration."""
        record = self._record
        with record.cond:
            if record.read < len(record.items) or not record.finished:
                return False
        return self._raised or not self._ended_with_error()

    def task_id(self) -> bytes:
        return self._generator_ref.task_id()

    def _wait_ready(self, timeout: float | None) -> bool:
        """Block until ``next_ready() or is_finished()``; False on timeout."""
        record = self._record
        deadline = None if timeout is None else time.monotonic() + timeout
        with record.cond:
            while record.read >= len(record.items) and not record.finished:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                record.cond.wait(left)
        return True

    def __reduce__(self):
        raise TypeError("You cannot return or pass a generator to other task. "
                        "Serializing a ObjectRefGenerator is not allowed.")

    def __del__(self):
        try:
            self._table.drop(self._record)
        except Exception:
            pass


class DynamicObjectRefGenerator:
    """The value of a ``num_returns="dynamic"`` task's ref: iterate it for one
    ObjectRef per value the task yielded; ``len()`` is their number."""

    def __init__(self, refs: list):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)



def wait_with_generators(worker, waitables: list, num_returns: int, timeout, fetch_local: bool):
    """ray.wait over ObjectRefs and ObjectRefGenerators: a generator is ready when
    ``next`` would not block. Returns (ready, not_ready) in input order."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        ready_flags = []
        proxies = []
        for w in waitables:
            if isinstance(w, ObjectRefGenerator):
                is_ready = w.next_ready() or w.is_finished()
                if not is_ready:
                    # Ready once its next item or its end arrives (uncounted refs:
                    # only their ids are watched).
                    record = w._record
                    proxies.append(ObjectRef(item_id(record.task_id, record.read),
                                             worker.address_bytes, _count=False))
                    proxies.append(w._generator_ref)
            else:
                is_ready = worker.memory.contains(w._id)
                if not is_ready:
                    proxies.append(w)
            ready_flags.append(is_ready)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if sum(ready_flags) >= num_returns or not proxies or left == 0.0:
            break
        worker.objects.wait(proxies, 1, left, fetch_local)
    ready: list = []
    not_ready: list = []
    for w, is_ready in zip(waitables, ready_flags):
        if is_ready and len(ready) < num_returns:
            ready.append(w)
        else:
            not_ready.append(w)
    return ready, not_ready
