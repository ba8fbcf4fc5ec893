"""What happens to the calls of one actor, decided without I/O.

``ActorCallState.handle(event)`` takes one event (a call was made, its arguments
resolved, the actor was placed, results came back, the stream broke, ...) and
returns the instructions the asyncio shell (core/actor_submitter.py) performs:
place the actor, open a stream, send calls, record the actor in the GCS, finish or
fail calls. Nothing here touches sockets, Redis, the event loop or the clock, so
every race can be replayed in a unit test.

Rules (as in Ray):
- Calls from one caller are sent in submission order; sending stops at the first
  call whose arguments are still unresolved.
- The owner (the process that created the actor) places it, runs its constructor and
  restarts it when its process dies, while ``max_restarts`` allows (-1: forever).
  Other callers follow the actor's address in the GCS.
- Calls in flight when the process dies are sent again after the restart while their
  ``max_task_retries`` allows (-1: forever); otherwise they fail with ActorDiedError.
- Once dead, queued and later calls fail at once with the reason of death.
"""
from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field

from raylite import exceptions as exc
from raylite.core.submit_state import LEASE_RETRY_GIVE_UP_S, LEASE_RETRY_MAX_S, next_retry_delay
from raylite.protocol import common_pb2

PENDING, ALIVE, RESTARTING, DEAD = "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"

# A transient placement failure backs off as a failed lease request does, and gives up
# after as long.
PLACEMENT_RETRY_MAX_S = LEASE_RETRY_MAX_S
PLACEMENT_RETRY_GIVE_UP_S = LEASE_RETRY_GIVE_UP_S

_CANCELLED = common_pb2.TASK_CANCELLED
_ACTOR_DEAD = common_pb2.TASK_ACTOR_DEAD


class ActorCall:
    """One method call: its spec, how many top-level ref arguments are still
    unresolved, and how many more times it may be resent after a restart."""

    __slots__ = ("spec", "deps", "unresolved", "retries_left", "bad_dep")

    def __init__(self, spec, deps, retries_left: int):
        self.spec = spec
        self.deps = deps
        self.unresolved = len(deps)
        self.retries_left = retries_left
        self.bad_dep: object = None  # an error value among the arguments, once resolved

    @property
    def task_id(self) -> bytes:
        return self.spec.task_id


# ---- events --------------------------------------------------------------------------------
@dataclass
class Start:
    """The actor handle exists: owners place the actor, others look it up."""


@dataclass
class CallSubmitted:
    call: ActorCall


@dataclass
class ArgsResolved:
    call: ActorCall
    bad_dep: object = None           # the first error value among the arguments, if any


@dataclass
class Placed:
    """The owner's dedicated-worker lease was granted."""
    address: object
    gpu_ids: tuple
    lease: object


@dataclass
class PlacementFailed:
    message: str
    unschedulable: bool = False      # rejected for good (ActorUnschedulableError)
    runtime_env_failed: bool = False  # its runtime_env could not be set up (ActorDiedError)


@dataclass
class PlacementRetry:
    """The backoff after a transient placement failure is over: try again."""


@dataclass
class AddressKnown:
    """A follower found the actor alive at ``address`` in the GCS."""
    address: object
    num_restarts: int


@dataclass
class ActorGone:
    """A follower learned that the actor is dead for good."""
    reason: str


@dataclass
class ResultsArrived:
    results: list                    # TaskResult messages, in arrival order
    creation_error: BaseException | None = None   # decoded constructor error, if it raised


@dataclass
class StreamBroken:
    stream: int                      # the epoch of the stream that broke
    detail: str                      # why, in words (for error messages)
    exit_reason: str | None = None   # the actor ended on purpose (recorded in the GCS)
    process_died: bool = True        # False: only the connection dropped


@dataclass
class Cancel:
    task_id: bytes


@dataclass
class Kill:
    no_restart: bool


@dataclass
class HandlesGone:
    """Every handle is gone: stop the actor once the calls already made are done."""
    terminate_call: ActorCall


# ---- instructions --------------------------------------------------------------------------
@dataclass
class RetryPlacementLater:
    """Placement failed for a transient reason (a scheduler unreachable, e.g. on a node
    that died): feed PlacementRetry after ``delay`` seconds."""
    delay: float


