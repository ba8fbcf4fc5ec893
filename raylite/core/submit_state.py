"""What the normal-task submitter decides, as a pure state machine.

``TaskSubmitState.handle(event) -> list[instruction]``: events say what happened
(tasks submitted, a lease granted, results back, a stream broken, a timer fired, ...),
instructions say what the asyncio shell in ``submitter.py`` must do (ask for a lease,
send tasks down a stream, return a lease, finish a task, ...). Nothing here touches a
socket, a clock or the event loop, so every race can be replayed in a unit test.

The policy, in short:
- Tasks wait in one queue per scheduling key (function, resource shape, strategy).
- A lease is a worker the scheduler lent us; tasks are dealt round-robin to the live
  leases of their key, pipelined up to ``depth()`` deep once the key's tasks are known
  to be short, one at a time until then.
- SPREAD keys run one task per lease: each task's lease request is placed by the
  scheduler's round-robin over nodes, so every task (not every lease) is spread, as in
  Ray. A SPREAD lease is returned as soon as its task is done, unless the scheduler
  said there is no other node to spread to (``LeaseGranted.reusable``).
- Work stealing: when a lease's running task outlasts ``stuck_after`` the tasks queued
  behind it on the worker are asked back; they return (TASK_RETURNED) to the head of
  the queue in their original order and go to other leases.
- Lease requests are never cancelled: cancelling one races with its grant and a grant
  whose reply is lost holds a CPU for good. Every grant ends in exactly one
  ReturnLease (idle for LINGER_S, or its stream broke); the only exception is
  shutdown, where the scheduler reclaims the leases of an owner that went away.
- A lease request that fails (scheduler unreachable) is retried with backoff; after
  about LEASE_RETRY_GIVE_UP_S of consecutive failures the queued tasks fail with
  RaySystemError instead of waiting for ever.
"""
from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from raylite import exceptions as exc
from raylite.protocol.common_pb2 import TASK_CANCELLED, TASK_RETURNED, TASK_SYSTEM_ERROR

LINGER_S = 0.05              # keep an idle lease this long for the next task
MAX_LEASE_REQUESTS = 10      # outstanding lease requests per scheduling key
MAX_PIPELINE = 256
TARGET_QUEUED_S = 0.002      # work queued per leased worker when tasks are short
MIN_STUCK_S = 0.005          # a running task is "stuck" after max(this, 10 x average)
LEASE_RETRY_FIRST_S = 0.05   # backoff after a failed lease request, doubling ...
LEASE_RETRY_MAX_S = 2.0      # ... up to this
LEASE_RETRY_GIVE_UP_S = 10.0  # consecutive failures for this long fail the queued tasks

# Timer kinds (TimerFired.kind / StartTimer.kind).
LINGER = "linger"            # target: a Lease; return it if still idle
STUCK = "stuck"              # target: a Lease; token: its progress when started
LEASE_RETRY = "lease-retry"  # target: a KeyQueue; ask for leases again


LOCALITY_MIN_BYTES = 100 * 1024  # arguments this large (in a node's store) pull the task


def preferred_node(deps, here: str, min_bytes: int = LOCALITY_MIN_BYTES) -> str:
    """Locality-aware leasing (Ray's default): the node whose store holds the most bytes
    of ``deps`` (resolved ObjectValues), when those reach ``min_bytes`` and it is not
    ``here``; else "" (lease as usual, from the local scheduler)."""
    by_node: dict[str, int] = {}
    for value in deps:
        if value.in_store and value.node_id:
            by_node[value.node_id] = by_node.get(value.node_id, 0) + value.size
    if not by_node:
        return ""
    node, size = max(by_node.items(), key=lambda item: item[1])
    return node if size >= min_bytes and node != here else ""


def next_retry_delay(previous: float) -> float:
    """The backoff after another failure to reach a scheduler: doubling from
    LEASE_RETRY_FIRST_S up to LEASE_RETRY_MAX_S (leases and actor placement alike)."""
    return min(LEASE_RETRY_MAX_S, max(LEASE_RETRY_FIRST_S, 2 * previous))


