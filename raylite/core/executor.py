"""Running tasks inside a worker process: load the function, resolve arguments,
execute on the main thread, package returns or the error, honour cancellation."""
from __future__ import annotations

import asyncio
import inspect
import os
import queue
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable

from raylite.core import task_events
from raylite.core.actor_runtime import TERMINATE, ActorExit, ActorRuntime
from raylite.core.generator_runner import GeneratorFlow
from raylite.core.object_manager import error_value
from raylite.core.object_ref import ObjectRef
from raylite.exceptions import ObjectLostError, RayTaskError, TaskCancelledError
from raylite.ids import spec_return_ids
from raylite.protocol import common_pb2
from raylite.serialization import serialize


class ArgPlaceholder:
    """Stands in for a top-level ObjectRef argument; the worker swaps in its value."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __reduce__(self):
        return (ArgPlaceholder, (self.index,))


_IP = None


def node_ip() -> str:
    global _IP
    if _IP is None:
        from raylite.protocol.channels import advertised_host
        _IP = advertised_host(os.environ.get("RAYLITE_HOST") or "127.0.0.1")
    return _IP


class Executor:
    """Executes tasks one at a time on the thread that calls ``run``."""

    def __init__(self, worker):
        self.worker = worker
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.current: bytes | None = None
        self.running: set[bytes] = set()     # executing now (several in a threaded actor)
        self.cancelled: set[bytes] = set()   # running and cancelled: is_canceled() reads it
        self._lock = threading.Lock()
        self.actor = ActorRuntime()
        self.exiting = False
        self.exit_code = 0      # non-zero: the actor ends as if it crashed (sys.exit(n))
        self.waiting: dict[bytes, Callable] = {}   # queued task id -> its reply callback
        self.flows: dict[bytes, GeneratorFlow] = {}  # generator task id -> its item flow

    def install_signal_handler(self) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum, frame):
        # Only a cancel aimed at the running task interrupts it; stray signals are ignored.
        with self._lock:
            if self.current is not None and self.current in self.cancelled:
                raise KeyboardInterrupt

    def submit(self, reply_to, spec, report=None) -> None:
        """Queue a task (from an I/O thread); ``reply_to(result)`` is called once.
        A generator task calls ``report(GeneratorItem)`` for each value it yields."""
        with self._lock:
            self.waiting[spec.task_id] = reply_to
            if spec.generator:
                self.flows[spec.task_id] = GeneratorFlow(report, spec.generator_backpressure)
        self.queue.put((reply_to, spec))

    def ack(self, task_id: bytes, consumed: int) -> None:
        """The caller has consumed ``consumed`` items of a generator task (I/O thread)."""
        flow = self.flows.get(task_id)
        if flow is not None:
            flow.acked(consumed)

    def cancel(self, task_id: bytes) -> None:
        """Called from an I/O thread: a queued task is answered as cancelled at once
        (it must not wait behind the running one); the running one is interrupted."""
        task = self.actor.async_tasks.get(task_id)
        if task is not None:
            self.actor.loop.call_soon_threadsafe(task.cancel)
            return
        with self._lock:
            reply_to = self.waiting.pop(task_id, None)
            running = task_id in self.running
            if running:
                self.cancelled.add(task_id)
            elif reply_to is not None:
                self.flows.pop(task_id, None)
        if reply_to is not None:
            reply_to(common_pb2.TaskResult(task_id=task_id, status=common_pb2.TASK_CANCELLED))
        elif running and not self.worker.actor_id:
            os.kill(os.getpid(), signal.SIGINT)
        elif running:
            # As in Ray, a running actor call is not interrupted (the actor's state must
            # stay whole): it can poll is_canceled(), its caller gets TaskCancelledError,
            # and a generator stops after its next item (wake it if paused).
            flow = self.flows.get(task_id)
            if flow is not None:
                with flow.cond:
                    flow.cond.notify_all()

    def steal(self, task_id: bytes) -> None:
        """Hand a task back unrun if it is still queued; otherwise let it be."""
        with self._lock:
            reply_to = self.waiting.pop(task_id, None)
            if reply_to is not None:
                self.flows.pop(task_id, None)
        if reply_to is not None:
            reply_to(common_pb2.TaskResult(task_id=task_id, status=common_pb2.TASK_RETURNED))

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            reply_to, spec = item
            with self._lock:
                if self.waiting.pop(spec.task_id, None) is None:
                    continue  # cancelled while queued, and already answered
            if spec.type == common_pb2.ACTOR_TASK and self.actor.concurrent() \
                    and spec.method != TERMINATE:
                self._dispatch_concurrent(reply_to, spec)
                continue
            result = self.execute(spec)
            if not self.exit_code:
                reply_to(result)
            if self.exiting:
                self._exit_process()

    def _dispatch_concurrent(self, reply_to, spec) -> None:
        if self.actor.is_async:
            async def run():
                async with self.actor.semaphore:
                    task = asyncio.current_task()
                    self.actor.async_tasks[spec.task_id] = task
                    try:
                        result = await self.execute_async(spec)
                    finally:
                        self.actor.async_tasks.pop(spec.task_id, None)
                if not self.exit_code:
                    reply_to(result)
                if self.exiting:
                    self._exit_process()
            asyncio.run_coroutine_threadsafe(run(), self.actor.loop)
        else:
            def run():  # type: ignore[misc]  # the sync twin of the coroutine above
                result = self.execute(spec)
                if not self.exit_code:
                    reply_to(result)
                if self.exiting:
                    self._exit_process()
            self.actor.pool.submit(run)

    def _exit_process(self) -> None:
        # Let the reply reach the caller, then leave without running atexit hooks.
        time.sleep(0.1)
        _flush_stdio()
        task_events.flush_now()
        os._exit(self.exit_code)

    def _call(self, spec, args, kwargs):
        """Run the function, constructor or method a spec names; returns its value."""
        if spec.type == common_pb2.ACTOR_TASK:
            if spec.method == TERMINATE:
                raise ActorExit(0)
            return self.actor.method(spec.method)(*args, **kwargs)
        target = self.worker.functions.load(spec.function_id, spec.job_id)
        if spec.type == common_pb2.ACTOR_CREATION_TASK:
            self.worker.become_actor(spec)
            instance = target(*args, **kwargs)
            self.actor.created(instance, spec)
            return None
        return target(*args, **kwargs)

    def _exit_result(self, spec, reason: str = "") -> common_pb2.TaskResult:
        """The actor ends on purpose: as in Ray, the call that ended it reports the
        actor's death, and the actor is not restarted."""
        reason = reason or ("__ray_terminate__ was called" if spec.method == TERMINATE
                            else "exit_actor() was called")
        self.worker.record_actor_exit(reason)
        return common_pb2.TaskResult(task_id=spec.task_id, status=common_pb2.TASK_ACTOR_DEAD,
                                     message=f"The actor exited intentionally: {reason}.")

    def _system_exit_result(self, spec, err: SystemExit) -> common_pb2.TaskResult:
        """sys.exit() in an actor method ends the actor, as in Ray: with code 0 (or
        none) on purpose and for good; with another code as if the process crashed
        (no reply: the caller sees the stream break, and the owner may restart it)."""
        self.exiting = True
        code = err.code
        if code is None or code == 0:
            return self._exit_result(spec, "sys.exit() was called")
        self.exit_code = code if isinstance(code, int) else 1
        return common_pb2.TaskResult(task_id=spec.task_id, status=common_pb2.TASK_ACTOR_DEAD,
                                     message=f"The actor exited with sys.exit({code!r}).")

    async def execute_async(self, spec) -> common_pb2.TaskResult:
        """Run an async actor's method on the actor's event loop."""
        started = time.perf_counter()
        task_events.started(spec)
        try:
            args, kwargs = self.load_args(spec)
            if spec.method == TERMINATE:
                raise ActorExit(0)
            value = self.actor.method(spec.method)(*args, **kwargs)
            if spec.generator:
                await self.flows[spec.task_id].run_async(self, spec, value)
                value = None   # the stream ends; its items went ahead
            elif inspect.isawaitable(value) and not isinstance(value, ObjectRef):
                value = await value
            result = common_pb2.TaskResult(task_id=spec.task_id, returns=self.pack_returns(spec, value))
        except asyncio.CancelledError:
            result = self._cancelled_result(spec)
        except ActorExit:
            self.exiting = True
            result = self._exit_result(spec)
        except SystemExit as err:
            result = self._system_exit_result(spec, err)
        except BaseException as err:  # noqa: BLE001
            result = self.error_result(spec, err)
        finally:
            if spec.generator:
                self.flows.pop(spec.task_id, None)
        result.duration = time.perf_counter() - started
        task_events.ended(spec, result)
        return result

    def execute(self, spec) -> common_pb2.TaskResult:
        task_id = spec.task_id
        with self._lock:
            self.current = task_id
            self.running.add(task_id)
        worker = self.worker
        started = time.perf_counter()
        if spec.type == common_pb2.ACTOR_TASK and self.actor.failed is not None:
            with self._lock:
                self.current = None
                self.running.discard(task_id)
                self.flows.pop(task_id, None)
            return common_pb2.TaskResult(task_id=task_id, status=common_pb2.TASK_ACTOR_DEAD,
                                         message=self.actor.failed)
        task_events.started(spec)
        worker.set_task_context(spec)
        try:
            try:
                args, kwargs = self.load_args(spec)
            except ObjectLostError as lost:
                if spec.type != common_pb2.NORMAL_TASK:
                    raise
                # Not the task's fault: its owner rebuilds the argument and retries.
                lost_result = self._argument_lost(spec, lost, started)
                task_events.ended(spec, lost_result)
                return lost_result
            value = self._call(spec, args, kwargs)
            if spec.generator:
                self.flows[task_id].run(self, spec, value)
                value = None   # the stream ends; its items went ahead
            # An ObjectRef is awaitable too, but a returned ref travels as a ref (as in Ray).
            if spec.type == common_pb2.ACTOR_TASK and inspect.isawaitable(value) \
                    and not isinstance(value, ObjectRef):
                value = asyncio.run(_await(value))
            returns = self.pack_returns(spec, value)
            result = common_pb2.TaskResult(task_id=task_id, returns=returns)
        except ActorExit:
            self.exiting = True
            result = self._exit_result(spec)
        except KeyboardInterrupt:
            with self._lock:
                was_cancelled = task_id in self.cancelled
            if not was_cancelled:
                result = self.error_result(spec, KeyboardInterrupt())
            else:
                result = self._cancelled_result(spec)
        except SystemExit as err:
            if spec.type == common_pb2.ACTOR_TASK:
                result = self._system_exit_result(spec, err)
            else:
                result = self.error_result(spec, err)
        except BaseException as err:  # noqa: BLE001 - every user error travels back
            result = self.error_result(spec, err)
            if spec.type == common_pb2.ACTOR_CREATION_TASK:
                self.actor.failed = f"The actor's constructor raised: {err!r}"
        finally:
            with self._lock:
                self.current = None
                self.running.discard(task_id)
                if task_id in self.cancelled:
                    self.cancelled.discard(task_id)
                    if spec.type == common_pb2.ACTOR_TASK and result.status == common_pb2.TASK_OK:
                        # A sync actor call cancelled while it ran (see cancel) finished
                        # anyway; as in Ray its caller is told it was cancelled.
                        result = self._cancelled_result(spec)
                if spec.generator:
                    self.flows.pop(task_id, None)
            worker.clear_task_context()
            _flush_stdio()
        result.duration = time.perf_counter() - started
        task_events.ended(spec, result)
        return result

    @staticmethod
    def _argument_lost(spec, lost: ObjectLostError, started: float) -> common_pb2.TaskResult:
        return common_pb2.TaskResult(task_id=spec.task_id, status=common_pb2.TASK_SYSTEM_ERROR,
                                     lost_object_id=bytes.fromhex(lost.object_ref_hex),
                                     message=str(lost), duration=time.perf_counter() - started)

    def load_args(self, spec):
        io = self.worker.io
        args, kwargs = io.from_value(spec.args)
        if spec.deps:
            values = [io.from_value(v) for v in spec.deps]
            args = [values[a.index] if type(a) is ArgPlaceholder else a for a in args]
            kwargs = {k: values[v.index] if type(v) is ArgPlaceholder else v
                      for k, v in kwargs.items()}
        return args, kwargs

    def pack_returns(self, spec, value) -> list:
        ids = spec_return_ids(spec)
        if spec.num_returns == 1:
            values = [value]
        elif spec.num_returns == 0:
            values = []
        else:
            try:
                values = list(value)
            except TypeError:
                raise ValueError(f"Task {spec.name} declared num_returns={spec.num_returns} "
                                 f"but returned a non-iterable {type(value).__name__}") from None
            if len(values) != spec.num_returns:
                raise ValueError(f"Task {spec.name} declared num_returns={spec.num_returns} "
                                 f"but returned {len(values)} values")
        out = []
        for oid, v in zip(ids, values):
            ser = serialize(v)
            if ser.contained_refs:
                # A ref returned inside a value must outlive this task: keep it pinned here.
                self.worker.objects.pin_contained(ser.contained_refs)
            out.append(self.worker.io.to_value(oid, None, serialized=ser,
                                               owner=spec.caller.worker_id))
        return out

    def _cancelled_result(self, spec) -> common_pb2.TaskResult:
        if spec.generator:
            # As in Ray, a generator cancelled while it runs ends its stream with
            # RayTaskError(TaskCancelledError).
            return self.error_result(spec, TaskCancelledError(spec.task_id.hex()))
        return common_pb2.TaskResult(task_id=spec.task_id, status=common_pb2.TASK_CANCELLED)

    def error_result(self, spec, err: BaseException) -> common_pb2.TaskResult:
        wrapped = self.wrap_error(spec, err)
        task_events.note_traceback(spec.task_id, wrapped.traceback_str)
        cause = wrapped.cause
        returns = [error_value(oid, wrapped) for oid in spec_return_ids(spec)]
        if not returns:
            returns = [error_value(spec.task_id + b"\0\0\0\0", wrapped)]
        return common_pb2.TaskResult(task_id=spec.task_id, returns=returns, app_error=True,
                                     error_type=f"{type(cause).__module__}.{type(cause).__qualname__}",
                                     message=str(err)[:1000])

    def wrap_error(self, spec, err: BaseException) -> RayTaskError:
        """``err`` raised by the task of ``spec``, as the RayTaskError its caller gets."""
        tb = err.__traceback__
        # Hide the executor's own frames: the user wants to see their code.
        while tb is not None and tb.tb_frame.f_code.co_filename in _OWN_FILES:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(err), err, tb))
        if isinstance(err, RayTaskError):
            cause = err.cause if err.cause is not None else err
        else:
            cause = err
        return RayTaskError(spec.name, text, cause, os.getpid(), node_ip(), spec.call_site)


_OWN_FILES = frozenset({__file__, sys.modules[GeneratorFlow.__module__].__file__})


async def _await(value):
    return await value


def _flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def hostname() -> str:
    return socket.gethostname()
