"""ObjectRef: a handle to a value that exists (or will) somewhere in the cluster.

It carries the object id and the address of its owner (the process that created
it), so any process holding it can find the value. Creating one adds a local
reference; garbage-collecting it removes one.
"""
from __future__ import annotations

import asyncio

from raylite.core import global_state
from raylite.serialization import note_serialized_ref


class ObjectRef:
    """A reference to an object in the cluster: returned by ``.remote()`` and ``put``,
    passed to ``get``/``wait``/tasks; hashable, ``hex()``, awaitable."""

    __slots__ = ("_id", "_owner", "_counted", "_fut", "_callbacks", "__weakref__")

    def __init__(self, object_id: bytes, owner: bytes = b"", _count: bool = True):
        self._id = object_id
        self._owner = owner      # serialized Address of the owner; b"" means unknown
        self._counted = False
        self._fut: asyncio.Future | None = None
        self._callbacks: dict | None = None
        if _count:
            worker = global_state.get_worker(required=False)
            if worker is not None:
                worker.refs.add_local(object_id)
                self._counted = True

    def binary(self) -> bytes:
        return self._id

    def hex(self) -> str:
        return self._id.hex()

    def task_id(self) -> bytes:
        return self._id[:16]

    @property
    def owner_address(self) -> bytes:
        return self._owner

    def __hash__(self) -> int:
        return hash(self._id)

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectRef) and other._id == self._id

    def __repr__(self) -> str:
        return f"ObjectRef({self._id.hex()})"

    def __reduce__(self):
        note_serialized_ref(self)
        return (_rebuild, (self._id, self._owner))

    def __del__(self):
        if self._counted:
            worker = global_state.get_worker(required=False)
            if worker is not None:
                try:
                    worker.refs.remove_local(self._id)
                except Exception:
                    pass

    # ---- asyncio -----------------------------------------------------------------
    def future(self) -> asyncio.Future:
        """An asyncio future (of the running loop) resolved with the value."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        worker = global_state.get_worker()

        def done(value, error):
            if fut.done():
                return
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(value)

        # The callback holds this ref until the value arrives: `await f.remote()`
        # awaits a temporary nothing else keeps alive.
        worker.objects.get_async(self, lambda v, e, _keep=self: loop.call_soon_threadsafe(done, v, e))
        return fut

    def __await__(self):
        return self._loop_future().__await__()

    # ---- enough of the Future protocol for asyncio.wait(refs) ---------------------
    def _loop_future(self) -> asyncio.Future:
        fut = self._fut
        if fut is None or fut.get_loop() is not asyncio.get_running_loop():
            fut = self._fut = self.future()
        return fut

    def add_done_callback(self, fn, *, context=None) -> None:
        def relay(_fut, fn=fn):
            fn(self)
        if self._callbacks is None:
            self._callbacks = {}
        self._callbacks[fn] = relay
        self._loop_future().add_done_callback(relay, context=context)

    def remove_done_callback(self, fn) -> int:
        relay = (self._callbacks or {}).pop(fn, None)
        if relay is None or self._fut is None:
            return 0
        return self._fut.remove_done_callback(relay)

    def done(self) -> bool:
        return self._fut is not None and self._fut.done()

    def cancelled(self) -> bool:
        return False

    def result(self):
        """The value once done (as asyncio.Future.result); raises InvalidStateError before."""
        if self._fut is None:
            raise asyncio.InvalidStateError("ObjectRef is not done yet")
        return self._fut.result()

    def exception(self):
        if self._fut is None:
            raise asyncio.InvalidStateError("ObjectRef is not done yet")
        return self._fut.exception()

    def get_loop(self):
        return self._loop_future().get_loop()


def _rebuild(object_id: bytes, owner: bytes) -> ObjectRef:
    ref = ObjectRef(object_id, owner)
    worker = global_state.get_worker(required=False)
    if worker is not None:
        worker.objects.register_borrow(object_id, owner)
    return ref
