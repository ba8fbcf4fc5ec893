"""Normal-task submission: dependency resolution, worker leases, pipelined pushes,
retries and cancellation. Everything here runs on the core worker's event loop.

The node scheduler stays authoritative on resources but off the per-task path: the
submitter leases a worker for a resource shape, then streams tasks down that lease
and gets results back inline. How many tasks ride one lease at once adapts to how
long the tasks take, so short tasks are batched and long ones are spread out.
"""
from __future__ import annotations

import asyncio
import collections

import grpc

from raylite import exceptions as exc
from raylite.core.local_channel import open_task_stream
from raylite.core.object_manager import relabeled
from raylite.core.task_stream import TaskStream, describe
from raylite.ids import spec_return_ids
from raylite.protocol import common_pb2, node_pb2

LINGER_S = 0.05              # keep an idle lease this long for the next task
MAX_LEASE_REQUESTS = 10      # outstanding lease requests per resource shape
MAX_PIPELINE = 256
TARGET_QUEUED_S = 0.002      # work queued per leased worker when tasks are short


class TaskEntry:
    """One submitted normal task and what the owner needs to finish or retry it."""

    __slots__ = ("spec", "key", "resources", "retries_left", "retry_exceptions", "deps",
                 "lease", "cancelled", "force", "done", "unresolved", "submitted_at")

    def __init__(self, spec, key, resources, max_retries, retry_exceptions, deps):
        self.spec = spec
        self.key = key
        self.resources = resources
        self.retries_left = max_retries
        self.retry_exceptions = retry_exceptions
        self.deps = deps              # ObjectRefs of top-level args (kept alive until done)
        self.lease = None
        self.cancelled = False
        self.force = False
        self.done = False
        self.unresolved = 0


class Lease:
    """A leased worker and the task stream to it."""

    def __init__(self, key_queue, reply, scheduler_stub):
        self.kq = key_queue
        self.lease_id = reply.lease_id
        self.worker = reply.worker
        self.gpu_ids = list(reply.gpu_ids)
        self.scheduler = scheduler_stub
        self.in_flight: dict[bytes, TaskEntry] = {}
        self.stream: TaskStream | None = None
        self.alive = True
        self.linger = None
        self.progress = 0        # results received so far
        self.stuck = False       # its running task outlasted the estimate: send no more
        self.watch = None        # timer that checks for that


class KeyQueue:
    """Tasks waiting for a worker of one resource shape."""

    def __init__(self, key, resources):
        self.key = key
        self.stuck_after = 0.005
        self.resources = resources
        self.queue: collections.deque[TaskEntry] = collections.deque()
        self.leases: list[Lease] = []
        self.requests: set = set()
        self.avg_duration: float | None = None
        self.warned = False

    def depth(self) -> int:
        """Tasks allowed in flight per lease: 1 until tasks are known to be short."""
        if self.avg_duration is None:
            return 1
        return max(1, min(MAX_PIPELINE, int(TARGET_QUEUED_S / max(self.avg_duration, 1e-6))))

    def record(self, duration: float) -> None:
        if self.avg_duration is None:
            self.avg_duration = duration
        else:
            self.avg_duration = 0.8 * self.avg_duration + 0.2 * duration
        self.stuck_after = max(0.005, 10 * self.avg_duration)