class TaskEntry:
    """One submitted normal task and what the owner needs to finish or retry it.

    ``spec`` is a TaskSpec; the state machine only reads ``spec.name`` (for messages)
    and bumps ``spec.attempt`` on a retry. ``deps`` are the ObjectRefs of top-level
    arguments, kept alive until the task is done.
    """

    __slots__ = ("spec", "task_id", "key", "resources", "retries_left", "retry_exceptions",
                 "deps", "lease", "cancelled", "done", "unresolved")

    def __init__(self, spec, key, resources, max_retries, retry_exceptions, deps):
        self.spec = spec
        self.task_id = spec.task_id
        self.key = key
        self.resources = resources
        self.retries_left = max_retries      # -1: retry for ever
        self.retry_exceptions = retry_exceptions
        self.deps = deps
        self.lease = None                     # the Lease it is in flight on
        self.cancelled = False
        self.done = False
        self.unresolved = False               # waiting for its arguments


class Lease:
    """A leased worker as the state machine sees it. ``grant`` is the shell's record of
    the grant and ``stream`` its stream to the worker; the machine never looks inside."""

    __slots__ = ("kq", "grant", "stream", "in_flight", "alive", "progress", "stuck",
                 "lingering", "watching", "reusable")

    def __init__(self, kq, grant):
        self.kq = kq
        self.grant = grant
        self.stream = None
        self.in_flight: dict[bytes, TaskEntry] = {}   # in send order: the first one runs
        self.alive = True
        self.progress = 0          # results received so far
        self.stuck = False         # its running task outlasted the estimate: send no more
        self.lingering = False     # a LINGER timer is set
        self.watching = False      # a STUCK timer is set
        self.reusable = False      # SPREAD with nowhere else to go: may carry more tasks


class KeyQueue:
    """Tasks of one scheduling key waiting for a worker, and that key's leases."""

    __slots__ = ("key", "resources", "queue", "leases", "requests", "avg_duration",
                 "stuck_after", "warned", "retry_pending", "retry_delay", "failed_for",
                 "one_per_lease", "prefer_node")

    def __init__(self, key, resources):
        self.key = key
        self.resources = resources
        self.queue: collections.deque[TaskEntry] = collections.deque()
        self.leases: list[Lease] = []
        self.requests = 0           # lease requests outstanding
        self.avg_duration: float | None = None
        self.stuck_after = MIN_STUCK_S
        self.warned = False
        self.retry_pending = False  # backing off after a failed lease request
        self.retry_delay = 0.0      # the last backoff
        self.failed_for = 0.0       # backoff waited since the last success
        # SPREAD: a lease carries one task, so each task is placed on its own.
        self.one_per_lease = len(key) > 2 and key[2] == "SPREAD"
        # Locality: the node holding most of these tasks' large arguments (key[4],
        # after the runtime_env), asked for leases first; "" = the local scheduler.
        self.prefer_node = key[4] if len(key) > 4 else ""

    def depth(self) -> int:
        """Tasks allowed in flight per lease: 1 until tasks are known to be short (and
        always for SPREAD keys)."""
        if self.avg_duration is None or self.one_per_lease:
            return 1
        return max(1, min(MAX_PIPELINE, int(TARGET_QUEUED_S / max(self.avg_duration, 1e-6))))

    def record(self, duration: float) -> None:
        if self.avg_duration is None:
            self.avg_duration = duration
        else:
            self.avg_duration = 0.8 * self.avg_duration + 0.2 * duration
        self.stuck_after = max(MIN_STUCK_S, 10 * self.avg_duration)


# ---- events ---------------------------------------------------------------------------
@dataclass(slots=True)
class Submitted:
    entries: list


@dataclass(slots=True)
class DepsResolved:
    entry: TaskEntry
    failed_value: object = None     # the error value of the first failed argument, if any
    prefer_node: str = ""           # another node holding its large arguments (locality)


@dataclass(slots=True)
class LeaseGranted:
    request_id: int
    grant: object                   # opaque to the machine; kept on the Lease
    reusable: bool = False          # SPREAD only: the scheduler had no other node for it


