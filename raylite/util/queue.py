"""Queue: a FIFO queue held by an async actor, shared by drivers, tasks and actors.

    q = Queue(maxsize=10)
    producer.remote(q)          # the Queue pickles as its actor handle
    item = q.get(timeout=5)

The actor keeps an ``asyncio.Queue``; blocking ``put``/``get`` calls wait on its
event loop, so a blocked ``get`` never stops a ``put`` from reaching the actor.
"""
from __future__ import annotations

import asyncio
import queue as _stdlib_queue
from collections.abc import Iterable
from typing import Any

from raylite import api


class Empty(_stdlib_queue.Empty):
    """Raised by get/get_nowait/get_nowait_batch when no item is available."""


class Full(_stdlib_queue.Full):
    """Raised by put/put_nowait/put_nowait_batch when the queue has no room."""


class _QueueActor:
    """The queue's state, living in one async actor."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.items: asyncio.Queue | None = None

    def _queue(self) -> asyncio.Queue:
        # Created lazily on the actor's event loop, where every method runs.
        if self.items is None:
            self.items = asyncio.Queue(self.maxsize)
        return self.items

    async def qsize(self) -> int:
        return self._queue().qsize()

    async def empty(self) -> bool:
        return self._queue().empty()

    async def full(self) -> bool:
        return self._queue().full()

    async def put(self, item, timeout=None) -> None:
        try:
            await asyncio.wait_for(self._queue().put(item), timeout)
        except asyncio.TimeoutError:
            raise Full(f"Cannot put an item: the queue stayed full for {timeout} s") from None

    async def get(self, timeout=None):
        try:
            return await asyncio.wait_for(self._queue().get(), timeout)
        except asyncio.TimeoutError:
            raise Empty(f"Cannot get an item: the queue stayed empty for {timeout} s") from None

    async def put_nowait(self, item) -> None:
        try:
            self._queue().put_nowait(item)
        except asyncio.QueueFull:
            raise Full(f"The queue is full (maxsize {self.maxsize})") from None

    async def put_nowait_batch(self, items: list) -> None:
        q = self._queue()
        if self.maxsize > 0 and len(items) + q.qsize() > self.maxsize:
            raise Full(f"Cannot add {len(items)} items to queue of size {q.qsize()} "
                       f"and maxsize {self.maxsize}.")
        for item in items:
            q.put_nowait(item)

    async def get_nowait(self):
        try:
            return self._queue().get_nowait()
        except asyncio.QueueEmpty:
            raise Empty("The queue is empty") from None

    async def get_nowait_batch(self, num_items: int) -> list:
        q = self._queue()
        if num_items > q.qsize():
            raise Empty(f"Cannot get {num_items} items from queue of size {q.qsize()}.")
        return [q.get_nowait() for _ in range(num_items)]


_actor_class = None


def _queue_actor_class():
    global _actor_class
    if _actor_class is None:
        _actor_class = api.remote(_QueueActor)
    return _actor_class


def _get(ref):
    """ray.get that re-raises the queue's own Empty/Full as plain Empty/Full."""
    try:
        return api.get(ref)
    except Empty as err:
        raise Empty(*_cause_args(err)) from None
    except Full as err:
        raise Full(*_cause_args(err)) from None


async def _await(ref):
    try:
        return await ref
    except Empty as err:
        raise Empty(*_cause_args(err)) from None
    except Full as err:
        raise Full(*_cause_args(err)) from None


def _cause_args(err) -> tuple:
    cause = getattr(err, "cause", None)
    return cause.args if cause is not None else err.args


def _check_timeout(timeout) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


class Queue:
    """A first-in first-out queue backed by an actor.

    ``maxsize <= 0`` means unbounded. ``actor_options`` are passed to the actor's
    ``.options()`` (e.g. ``{"num_cpus": 0, "name": "jobs"}``). The object is
    picklable (it carries the actor handle), so it can be passed to tasks and
    actors, which then use the same queue.
    """

    def __init__(self, maxsize: int = 0, actor_options: dict | None = None) -> None:
        self.maxsize = maxsize
        cls = _queue_actor_class()
        if actor_options:
            cls = cls.options(**actor_options)
        self.actor = cls.remote(maxsize)

    def __len__(self) -> int:
        return self.size()

    def size(self) -> int:
        """The number of items in the queue."""
        return api.get(self.actor.qsize.remote())

    def qsize(self) -> int:
        """The number of items in the queue."""
        return self.size()

    def empty(self) -> bool:
        return api.get(self.actor.empty.remote())

    def full(self) -> bool:
        return api.get(self.actor.full.remote())

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; blocks while the queue is full (at most ``timeout`` seconds).

        Raises Full when it cannot (at once with block=False, or after the timeout)
        and ValueError for a negative timeout.
        """
        if not block:
            return _get(self.actor.put_nowait.remote(item))
        _check_timeout(timeout)
        return _get(self.actor.put.remote(item, timeout))

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest item; blocks while empty (at most ``timeout`` s).

        Raises Empty when there is none (at once with block=False, or after the
        timeout) and ValueError for a negative timeout.
        """
        if not block:
            return _get(self.actor.get_nowait.remote())
        _check_timeout(timeout)
        return _get(self.actor.get.remote(timeout))

    async def put_async(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """put() for async code: waits without blocking the event loop."""
        if not block:
            return await _await(self.actor.put_nowait.remote(item))
        _check_timeout(timeout)
        return await _await(self.actor.put.remote(item, timeout))

    async def get_async(self, block: bool = True, timeout: float | None = None) -> Any:
        """get() for async code: waits without blocking the event loop."""
        if not block:
            return await _await(self.actor.get_nowait.remote())
        _check_timeout(timeout)
        return await _await(self.actor.get.remote(timeout))

    def put_nowait(self, item: Any) -> None:
        """put(item, block=False). Raises Full when the queue is full."""
        return self.put(item, block=False)

    def get_nowait(self) -> Any:
        """get(block=False). Raises Empty when the queue is empty."""
        return self.get(block=False)

    def put_nowait_batch(self, items: Iterable) -> None:
        """Add all ``items`` at once, or none of them.

        Raises TypeError when ``items`` is not iterable, Full when they do not all fit.
        """
        if not isinstance(items, Iterable):
            raise TypeError("Argument 'items' must be an Iterable")
        return _get(self.actor.put_nowait_batch.remote(list(items)))

    def get_nowait_batch(self, num_items: int) -> list:
        """Remove and return ``num_items`` items, or none.

        Raises TypeError for a non-int, ValueError for a negative count, Empty when
        fewer items are queued.
        """
        if isinstance(num_items, bool) or not isinstance(num_items, int):
            raise TypeError("Argument 'num_items' must be an int")
        if num_items < 0:
            raise ValueError("'num_items' must be nonnegative")
        return _get(self.actor.get_nowait_batch.remote(num_items))

    def shutdown(self, force: bool = False, grace_period_s: float = 5) -> None:
        """Stop the queue's actor: gracefully (pending calls finish first, killed after
        ``grace_period_s``) or at once with ``force``. The queue is unusable afterwards."""
        actor, self.actor = self.actor, None
        if actor is None:
            return
        if force:
            api.kill(actor, no_restart=True)
            return
        done = actor.__ray_terminate__.remote()
        if done is None:
            api.kill(actor, no_restart=True)
            return
        ready, _ = api.wait([done], timeout=grace_period_s)
        if not ready:
            api.kill(actor, no_restart=True)


__all__ = ["Empty", "Full", "Queue"]
