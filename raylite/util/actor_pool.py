"""ActorPool: spread work over a fixed set of actors, one call per actor at a time.

    pool = ActorPool([Worker.remote() for _ in range(4)])
    results = list(pool.map(lambda actor, v: actor.double.remote(v), range(10)))

``fn(actor, value)`` must submit one call and return its ObjectRef (or a list of
refs). Values wait in the pool until an actor is idle, so no actor ever has more
than one of the pool's calls in flight.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from raylite import api
from raylite import exceptions as exc


class ActorPool:
    """A pool of actor handles that hands each submitted value to an idle actor."""

    def __init__(self, actors: Iterable):
        self._idle: list = list(actors)
        # In-flight calls: submission index -> (result ref(s), actor).
        self._running: dict[int, tuple[Any, Any]] = {}
        self._waiting: list[tuple[Callable, Any]] = []   # submits without an idle actor
        self._next_index = 0      # index the next dispatched call gets
        self._next_ordered = 0    # index get_next() returns next

    # ---- bulk ---------------------------------------------------------------------------
    def map(self, fn: Callable, values: Iterable):
        """Submit ``fn(actor, v)`` for every value; yields results in ``values`` order.

        Results not yet fetched from earlier submissions are discarded first, as in Ray.
        """
        self._drain()
        for value in values:
            self.submit(fn, value)

        def results():
            while self.has_next():
                yield self.get_next()
        return results()

    def map_unordered(self, fn: Callable, values: Iterable):
        """Like map() but yields each result as soon as it is ready."""
        self._drain()
        for value in values:
            self.submit(fn, value)

        def results():
            while self.has_next():
                yield self.get_next_unordered()
        return results()

    def _drain(self) -> None:
        # Forget results of earlier submissions that nobody fetched (as Ray does),
        # returning their actors to the pool; ignored calls still run to completion.
        # Each round removes one entry, so this ends even after mixed get_next calls.
        while self.has_next():
            try:
                self.get_next_unordered(timeout=0, ignore_if_timedout=True)
            except (TimeoutError, exc.RayliteError):
                pass     # a timeout, or an earlier call's failure: not this map's concern

    # ---- one at a time ----------------------------------------------------------------
    def submit(self, fn: Callable, value) -> None:
        """Run ``fn(idle_actor, value)`` now, or once an actor becomes idle."""
        if not self._idle:
            self._waiting.append((fn, value))
            return
        actor = self._idle.pop()
        refs = fn(actor, value)
        self._running[self._next_index] = (refs, actor)
        self._next_index += 1

    def has_next(self) -> bool:
        """True while a submitted call's result has not been returned by get_next*."""
        return bool(self._running)

    def get_next(self, timeout: float | None = None, ignore_if_timedout: bool = False):
        """The next result in submission order.

        Raises StopIteration when nothing is pending, ValueError after
        get_next_unordered() has returned results out of order, TimeoutError when the
        result is not ready within ``timeout`` seconds (with ``ignore_if_timedout`` the
        call is then dropped from the pool; otherwise a later get_next retries it), and
        the call's own error when it failed.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        if self._next_ordered not in self._running:
            raise ValueError("It is not allowed to call get_next() after get_next_unordered().")
        index = self._next_ordered
        refs, actor = self._running[index]
        if timeout is not None and not _ready(refs, timeout):
            if not ignore_if_timedout:
                raise TimeoutError("Timed out waiting for result")
            self._take(index)
            self._release(actor)
            raise TimeoutError(f"Timed out waiting for result. The task {refs} has been ignored.")
        self._take(index)
        return self._fetch(refs, actor)

    def get_next_unordered(self, timeout: float | None = None, ignore_if_timedout: bool = False):
        """Whichever pending result is ready first.

        Raises StopIteration when nothing is pending, TimeoutError when none is ready
        within ``timeout`` seconds (with ``ignore_if_timedout`` the oldest pending call
        is then dropped from the pool), and the call's own error when it failed.
        """
        if not self.has_next():
            raise StopIteration("No more results to get")
        by_ref = {_key(refs): index for index, (refs, _) in self._running.items()}
        waitable = [_first(refs) for refs, _ in self._running.values()]
        ready, _ = api.wait(waitable, num_returns=1, timeout=timeout)
        if not ready:
            if ignore_if_timedout:
                index = min(self._running)
                refs, actor = self._take(index)
                self._release(actor)
                raise TimeoutError(f"Timed out waiting for result. The task {refs} has been ignored.")
            raise TimeoutError("Timed out waiting for result")
        index = by_ref[ready[0]]
        refs, actor = self._take(index)
        return self._fetch(refs, actor)

    def has_free(self) -> bool:
        """True when an actor is idle and no submitted value is waiting for one."""
        return bool(self._idle) and not self._waiting

    def pop_idle(self):
        """Remove and return an idle actor, or None when none is free."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor) -> None:
        """Add an actor to the pool (it may start a waiting submit at once).

        Raises ValueError when the actor is already in the pool.
        """
        busy = [a for _, a in self._running.values()]
        if actor in self._idle or actor in busy:
            raise ValueError("Actor already belongs to current ActorPool")
        self._release(actor)

    # ---- internals -------------------------------------------------------------------
    def _take(self, index: int):
        entry = self._running.pop(index)
        # Results before ``index`` can no longer come back in order.
        self._next_ordered = max(self._next_ordered, index + 1)
        return entry

    def _fetch(self, refs, actor):
        alive = True
        try:
            return api.get(refs)
        except exc.RayActorError:
            alive = False        # a dead actor does not go back to the pool
            raise
        finally:
            self._release(actor, alive)

    def _release(self, actor, alive: bool = True) -> None:
        if alive:
            self._idle.append(actor)
        if self._waiting and self._idle:
            fn, value = self._waiting.pop(0)
            self.submit(fn, value)


def _first(refs):
    return refs[0] if isinstance(refs, (list, tuple)) else refs


def _key(refs):
    return _first(refs)


def _ready(refs, timeout: float) -> bool:
    refs = list(refs) if isinstance(refs, (list, tuple)) else [refs]
    ready, _ = api.wait(refs, num_returns=len(refs), timeout=timeout)
    return len(ready) == len(refs)


__all__ = ["ActorPool"]
