"""The actor side of a worker: the instance, how its methods run (in order on the
main thread, on a thread pool for max_concurrency > 1, or on an event loop for
async actors), and intentional exits (``exit_actor``, ``__ray_terminate__``)."""
from __future__ import annotations

import asyncio
import inspect
import threading
from concurrent.futures import ThreadPoolExecutor

from raylite.ids import random_id
from raylite.protocol import common_pb2

TERMINATE = "__ray_terminate__"
READY = "__ray_ready__"      # answers True once the actor is constructed (as in Ray)


class ActorExit(SystemExit):
    """Raised by exit_actor(): ends the actor after the current call, without restart."""


def is_async_class(cls) -> bool:
    return any(inspect.iscoroutinefunction(getattr(cls, name, None)) or
               inspect.isasyncgenfunction(getattr(cls, name, None))
               for name in dir(cls) if not name.startswith("__"))


class ActorRuntime:

    def __init__(self):
        self.instance = None
        self.failed: str | None = None
        self.is_async = False
        self.pool: ThreadPoolExecutor | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.semaphore = None
        self.async_tasks: dict[bytes, asyncio.Task] = {}

    def created(self, instance, spec) -> None:
        self.instance = instance
        cls = type(instance)
        self.is_async = spec.is_async_actor or is_async_class(cls)
        limit = spec.max_concurrency or (1000 if self.is_async else 1)
        if self.is_async:
            self.loop = asyncio.new_event_loop()
            threading.Thread(target=self.loop.run_forever, daemon=True, name="raylite-actor-loop").start()

            async def make_semaphore():
                return asyncio.Semaphore(limit)
            self.semaphore = asyncio.run_coroutine_threadsafe(make_semaphore(), self.loop).result()
        elif limit > 1:
            self.pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="raylite-actor")

    def method(self, name: str):
        """The bound method a call of ``name`` runs. Raises AttributeError when the
        actor has no such method."""
        if name == READY:
            return _ready
        return getattr(self.instance, name)

    def concurrent(self) -> bool:
        return self.is_async or self.pool is not None


def _ready() -> bool:
    return True


def terminate_spec(worker, actor_id: bytes) -> common_pb2.TaskSpec:
    """A call of ``__ray_terminate__`` (no return value) to send down an actor stream."""
    from raylite.serialization import serialize
    args = serialize(((), {})).to_bytes()
    spec = common_pb2.TaskSpec(task_id=random_id(), job_id=worker.job_id,
                               type=common_pb2.ACTOR_TASK, name=TERMINATE, method=TERMINATE,
                               actor_id=actor_id, num_returns=0,
                               args=common_pb2.ObjectValue(data=args, size=len(args)))
    spec.caller.CopyFrom(worker.address)
    return spec
