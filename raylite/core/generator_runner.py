"""Generator tasks, the worker's side: drive the user's generator, report each value
to the caller as soon as it is yielded, and pause while the caller lags behind by
``generator_backpressure`` items (see raylite.core.generators for the caller's side).
"""
from __future__ import annotations

import asyncio
import inspect
import threading

from raylite.core.generators import item_id
from raylite.protocol import worker_pb2
from raylite.serialization import serialize


class GeneratorFlow:
    """One running generator task: where its items go and how far the caller read.

    ``report(GeneratorItem)`` sends an item down the task's stream (any thread).
    ``acked`` is called from an I/O thread when the caller reports progress.
    """

    __slots__ = ("report", "limit", "consumed", "produced", "cond", "wakeup")

    def __init__(self, report, limit: int):
        self.report = report
        self.limit = limit            # <= 0: never pause
        self.consumed = 0
        self.produced = 0
        self.cond = threading.Condition(threading.Lock())
        # (loop, asyncio.Event) while an async task waits
        self.wakeup: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def acked(self, consumed: int) -> None:
        with self.cond:
            if consumed <= self.consumed:
                return
            self.consumed = consumed
            self.cond.notify_all()
            wakeup = self.wakeup
        if wakeup is not None:
            loop, event = wakeup
            loop.call_soon_threadsafe(event.set)

    def _behind(self) -> bool:
        return self.limit > 0 and self.produced - self.consumed >= self.limit

    def _send(self, worker, spec, value) -> None:
        task_id = spec.task_id
        index = self.produced
        ser = serialize(value)
        # A ref yielded inside a value must outlive this task: keep it pinned here.
        if ser.contained_refs:
            worker.objects.pin_contained(ser.contained_refs)
        stored = worker.io.to_value(item_id(task_id, index), None, serialized=ser,
                                    owner=spec.caller.worker_id)
        self.report(worker_pb2.GeneratorItem(task_id=task_id, index=index, value=stored))
        self.produced = index + 1

    def run(self, executor, spec, generator) -> None:
        """Drive a sync generator (or any iterable) to its end on this thread.

        Raises what the generator raises (the task's error: its caller may retry it,
        see retry_exceptions); KeyboardInterrupt on a cancel (a signal for a task, for
        an actor's generator raised here after its next item).
        """
        worker = executor.worker
        if not hasattr(generator, "__iter__") or isinstance(generator, (str, bytes, dict)):
            raise TypeError(f"Task {spec.name} declared num_returns={_kind_name(spec)} but "
                            f"returned {type(generator).__name__}, not a generator")
        task_id, cancelled = spec.task_id, executor.cancelled
        for value in generator:
            self._send(worker, spec, value)
            if self._behind():
                with self.cond:
                    while self._behind() and task_id not in cancelled:
                        self.cond.wait()
            if task_id in cancelled:
                # A cancelled actor generator is not interrupted (see Executor.cancel):
                # as in Ray it is closed between two items.
                close = getattr(generator, "close", None)
                if close is not None:
                    close()
                raise KeyboardInterrupt

    async def run_async(self, executor, spec, generator) -> None:
        """Drive an async generator (or a sync one) on the actor's event loop.

        Raises what the generator raises; asyncio.CancelledError on a cancel.
        """
        if not inspect.isasyncgen(generator):
            if inspect.isawaitable(generator):
                generator = await generator
            if not inspect.isasyncgen(generator):
                self.run(executor, spec, generator)
                return
        worker = executor.worker
        async for value in generator:
            self._send(worker, spec, value)
            while True:
                with self.cond:
                    if not self._behind():
                        break
                    event = asyncio.Event()
                    self.wakeup = (asyncio.get_running_loop(), event)
                await event.wait()
            self.wakeup = None


def _kind_name(spec) -> str:
    return '"dynamic"' if spec.generator == 2 else '"streaming"'
