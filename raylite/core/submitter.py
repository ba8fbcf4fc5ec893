"""Normal-task submission: the asyncio shell around ``submit_state.TaskSubmitState``.

The state machine decides (pipelining, work stealing, retries, cancellation, lease
bookkeeping); this module feeds it events from submit()/cancel(), dependency
resolution, lease replies, task streams and timers, and performs the instructions it
returns. Everything below ``submit``/``cancel`` runs on the core worker's event loop.
"""
from __future__ import annotations

import asyncio
import collections

import grpc

from raylite import exceptions as exc
from raylite.core import submit_state as ss
from raylite.core import task_events
from raylite.core.local_channel import open_task_stream
from raylite.core.object_manager import error_value, relabeled
from raylite.core.submit_state import TaskEntry  # noqa: F401  (CoreWorker builds these)
from raylite.core.task_stream import describe
from raylite.ids import spec_return_ids
from raylite.protocol import node_pb2

FAILURE_CAUSE_TIMEOUT_S = 1.0   # asking a node why a worker died (a partitioned node: give up)


class TaskSubmitter:
    """Submits a CoreWorker's normal tasks. ``submit`` and ``cancel`` may be called from
    any thread; they never raise (a task's failure lands in its return values)."""

    def __init__(self, worker):
        self.worker = worker
        self.objects = worker.objects
        self.loop = worker.loop
        self.state = ss.TaskSubmitState()
        self.incoming: collections.deque = collections.deque()
        self._wakeup = False
        self._requests: set = set()            # asyncio tasks of outstanding lease requests
        self._timers: dict = {}                # (kind, target) -> TimerHandle
        self._perform = {
            ss.Send: self._send,
            ss.Finish: self._finish,
            ss.StartTimer: self._start_timer,
            ss.CancelTimer: self._cancel_timer,
            ss.RequestLease: self._request_lease,
            ss.OpenStream: self._open_stream,
            ss.FinishWithError: self._finish_with_error,
            ss.FailWorkerDied: self._fail_worker_died,
            ss.PropagateError: self._propagate_error,
            ss.ResolveDeps: self._resolve_deps,
            ss.RecoverArgument: self._recover_argument,
            ss.Steal: lambda i: i.lease.stream.steal(i.task_ids),
            ss.CancelOnWorker: lambda i: i.lease.stream.cancel(i.task_id),
            ss.KillWorker: self._kill_worker,
            ss.ReturnLease: self._return_lease,
            ss.AbortStream: self._abort_stream,
            ss.WarnInfeasible: lambda i: self.worker.warn_if_infeasible(i.resources),
        }

    # ---- called from any thread ---------------------------------------------------
    def submit(self, entry: TaskEntry) -> None:
        task_events.submitted(entry.spec, entry.resources)
        self.incoming.append(entry)
        if not self._wakeup:
            self._wakeup = True
            self.loop.call_soon_threadsafe(self._drain)

    def cancel(self, task_id: bytes, force: bool) -> None:
        self.loop.call_soon_threadsafe(self._feed, ss.Cancel(task_id, force))

    # ---- loop thread: events in ---------------------------------------------------
    def _feed(self, event) -> None:
        perform = self._perform
        for instruction in self.state.handle(event):
            perform[type(instruction)](instruction)

    def _drain(self) -> None:
        self._wakeup = False
        entries = []
        incoming = self.incoming
        while incoming:
            entries.append(incoming.popleft())
        if entries:
            self._feed(ss.Submitted(entries))

    def _on_results(self, lease: ss.Lease, results) -> None:
        retryable: frozenset = frozenset()
        for result in results:
            if result.app_error:
                retryable = self._retryable(results)
                break
        self._feed(ss.ResultsArrived(lease, results, retryable))

    def _retryable(self, results) -> frozenset:
        """Ids of app errors whose exception type is in their task's retry_exceptions."""
        out = set()
        tasks = self.state.tasks
        for result in results:
            entry = tasks.get(result.task_id) if result.app_error else None
            if entry is None or entry.retries_left == 0 or isinstance(entry.retry_exceptions, bool) \
                    or not entry.retry_exceptions:
                continue
            try:
                err = self.worker.io.from_value(result.returns[0])
            except Exception:
                continue
            if isinstance(getattr(err, "cause", err), tuple(entry.retry_exceptions)):
                out.add(result.task_id)
        return frozenset(out)

    def _on_broken(self, lease: ss.Lease, error) -> None:
        self._check_shutdown()
        self._feed(ss.StreamBroken(lease, describe(error)))

    def _timer_fired(self, kind: str, target, token: int) -> None:
        self._timers.pop((kind, target), None)
        self._feed(ss.TimerFired(kind, target, token))

    def _check_shutdown(self) -> None:
        # CoreWorker.shutdown sets the flag before the loop runs our shutdown().
        if self.worker.shutting_down and not self.state.closed:
            self._feed(ss.Shutdown())

    # ---- instructions out -----------------------------------------------------------
    def _send(self, ins: ss.Send) -> None:
        stream = ins.lease.stream
        send = stream.send
        for entry in ins.entries:
            send(entry.spec)
        generators = self.worker.generators.records
        if generators:   # their acks (backpressure) follow them to this worker
            for entry in ins.entries:
                if entry.task_id in generators:
                    self.worker.generators.sent(entry.task_id, stream)

    def _finish(self, ins: ss.Finish) -> None:
        entry = ins.entry
        task_events.finished(entry.task_id)
        # Results in a node's store may be lost with it: keep how to rebuild them.
        kept = self.worker.reconstruction.record(entry.spec, ins.returns, entry.deps,
                                                 entry.resources, entry.key[2],
                                                 entry.retries_left)
        self.objects.finish_task(entry.spec, ins.returns, keep_args=kept)
        entry.deps = None

    def _finish_with_error(self, ins: ss.FinishWithError) -> None:
        entry = ins.entry
        error: BaseException
        if ins.kind is exc.TaskCancelledError:
            error = exc.TaskCancelledError(entry.task_id.hex())
        elif issubclass(ins.kind, exc.ObjectLostError):
            error = ins.kind(message=ins.message)
        else:
            error = ins.kind(ins.message)
        task_events.failed_unrun(entry.spec, ins.kind.__name__, ins.message)
        self._finish(ss.Finish(entry, [error_value(oid, error)
                                       for oid in spec_return_ids(entry.spec)]))

    def _fail_worker_died(self, ins: ss.FailWorkerDied) -> None:
        self.loop.create_task(self._finish_worker_died(ins))

    async def _finish_worker_died(self, ins: ss.FailWorkerDied) -> None:
        """Ask the scheduler that lent the worker why it died (only on this failure
        path): its memory monitor's kill becomes OutOfMemoryError, as in Ray."""
        entry = ins.entry
        reply, stub = ins.lease.grant
        error: BaseException = exc.WorkerCrashedError(ins.message)
        try:
            cause = await stub.GetWorkerFailureCause(
                node_pb2.WorkerFailureRequest(lease_id=reply.lease_id), timeout=FAILURE_CAUSE_TIMEOUT_S)
            if cause.oom:
                error = exc.OutOfMemoryError(
                    f"Task {entry.spec.name} was killed due to the node running low on memory "
                    f"(max_retries exhausted). {cause.message}")
        except Exception:   # the node is gone too: its death is the news
            pass
        self._finish(ss.Finish(entry, [error_value(oid, error) for oid in spec_return_ids(entry.spec)]))

    def _propagate_error(self, ins: ss.PropagateError) -> None:
        entry = ins.entry
        task_events.failed_unrun(entry.spec, "DEPENDENCY_FAILED", "an argument of the task failed")
        self._finish(ss.Finish(entry, [relabeled(ins.value, oid)
                                       for oid in spec_return_ids(entry.spec)]))

    def _resolve_deps(self, ins: ss.ResolveDeps) -> None:
        entry = ins.entry
        self.objects.resolve_deps(entry.spec, entry.deps, lambda: self._deps_resolved(entry))

    def _recover_argument(self, ins: ss.RecoverArgument) -> None:
        entry = ins.entry
        for ref, value in zip(entry.deps or (), entry.spec.deps):
            if ref.binary() == ins.object_id:
                self.objects.recover_lost(ref, value.node_id)
                self._resolve_deps(ss.ResolveDeps(entry))
                return
        error = exc.ObjectLostError(ins.object_id.hex(), f"An argument of {entry.spec.name} "
                                                         f"({ins.object_id.hex()}) was lost.")
        self._feed(ss.DepsResolved(entry, error_value(ins.object_id, error)))

    def _deps_resolved(self, entry: TaskEntry) -> None:
        failed = None
        deps = entry.spec.deps
        for dep in deps:
            if dep.is_error:
                failed = dep   # the task fails with its argument's error, unrun
                break
        prefer = "" if failed is not None else ss.preferred_node(deps, self.worker.node_id)
        self._feed(ss.DepsResolved(entry, failed, prefer))

    def _start_timer(self, ins: ss.StartTimer) -> None:
        self._timers[(ins.kind, ins.target)] = self.loop.call_later(
            ins.delay, self._timer_fired, ins.kind, ins.target, ins.token)

    def _cancel_timer(self, ins: ss.CancelTimer) -> None:
        handle = self._timers.pop((ins.kind, ins.target), None)
        if handle is not None:
            handle.cancel()

    def _request_lease(self, ins: ss.RequestLease) -> None:
        task = self.loop.create_task(self._lease_once(ins))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _lease_once(self, ins: ss.RequestLease) -> None:
        worker = self.worker
        request = node_pb2.LeaseRequest(resources=ins.resources, job_id=worker.job_id,
                                        owner_worker_id=worker.worker_id, strategy=ins.key[2],
                                        runtime_env=ins.key[3], retriable=ins.retriable)
        try:
            reply, stub = await worker.lease(request, prefer_node=ins.prefer_node)
        except asyncio.CancelledError:
            return
        except grpc.RpcError as err:
            self._check_shutdown()
            self._feed(ss.LeaseFailed(ins.request_id, worker.scheduler_target, describe(err)))
            return
        except Exception as err:  # e.g. the channel was closed under us
            self._check_shutdown()
            self._feed(ss.LeaseFailed(ins.request_id, worker.scheduler_target,
                                      f"{type(err).__name__}: {err}"))
            return
        if reply.rejected:
            self._feed(ss.LeaseRejected(ins.request_id, reply.error, reply.runtime_env_failed))
        else:
            self._feed(ss.LeaseGranted(ins.request_id, (reply, stub), reply.reusable))

    def _open_stream(self, ins: ss.OpenStream) -> None:
        lease = ins.lease
        reply = lease.grant[0]
        lease.stream = open_task_stream(self.worker, reply.worker,
                                        lambda results: self._on_results(lease, results),
                                        lambda error: self._on_broken(lease, error), reply.gpu_ids,
                                        lease.kq.resources)

    def _return_lease(self, ins: ss.ReturnLease) -> None:
        lease = ins.lease
        if lease.stream is not None and not ins.kill:
            lease.stream.close()
        reply, stub = lease.grant
        self.loop.create_task(_quiet(stub.ReturnLease(
            node_pb2.ReturnLeaseRequest(lease_id=reply.lease_id, kill_worker=ins.kill))))

    def _kill_worker(self, ins: ss.KillWorker) -> None:
        reply, stub = ins.lease.grant
        self.loop.create_task(_quiet(stub.KillWorker(
            node_pb2.KillWorkerRequest(worker_id=reply.worker.worker_id, lease_id=reply.lease_id))))

    def _abort_stream(self, ins: ss.AbortStream) -> None:
        if ins.lease.stream is not None:
            ins.lease.stream.abort()

    def shutdown(self) -> None:
        """Stop asking for leases and drop every stream (loop thread)."""
        for task in list(self._requests):
            task.cancel()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if not self.state.closed:
            self._feed(ss.Shutdown())


async def _quiet(awaitable) -> None:
    try:
        await awaitable
    except grpc.RpcError:
        pass