@dataclass(slots=True)
class LeaseRejected:
    request_id: int
    message: str
    runtime_env_failed: bool = False   # the node could not set up the key's runtime_env


@dataclass(slots=True)
class LeaseFailed:
    request_id: int
    scheduler: str                  # address of the scheduler asked
    status: str                     # e.g. "UNAVAILABLE: failed to connect"


@dataclass(slots=True)
class ResultsArrived:
    """``results`` are TaskResult-like (task_id, status, duration, app_error, returns).
    ``retryable`` holds the ids of app errors that match a task's retry_exceptions list
    (the shell decides: it needs to deserialize the error)."""
    lease: Lease
    results: list
    retryable: frozenset = frozenset()


@dataclass(slots=True)
class StreamBroken:
    lease: Lease
    reason: str


@dataclass(slots=True)
class Cancel:
    task_id: bytes
    force: bool


@dataclass(slots=True)
class TimerFired:
    kind: str
    target: object
    token: int = 0


@dataclass(slots=True)
class Shutdown:
    pass


# ---- instructions -----------------------------------------------------------------------
@dataclass(slots=True)
class ResolveDeps:
    entry: TaskEntry


@dataclass(slots=True)
class RecoverArgument:
    """An argument of ``entry`` was lost with its node: have it rebuilt (or learn that
    it cannot be), then resolve the entry's arguments again (-> DepsResolved)."""
    entry: TaskEntry
    object_id: bytes


@dataclass(slots=True)
class RequestLease:
    request_id: int
    key: tuple
    resources: dict
    prefer_node: str = ""    # ask this node's scheduler first (locality); "" = local
    retriable: bool = True   # the tasks waiting may be retried (memory monitor hint)


@dataclass(slots=True)
class WarnInfeasible:
    resources: dict


@dataclass(slots=True)
class OpenStream:
    lease: Lease


@dataclass(slots=True)
class Send:
    lease: Lease
    entries: list


@dataclass(slots=True)
class Steal:
    lease: Lease
    task_ids: list


@dataclass(slots=True)
class CancelOnWorker:
    lease: Lease
    task_id: bytes


@dataclass(slots=True)
class KillWorker:
    lease: Lease


@dataclass(slots=True)
class ReturnLease:
    """Close the lease's stream (if any) and give the worker back; ``kill`` when the
    worker is in an unknown state (its stream broke)."""
    lease: Lease
    kill: bool


@dataclass(slots=True)
class AbortStream:
    lease: Lease


@dataclass(slots=True)
class Finish:
    entry: TaskEntry
    returns: object                 # the task's return values


@dataclass(slots=True)
class FinishWithError:
    entry: TaskEntry
    kind: type[Exception]           # a raylite exception class
    message: str = ""


@dataclass(slots=True)
class FailWorkerDied:
    """Finish ``entry`` (no retries left) with the death of its worker. Only the node
    knows why it died, so the shell asks the scheduler that granted ``lease``:
    OutOfMemoryError when its memory monitor killed the worker, else WorkerCrashedError
    with ``message``."""
    entry: TaskEntry
    lease: Lease
    message: str


@dataclass(slots=True)
class PropagateError:
    """Finish ``entry`` unrun: each of its returns holds ``value`` (a failed argument)."""
    entry: TaskEntry
    value: object


@dataclass(slots=True)
class StartTimer:
    kind: str
    target: object
    delay: float
    token: int = 0


@dataclass(slots=True)
class CancelTimer:
    kind: str
    target: object