@dataclass
class PlaceActor:
    first: bool                      # False on a restart


@dataclass
class FollowAddress:
    stale_worker_id: str | None      # skip this worker: it is the one that died


@dataclass
class OpenStream:
    stream: int
    address: object
    gpu_ids: tuple


@dataclass
class SendCreation:
    attempt: int


@dataclass
class Send:
    specs: list                      # in submission order


@dataclass
class CancelOnWorker:
    task_id: bytes


@dataclass
class KillWorker:
    address: object                  # None: look the address up in the GCS


@dataclass
class ReturnLease:
    lease: object


@dataclass
class CancelPlacement:
    """Withdraw the placement request in flight: the actor will never be created."""


@dataclass
class RecordActor:
    state: str


@dataclass
class RecordExit:
    reason: str


@dataclass
class ReleaseName:
    pass


@dataclass
class Finish:
    call: ActorCall
    returns: list


@dataclass
class ForwardArgError:
    """The call cannot run: one of its arguments is an error; its returns carry it."""
    call: ActorCall
    bad_dep: object


@dataclass
class Fail:
    call: ActorCall
    error: BaseException


@dataclass
class ActorCallState:
    """Submission state of one actor in one process (owner or follower)."""
    actor_id: bytes
    is_owner: bool = False
    max_restarts: int = 0
    state: str = PENDING
    num_restarts: int = 0
    address: object = None
    lease: object = None
    stream: int = 0                  # epoch of the open stream; 0 while none is open
    connecting: bool = False
    creating: bool = False           # the constructor is in flight
    death: BaseException | None = None
    queue: collections.deque = field(default_factory=collections.deque)
    in_flight: dict = field(default_factory=dict)
    placement_delay: float = 0.0     # the last backoff after a transient placement failure
    placement_failed_for: float = 0.0  # backoff waited since the last successful placement
    _epochs: int = 0

    def handle(self, event) -> list:
        """Apply one event; returns the instructions to perform, in order."""
        return _HANDLERS[type(event)](self, event)

    # ---- queries (used by the manager to route cancels) ---------------------------------
    def has_call(self, task_id: bytes) -> bool:
        return task_id in self.in_flight or any(c.spec.task_id == task_id for c in self.queue)

    def death_error(self) -> BaseException:
        return self.death or exc.ActorDiedError(f"The actor {self.actor_id.hex()} is dead.")

    # ---- events ----------------------------------------------------------------------
    def _start(self, _event) -> list:
        out: list = []
        self._connect(out)
        return out

    def _submitted(self, event: CallSubmitted) -> list:
        call = event.call
        if self.state == DEAD:
            return [Fail(call, self.death_error())]
        self.queue.append(call)
        out: list = []
        self._flush(out)
        return out

    def _resolved(self, event: ArgsResolved) -> list:
        event.call.unresolved = 0
        event.call.bad_dep = event.bad_dep
        out: list = []
        self._flush(out)
        return out

    def _placement_retry(self, _event: PlacementRetry) -> list:
        if self.state == DEAD or self.lease is not None:
            self.connecting = False
            return []
        return [PlaceActor(first=not self.num_restarts)]

    def _placed(self, event: Placed) -> list:
        self.connecting = False
        self.placement_delay = self.placement_failed_for = 0.0
        if self.state == DEAD:      # killed while waiting for placement
            return [ReturnLease(event.lease)]
        self.lease = event.lease
        out: list = [self._open(event.address, event.gpu_ids), SendCreation(self.num_restarts)]
        self.creating = True
        self._flush(out)
        return out

    def _placement_failed(self, event: PlacementFailed) -> list:
        self.connecting = False
        if not event.unschedulable and self.state != DEAD \
                and self.placement_failed_for < PLACEMENT_RETRY_GIVE_UP_S:
            # E.g. the scheduler it was spilled to died: ask again once the cluster
            # has noticed (a dead node is not chosen again).
            self.placement_delay = next_retry_delay(self.placement_delay)
            self.placement_failed_for += self.placement_delay
            self.connecting = True
            return [RetryPlacementLater(self.placement_delay)]
        out: list = []
        if event.runtime_env_failed:
            self._die(exc.ActorDiedError(f"The actor died because its runtime_env could not "
                                         f"be set up. {event.message}",
                                         cause=exc.RuntimeEnvSetupError(event.message)), out)
            return out
        cls = exc.ActorUnschedulableError if event.unschedulable else exc.ActorDiedError
        self._die(cls(f"The actor could not be placed: {event.message}"), out)
        return out

    def _address_known(self, event: AddressKnown) -> list:
        self.connecting = False
        if self.state == DEAD:
            return []
        self.num_restarts = event.num_restarts
        self.state = ALIVE
        out: list = [self._open(event.address, ())]
        self._flush(out)
        return out

    def _gone(self, event: ActorGone) -> list:
        self.connecting = False
        out: list = []
        self._die(exc.ActorDiedError(event.reason), out)
        return out

    def _results(self, event: ResultsArrived) -> list:
        out: list = []
        in_flight = self.in_flight
        for result in event.results:
            task_id = result.task_id
            call = in_flight.pop(task_id, None)
            if call is None:
                if self.creating and task_id == self.actor_id:
                    self._created(result, event.creation_error, out)
                continue
            status = result.status
            if status == _CANCELLED:
                out.append(Fail(call, exc.TaskCancelledError(task_id.hex())))
            elif status == _ACTOR_DEAD:
                if self.state != DEAD:
                    self._die(exc.ActorDiedError(result.message or "The actor is dead."), out)
                out.append(Fail(call, self.death_error()))
            else:
                out.append(Finish(call, result.returns))
        return out

    def _created(self, result, error, out: list) -> None:
        self.creating = False
        if result.app_error:
            self._die(exc.ActorDiedError(
                f"The actor died because of an error raised in its creation task: {error}",
                cause=error), out)
            return
        if self.state != DEAD:
            self.state = ALIVE
            out.append(RecordActor(ALIVE))

    def _broken(self, event: StreamBroken) -> list:
        if event.stream != self.stream:
            return []               # an old stream: its calls were handled already
        self.stream = 0
        self.creating = False
        out: list = []
        if self.state == DEAD:
            self._die(self.death_error(), out)
            return out
        if not event.process_died and event.exit_reason is None:
            # Only the connection dropped: the actor lives on at the same address, but
            # calls in flight may or may not have run, so they count as retries.
            self._strand(True, event, out)
            out.append(self._open(self.address, ()))
            self._flush(out)
            return out
        reason = event.exit_reason
        if self.is_owner:
            can_restart = reason is None and (self.max_restarts == -1 or
                                              self.num_restarts < self.max_restarts)
            self._strand(can_restart, event, out)
            if self.lease is not None:
                out.append(ReturnLease(self.lease))
                self.lease = None
            if can_restart:
                self.num_restarts += 1
                self.state = RESTARTING
                self._connect(out)
            else:
                self._die(exc.ActorDiedError(
                    f"The actor {self.actor_id.hex()} died: {reason or event.detail}"), out)
        else:
            # Only the owner knows whether the actor comes back; the GCS will say.
            self._strand(reason is None, event, out)
            self.state = RESTARTING
            self._connect(out)
        return out

    def _strand(self, may_return: bool, event: StreamBroken, out: list) -> None:
        """Calls in flight on the broken stream: back to the front of the queue (in
        their order) while retries allow, failed otherwise."""
        retry = []
        for call in self.in_flight.values():
            if may_return and call.retries_left != 0:
                if call.retries_left > 0:
                    call.retries_left -= 1
                retry.append(call)
            else:
                reason = event.exit_reason or f"its worker process died ({event.detail})"
                out.append(Fail(call, exc.ActorDiedError(
                    f"The actor {self.actor_id.hex()} died while running {call.spec.name}: {reason}")))
        self.in_flight.clear()
        self.queue.extendleft(reversed(retry))

    def _cancel(self, event: Cancel) -> list:
        task_id = event.task_id
        for call in self.queue:
            if call.spec.task_id == task_id:
                self.queue.remove(call)
                return [Fail(call, exc.TaskCancelledError(task_id.hex()))]
        if task_id in self.in_flight and self.stream:
            # The worker answers TASK_CANCELLED if it could stop the call (queued there,
            # or an async method); a running sync method finishes normally.
            return [CancelOnWorker(task_id)]
        return []

    def _kill(self, event: Kill) -> list:
        out: list = []
        if event.no_restart:
            out.append(RecordExit("killed by ray.kill()"))
        if self.address is None and self.is_owner and self.state in (PENDING, RESTARTING):
            if event.no_restart:
                self._die(exc.ActorDiedError("The actor was killed by ray.kill() before it started."), out)
            return out
        out.append(KillWorker(self.address))
        if event.no_restart and self.state != DEAD:
            # Calls made after kill() must fail, even before the process is gone; calls
            # in flight fail when the stream breaks.
            self.state = DEAD
            self.death = exc.ActorDiedError(f"The actor {self.actor_id.hex()} was killed by ray.kill().")
            while self.queue:
                out.append(Fail(self.queue.popleft(), self.death))
            if self.is_owner:
                out.append(RecordActor(DEAD))
        return out

    def _handles_gone(self, event: HandlesGone) -> list:
        if self.state == DEAD:
            return []
        if self.is_owner and self.state == PENDING and self.lease is None \
                and not self.queue and not self.in_flight:
            # Not placed yet and nothing to run: as in Ray, it is never created (no
            # worker is started for it, its constructor never runs).
            gone: list = [RecordExit("all handles went out of scope before it was created"),
                          CancelPlacement()]
            self.connecting = False
            self._die(exc.ActorDiedError(
                f"The actor {self.actor_id.hex()} was never created: all its handles went "
                f"out of scope first."), gone)
            return gone
        out: list = [RecordExit("all handles went out of scope")]
        # Queued behind the calls already made, so those still run (as in Ray).
        out.extend(self._submitted(CallSubmitted(event.terminate_call)))
        return out

    # ---- helpers ---------------------------------------------------------------------
    def _open(self, address, gpu_ids) -> OpenStream:
        self._epochs += 1
        self.stream = self._epochs
        self.address = address
        return OpenStream(self.stream, address, tuple(gpu_ids))

    def _connect(self, out: list) -> None:
        if self.connecting or self.stream or self.state == DEAD:
            return
        self.connecting = True
        if self.is_owner and self.state in (PENDING, RESTARTING) and self.lease is None:
            if self.num_restarts:
                out.append(RecordActor(RESTARTING))
            out.append(PlaceActor(first=not self.num_restarts))
        else:
            stale = self.address
            out.append(FollowAddress(getattr(stale, "worker_id", None) if stale is not None else None))

    def _flush(self, out: list) -> None:
        """Send queued calls in order, stopping at the first with unresolved args."""
        if self.state == DEAD:
            while self.queue:
                out.append(Fail(self.queue.popleft(), self.death_error()))
            return
        if not self.stream:
            self._connect(out)
            return
        queue = self.queue
        batch = []
        while queue and queue[0].unresolved == 0:
            call = queue.popleft()
            if call.bad_dep is not None:
                out.append(ForwardArgError(call, call.bad_dep))
                continue
            self.in_flight[call.spec.task_id] = call
            batch.append(call.spec)
        if batch:
            out.append(Send(batch))

    def _die(self, error: BaseException, out: list) -> None:
        first = self.state != DEAD
        self.state = DEAD
        self.death = self.death or error
        if first and self.is_owner:
            out.append(RecordActor(DEAD))
            out.append(ReleaseName())
        death = self.death
        for call in self.in_flight.values():
            out.append(Fail(call, death))
        self.in_flight.clear()
        while self.queue:
            out.append(Fail(self.queue.popleft(), death))


_HANDLERS: dict[type, Callable[..., list]] = {
    Start: ActorCallState._start,
    CallSubmitted: ActorCallState._submitted,
    ArgsResolved: ActorCallState._resolved,
    Placed: ActorCallState._placed,
    PlacementFailed: ActorCallState._placement_failed,
    PlacementRetry: ActorCallState._placement_retry,
    AddressKnown: ActorCallState._address_known,
    ActorGone: ActorCallState._gone,
    ResultsArrived: ActorCallState._results,
    StreamBroken: ActorCallState._broken,
    Cancel: ActorCallState._cancel,
    Kill: ActorCallState._kill,
    HandlesGone: ActorCallState._handles_gone,
}