class TaskSubmitter:

    def __init__(self, worker):
        self.worker = worker
        self.loop = worker.loop
        self.incoming: collections.deque = collections.deque()
        self._wakeup = False
        self.keys: dict = {}
        self.tasks: dict[bytes, TaskEntry] = {}

    # ---- called from any thread ---------------------------------------------------
    def submit(self, entry: TaskEntry) -> None:
        self.incoming.append(entry)
        if not self._wakeup:
            self._wakeup = True
            self.loop.call_soon_threadsafe(self._drain)

    def cancel(self, task_id: bytes, force: bool) -> None:
        self.loop.call_soon_threadsafe(self._cancel, task_id, force)

    # ---- loop thread ------------------------------------------------------------------
    def _drain(self) -> None:
        self._wakeup = False
        touched = set()
        while self.incoming:
            entry = self.incoming.popleft()
            self.tasks[entry.spec.task_id] = entry
            if entry.deps:
                self._resolve(entry)
            else:
                kq = self._key_queue(entry)
                kq.queue.append(entry)
                touched.add(kq)
        for kq in touched:
            self._pump(kq)

    def _key_queue(self, entry) -> KeyQueue:
        kq = self.keys.get(entry.key)
        if kq is None:
            kq = self.keys[entry.key] = KeyQueue(entry.key, entry.resources)
        return kq

    def _resolve(self, entry: TaskEntry) -> None:
        entry.unresolved = len(entry.deps)
        self.worker.resolve_deps(entry.spec, entry.deps, lambda: self._deps_resolved(entry))

    def _deps_resolved(self, entry: TaskEntry) -> None:
        entry.unresolved = 0
        if entry.done:
            return
        for dep in entry.spec.deps:
            if dep.is_error:
                # The argument failed: this task fails with the same error, unrun.
                self._finish_with_value_error(entry, dep)
                return
        if entry.cancelled:
            self._fail(entry, exc.TaskCancelledError(entry.spec.task_id.hex()))
            return
        kq = self._key_queue(entry)
        kq.queue.append(entry)
        self._pump(kq)

    def _pump(self, kq: KeyQueue) -> None:
        depth = kq.depth()
        # Deal tasks round-robin so every leased worker gets a share.
        progress = True
        while kq.queue and progress:
            progress = False
            for lease in kq.leases:
                if not kq.queue:
                    break
                if not lease.alive or lease.stuck or len(lease.in_flight) >= depth:
                    continue
                entry = kq.queue.popleft()
                entry.lease = lease
                lease.in_flight[entry.spec.task_id] = entry
                lease.stream.send(entry.spec)
                progress = True
                if lease.linger is not None:
                    lease.linger.cancel()
                    lease.linger = None
                if len(lease.in_flight) > 1 and lease.watch is None:
                    self._watch(lease)
        if kq.queue:
            wanted = min(MAX_LEASE_REQUESTS, -(-len(kq.queue) // depth))
            for _ in range(wanted - len(kq.requests)):
                self._request_lease(kq)
        # Outstanding lease requests are left to complete even when the queue drains:
        # cancelling one races with its grant, and a grant whose reply is lost would
        # hold a CPU for good. A lease nobody needs is returned after LINGER_S.
        for lease in kq.leases:
            if lease.alive and not lease.in_flight and lease.linger is None and not kq.queue:
                lease.linger = self.loop.call_later(LINGER_S, self._return_idle, lease)

    def _request_lease(self, kq: KeyQueue) -> None:
        if not kq.warned:
            kq.warned = True
            self.worker.warn_if_infeasible(kq.resources)
        task = self.loop.create_task(self._lease_once(kq))
        kq.requests.add(task)
        task.add_done_callback(kq.requests.discard)

    async def _lease_once(self, kq: KeyQueue) -> None:
        request = node_pb2.LeaseRequest(resources=kq.resources, job_id=self.worker.job_id,
                                        owner_worker_id=self.worker.worker_id,
                                        strategy=kq.key[2])
        try:
            reply, stub = await self.worker.lease(request)
        except asyncio.CancelledError:
            return
        except grpc.RpcError as err:
            if not self.worker.shutting_down:
                self.worker.report_system_error(f"lease request failed: {err}")
            return
        if reply.rejected:
            # No node can ever run these under their strategy: fail them, never hang.
            while kq.queue:
                self._fail(kq.queue.popleft(), exc.TaskUnschedulableError(reply.error))
            return
        lease = Lease(kq, reply, stub)
        lease.stream = open_task_stream(self.worker, reply.worker,
                                  lambda results: self._on_results(lease, results),
                                  lambda error: self._lease_broken(lease, error), reply.gpu_ids)
        kq.leases.append(lease)
        self._pump(kq)

    # ---- pipelining with work stealing --------------------------------------------------
    # Short tasks are queued several deep on one worker. If the one running there takes
    # far longer than the estimate (it may even wait for a task queued behind it), the
    # queued ones are asked back and dealt to other workers.
    def _watch(self, lease: Lease) -> None:
        lease.watch = self.loop.call_later(lease.kq.stuck_after, self._check_stuck, lease,
                                           lease.progress)

    def _check_stuck(self, lease: Lease, progress_then: int) -> None:
        lease.watch = None
        if not lease.alive or len(lease.in_flight) <= 1:
            return
        if lease.progress != progress_then:
            self._watch(lease)
            return
        lease.stuck = True
        queued = list(lease.in_flight)[1:]   # all but the running (oldest) one
        lease.stream.steal(queued)
        self._pump(lease.kq)

    def _on_results(self, lease: Lease, results) -> None:
        kq = lease.kq
        returned = []
        for result in results:
            entry = lease.in_flight.pop(result.task_id, None)
            if entry is None:
                continue
            if result.status == common_pb2.TASK_RETURNED:
                entry.lease = None
                if entry.cancelled:
                    self._fail(entry, exc.TaskCancelledError(entry.spec.task_id.hex()))
                else:
                    returned.append(entry)
                continue
            lease.progress += 1
            lease.stuck = False
            kq.record(result.duration)
            self._complete(entry, result)
        if returned:  # back to the head of the queue, in their original order
            order = {e.spec.task_id: i for i, e in enumerate(returned)}
            kq.queue.extendleft(sorted(returned, key=lambda e: -order[e.spec.task_id]))
        self._pump(kq)

    def _complete(self, entry: TaskEntry, result) -> None:
        if result.status == common_pb2.TASK_CANCELLED:
            self._fail(entry, exc.TaskCancelledError(entry.spec.task_id.hex()))
            return
        if result.app_error and not entry.cancelled and entry.retries_left != 0 \
                and self._should_retry_exception(entry, result):
            self._retry(entry)
            return
        self._finish(entry, result.returns)

    def _should_retry_exception(self, entry: TaskEntry, result) -> bool:
        allowed = entry.retry_exceptions
        if not allowed:
            return False
        if allowed is True:
            return True
        try:
            err = self.worker.io.from_value(result.returns[0])
        except Exception:
            return False
        cause = getattr(err, "cause", err)
        return isinstance(cause, tuple(allowed))

    def _retry(self, entry: TaskEntry) -> None:
        if entry.retries_left > 0:
            entry.retries_left -= 1
        entry.spec.attempt += 1
        entry.lease = None
        kq = self._key_queue(entry)
        kq.queue.appendleft(entry)

    def _lease_broken(self, lease: Lease, error) -> None:
        if not lease.alive:
            return
        lease.alive = False
        kq = lease.kq
        if lease in kq.leases:
            kq.leases.remove(lease)
        if lease.linger is not None:
            lease.linger.cancel()
        if lease.watch is not None:
            lease.watch.cancel()
        stranded = list(lease.in_flight.values())
        lease.in_flight.clear()
        for entry in stranded:
            if entry.force:
                self._fail(entry, exc.WorkerCrashedError(
                    "The worker was killed by ray.cancel(force=True) while running this task."))
            elif entry.cancelled:
                self._fail(entry, exc.TaskCancelledError(entry.spec.task_id.hex()))
            elif entry.retries_left != 0 and not self.worker.shutting_down:
                self._retry(entry)
            else:
                self._fail(entry, exc.WorkerCrashedError(
                    f"The worker running {entry.spec.name} died unexpectedly "
                    f"(max_retries exhausted): {describe(error)}"))
        if not self.worker.shutting_down:
            self.loop.create_task(self._return_lease(lease, kill=True))
            self._pump(kq)

    def _return_idle(self, lease: Lease) -> None:
        lease.linger = None
        if not lease.alive or lease.in_flight or lease.kq.queue:
            return
        lease.alive = False
        if lease in lease.kq.leases:
            lease.kq.leases.remove(lease)
        lease.stream.close()
        self.loop.create_task(self._return_lease(lease, kill=False))

    async def _return_lease(self, lease: Lease, kill: bool) -> None:
        try:
            await lease.scheduler.ReturnLease(node_pb2.ReturnLeaseRequest(lease_id=lease.lease_id,
                                                                          kill_worker=kill))
        except grpc.RpcError:
            pass

    def _cancel(self, task_id: bytes, force: bool) -> None:
        entry = self.tasks.get(task_id)
        if entry is None or entry.done:
            return
        entry.cancelled = True
        entry.force = force
        if entry.lease is None:
            if entry.unresolved:
                self._fail(entry, exc.TaskCancelledError(task_id.hex()))
                return
            kq = self.keys.get(entry.key)
            if kq is not None and entry in kq.queue:
                kq.queue.remove(entry)
            self._fail(entry, exc.TaskCancelledError(task_id.hex()))
            return
        lease = entry.lease
        # Tasks on a lease run in order: only the oldest one in flight can be running.
        # Killing the worker for a task still queued there would take others with it.
        running = next(iter(lease.in_flight), None) == task_id
        if force and running:
            self.loop.create_task(self._kill_lease_worker(lease))
        else:
            entry.force = False
            lease.stream.cancel(task_id)

    async def _kill_lease_worker(self, lease: Lease) -> None:
        try:
            await lease.scheduler.KillWorker(node_pb2.KillWorkerRequest(
                worker_id=lease.worker.worker_id, lease_id=lease.lease_id))
        except grpc.RpcError:
            pass

    # ---- finishing ------------------------------------------------------------------
    def _finish(self, entry: TaskEntry, returns) -> None:
        entry.done = True
        self.tasks.pop(entry.spec.task_id, None)
        self.worker.finish_task(entry.spec, returns)
        entry.deps = None

    def _finish_with_value_error(self, entry: TaskEntry, error_value) -> None:
        self._finish(entry, [relabeled(error_value, oid) for oid in spec_return_ids(entry.spec)])

    def _fail(self, entry: TaskEntry, error: BaseException) -> None:
        self._finish(entry, [self.worker.error_value(oid, error) for oid in spec_return_ids(entry.spec)])

    def shutdown(self) -> None:
        for kq in self.keys.values():
            for task in list(kq.requests):
                task.cancel()
            for lease in kq.leases:
                lease.alive = False
                if lease.stream is not None:
                    lease.stream.abort()