@dataclass
class TaskSubmitState:
    keys: dict = field(default_factory=dict)       # scheduling key -> KeyQueue
    tasks: dict = field(default_factory=dict)      # task id -> TaskEntry not yet done
    requests: dict = field(default_factory=dict)   # lease request id -> KeyQueue
    next_request: int = 0
    closed: bool = False

    def handle(self, event) -> list:
        """The instructions that follow from ``event``, in the order to perform them."""
        return _HANDLERS[type(event)](self, event)

    # ---- tasks arriving -----------------------------------------------------------
    def _submitted(self, ev: Submitted) -> list:
        out: list = []
        touched: dict = {}
        tasks = self.tasks
        for entry in ev.entries:
            tasks[entry.task_id] = entry
            if entry.deps:
                entry.unresolved = True
                out.append(ResolveDeps(entry))
            else:
                kq = self._key_queue(entry)
                touched[kq] = None
                kq.queue.append(entry)
        for kq in touched:
            self._pump(kq, out)
        return out

    def _deps_resolved(self, ev: DepsResolved) -> list:
        entry = ev.entry
        entry.unresolved = False
        if entry.done:
            return []
        if ev.failed_value is not None:
            self._forget(entry)
            return [PropagateError(entry, ev.failed_value)]
        if entry.cancelled:
            return [self._fail(entry, exc.TaskCancelledError)]
        if ev.prefer_node and not entry.key[2]:
            # DEFAULT strategy only: leases for it are asked of the node holding its data.
            entry.key = (*entry.key[:4], ev.prefer_node)
        kq = self._key_queue(entry)
        kq.queue.append(entry)
        out: list = []
        self._pump(kq, out)
        return out

    def _key_queue(self, entry: TaskEntry) -> KeyQueue:
        kq = self.keys.get(entry.key)
        if kq is None:
            kq = self.keys[entry.key] = KeyQueue(entry.key, entry.resources)
        return kq

    # ---- dealing tasks to leases ----------------------------------------------------
    def _pump(self, kq: KeyQueue, out: list) -> None:
        queue = kq.queue
        if queue and kq.leases:
            depth = kq.depth()
            batches: dict = {}
            # Deal round-robin so every leased worker gets a share.
            progress = True
            while queue and progress:
                progress = False
                for lease in kq.leases:
                    if not queue:
                        break
                    in_flight = lease.in_flight
                    if lease.stuck or len(in_flight) >= depth:
                        continue
                    entry = queue.popleft()
                    entry.lease = lease
                    in_flight[entry.task_id] = entry
                    batch = batches.get(lease)
                    if batch is None:
                        batch = batches[lease] = []
                    batch.append(entry)
                    progress = True
            for lease, batch in batches.items():
                out.append(Send(lease, batch))
                if lease.lingering:
                    lease.lingering = False
                    out.append(CancelTimer(LINGER, lease))
                if len(lease.in_flight) > 1 and not lease.watching:
                    lease.watching = True
                    out.append(StartTimer(STUCK, lease, kq.stuck_after, lease.progress))
        if queue:
            if not kq.retry_pending and kq.requests < MAX_LEASE_REQUESTS:
                wanted = min(MAX_LEASE_REQUESTS, -(-len(queue) // kq.depth()))
                if kq.requests < wanted and not kq.warned:
                    kq.warned = True
                    out.append(WarnInfeasible(kq.resources))
                while kq.requests < wanted:
                    self._request(kq, out)
            return
        # Outstanding lease requests are left to complete even when the queue drains
        # (see the module docstring); a lease nobody needs is returned after LINGER_S.
        for lease in kq.leases:
            if not lease.in_flight and not lease.lingering:
                lease.lingering = True
                out.append(StartTimer(LINGER, lease, LINGER_S))

    def _request(self, kq: KeyQueue, out: list) -> None:
        self.next_request += 1
        self.requests[self.next_request] = kq
        kq.requests += 1
        # Whether the waiting work may be retried; the node kills such workers first
        # when memory runs low. The head of the queue speaks for the key.
        retriable = not kq.queue or kq.queue[0].retries_left != 0
        out.append(RequestLease(self.next_request, kq.key, kq.resources, kq.prefer_node,
                                retriable))

    # ---- lease replies ------------------------------------------------------------------
    def _take_request(self, request_id: int) -> KeyQueue:
        kq = self.requests.pop(request_id)
        kq.requests -= 1
        return kq

    def _lease_granted(self, ev: LeaseGranted) -> list:
        kq = self._take_request(ev.request_id)
        lease = Lease(kq, ev.grant)
        lease.reusable = ev.reusable
        if self.closed:
            lease.alive = False
            return [ReturnLease(lease, kill=False)]
        kq.failed_for = kq.retry_delay = 0.0
        kq.leases.append(lease)
        out: list = [OpenStream(lease)]
        self._pump(kq, out)
        return out

    def _lease_rejected(self, ev: LeaseRejected) -> list:
        kq = self._take_request(ev.request_id)
        # No node can ever run these under their strategy (or set up their runtime_env):
        # fail them, never hang.
        kind = exc.RuntimeEnvSetupError if ev.runtime_env_failed else exc.TaskUnschedulableError
        out = []
        while kq.queue:
            out.append(self._fail(kq.queue.popleft(), kind, ev.message))
        return out

    def _lease_failed(self, ev: LeaseFailed) -> list:
        kq = self._take_request(ev.request_id)
        if self.closed or kq.retry_pending or not kq.queue:
            return []  # nothing waits, or already backing off from the same outage
        if kq.failed_for >= LEASE_RETRY_GIVE_UP_S:
            kq.failed_for = kq.retry_delay = 0.0
            out = []
            message = (f"Could not get a worker lease from the scheduler at {ev.scheduler} for "
                       f"{LEASE_RETRY_GIVE_UP_S:.0f} s: {ev.status}")
            while kq.queue:
                out.append(self._fail(kq.queue.popleft(), exc.RaySystemError, message))
            return out
        delay = kq.retry_delay = next_retry_delay(kq.retry_delay)
        kq.failed_for += delay
        kq.retry_pending = True
        return [StartTimer(LEASE_RETRY, kq, delay)]

    # ---- results and broken streams ------------------------------------------------------
    def _results(self, ev: ResultsArrived) -> list:
        lease = ev.lease
        kq = lease.kq
        in_flight = lease.in_flight
        out: list = []
        returned = None
        for result in ev.results:
            entry = in_flight.pop(result.task_id, None)
            if entry is None:
                continue
            status = result.status
            if status == TASK_RETURNED:
                entry.lease = None
                if entry.cancelled:
                    out.append(self._fail(entry, exc.TaskCancelledError))
                elif returned is None:
                    returned = [entry]
                else:
                    returned.append(entry)
                continue
            lease.progress += 1
            lease.stuck = False
            kq.record(result.duration)
            if status == TASK_CANCELLED:
                out.append(self._fail(entry, exc.TaskCancelledError))
            elif status == TASK_SYSTEM_ERROR:
                # Not run: an argument lived on a node that died. Rebuild it, then
                # resolve the arguments again; that counts as one retry.
                if entry.cancelled or entry.retries_left == 0:
                    out.append(self._fail(entry, exc.ObjectLostError, result.message))
                    continue
                if entry.retries_left > 0:
                    entry.retries_left -= 1
                entry.spec.attempt += 1
                entry.lease = None
                entry.unresolved = True
                out.append(RecoverArgument(entry, result.lost_object_id))
            elif result.app_error and not entry.cancelled and entry.retries_left != 0 and (
                    entry.retry_exceptions is True
                    or (entry.retry_exceptions and entry.task_id in ev.retryable)):
                self._retry(entry, kq)
            else:
                entry.done = True
                del self.tasks[entry.task_id]
                out.append(Finish(entry, result.returns))
        if returned:  # stolen back: to the head of the queue, in their original order
            kq.queue.extendleft(reversed(returned))
        if kq.one_per_lease and not in_flight and lease.alive and not lease.reusable:
            # SPREAD: the next task asks for a lease of its own (placed round-robin).
            lease.alive = False
            kq.leases.remove(lease)
            out.append(ReturnLease(lease, kill=False))
        self._pump(kq, out)
        return out

    def _retry(self, entry: TaskEntry, kq: KeyQueue) -> None:
        if entry.retries_left > 0:
            entry.retries_left -= 1
        entry.spec.attempt += 1
        entry.lease = None
        kq.queue.appendleft(entry)

    def _stream_broken(self, ev: StreamBroken) -> list:
        lease = ev.lease
        if not lease.alive:
            return []
        lease.alive = False
        kq = lease.kq
        kq.leases.remove(lease)
        out: list = []
        if lease.lingering:
            lease.lingering = False
            out.append(CancelTimer(LINGER, lease))
        if lease.watching:
            lease.watching = False
            out.append(CancelTimer(STUCK, lease))
        stranded = list(lease.in_flight.values())
        lease.in_flight.clear()
        for entry in stranded:
            entry.lease = None
            if entry.cancelled:   # force=True killed the worker, as asked (Ray's error)
                out.append(self._fail(entry, exc.TaskCancelledError))
            elif entry.retries_left != 0 and not self.closed:
                self._retry(entry, kq)
            else:
                self._forget(entry)
                out.append(FailWorkerDied(entry, lease,
                                          f"The worker running {entry.spec.name} died "
                                          f"unexpectedly (max_retries exhausted): {ev.reason}"))
        if not self.closed:
            out.append(ReturnLease(lease, kill=True))
            self._pump(kq, out)
        return out

    # ---- cancellation -------------------------------------------------------------------
    def _cancel(self, ev: Cancel) -> list:
        entry = self.tasks.get(ev.task_id)
        if entry is None or entry.done:
            return []
        entry.cancelled = True
        lease = entry.lease
        if lease is None:
            if not entry.unresolved:
                kq = self.keys.get(entry.key)
                if kq is not None and entry in kq.queue:
                    kq.queue.remove(entry)
            return [self._fail(entry, exc.TaskCancelledError)]
        # Tasks on a lease run in order: only the oldest one in flight can be running.
        # Killing the worker for a task still queued there would take others with it.
        if ev.force and next(iter(lease.in_flight)) == ev.task_id:
            return [KillWorker(lease)]
        return [CancelOnWorker(lease, ev.task_id)]

    # ---- timers ---------------------------------------------------------------------------
    def _timer(self, ev: TimerFired) -> list:
        kind = ev.kind
        out: list = []
        if kind == LINGER:
            lease = cast(Lease, ev.target)
            if not lease.lingering:
                return out     # cancelled after it fired
            lease.lingering = False
            if not lease.alive or lease.in_flight or lease.kq.queue:
                return out
            lease.alive = False
            lease.kq.leases.remove(lease)
            out.append(ReturnLease(lease, kill=False))
        elif kind == STUCK:
            lease = cast(Lease, ev.target)
            if not lease.watching:
                return out
            lease.watching = False
            if not lease.alive or len(lease.in_flight) <= 1:
                return out
            if lease.progress != ev.token:
                lease.watching = True
                out.append(StartTimer(STUCK, lease, lease.kq.stuck_after, lease.progress))
                return out
            # The running task outlasted the estimate (it may even wait for one queued
            # behind it): ask the queued ones back so other workers can run them.
            lease.stuck = True
            out.append(Steal(lease, list(lease.in_flight)[1:]))
            self._pump(lease.kq, out)
        elif kind == LEASE_RETRY:
            kq = cast(KeyQueue, ev.target)
            kq.retry_pending = False
            if not self.closed:
                self._pump(kq, out)
        return out

    def _shutdown(self, ev: Shutdown) -> list:
        self.closed = True
        out = []
        for kq in self.keys.values():
            for lease in kq.leases:
                lease.alive = False
                out.append(AbortStream(lease))
            kq.leases.clear()
        return out

    # ---- finishing --------------------------------------------------------------------------
    def _forget(self, entry: TaskEntry) -> None:
        entry.done = True
        self.tasks.pop(entry.task_id, None)

    def _fail(self, entry: TaskEntry, kind: type, message: str = "") -> FinishWithError:
        self._forget(entry)
        return FinishWithError(entry, kind, message)


_HANDLERS: dict[type, Callable[[TaskSubmitState, Any], list]] = {
    Submitted: TaskSubmitState._submitted,
    DepsResolved: TaskSubmitState._deps_resolved,
    LeaseGranted: TaskSubmitState._lease_granted,
    LeaseRejected: TaskSubmitState._lease_rejected,
    LeaseFailed: TaskSubmitState._lease_failed,
    ResultsArrived: TaskSubmitState._results,
    StreamBroken: TaskSubmitState._stream_broken,
    Cancel: TaskSubmitState._cancel,
    TimerFired: TaskSubmitState._timer,
    Shutdown: TaskSubmitState._shutdown,
}
