"""Calling actors: one ActorCaller per (process, actor). Runs on the core worker's loop.

Calls from one caller travel in submission order over one stream to the actor's
worker. The process that created the actor (its owner) also places it (a
dedicated-worker lease), runs the constructor, records its state in the GCS actor
table and restarts it when its process dies and ``max_restarts`` allows. Other
callers find the actor's address in the GCS and follow its restarts there.
"""
from __future__ import annotations

import asyncio
import collections
import time

import grpc

from raylite import exceptions as exc
from raylite.core.local_channel import open_task_stream
from raylite.core.object_manager import _quiet, relabeled
from raylite.core.task_stream import TaskStream, describe
from raylite.ids import spec_return_ids
from raylite.protocol import common_pb2, node_pb2

PENDING, ALIVE, RESTARTING, DEAD = "PENDING_CREATION", "ALIVE", "RESTARTING", "DEAD"


class ActorCall:
    __slots__ = ("spec", "deps", "unresolved", "retries_left", "done", "cancelled")

    def __init__(self, spec, deps, retries_left):
        self.spec = spec
        self.deps = deps
        self.unresolved = len(deps)
        self.retries_left = retries_left
        self.done = False
        self.cancelled = False


class ActorCaller:
    """Submission state for one actor in this process."""

    def __init__(self, manager, actor_id: bytes, *, owner_info: dict | None = None):
        self.manager = manager
        self.worker = manager.worker
        self.loop = self.worker.loop
        self.actor_id = actor_id
        self.owner_info = owner_info          # set in the creating process
        self.state = PENDING
        self.stream: TaskStream | None = None
        self.queue: collections.deque[ActorCall] = collections.deque()
        self.in_flight: dict[bytes, ActorCall] = {}
        self.death: BaseException | None = None
        self.num_restarts = 0
        self.connecting = False
        self.lease = None                     # (lease_id, scheduler stub) when owner

    # ---- submission (loop thread) ------------------------------------------------------
    def submit(self, call: ActorCall) -> None:
        if self.state == DEAD:
            self._fail(call, self._death_error())
            return
        self.queue.append(call)
        if call.deps:
            self.worker.resolve_deps(call.spec, call.deps, lambda: self._deps_resolved(call))
        self._flush()

    def _deps_resolved(self, call: ActorCall) -> None:
        call.unresolved = 0
        self._flush()

    def _flush(self) -> None:
        """Send queued calls in order, stopping at the first with unresolved args."""
        if self.state == DEAD:
            while self.queue:
                self._fail(self.queue.popleft(), self._death_error())
            return
        if self.stream is None or not self.stream.alive:
            self._ensure_connected()
            return
        while self.queue and self.queue[0].unresolved == 0:
            call = self.queue.popleft()
            if call.cancelled:
                self._fail(call, exc.TaskCancelledError(call.spec.task_id.hex()))
                continue
            bad = next((v for v in call.spec.deps if v.is_error), None)
            if bad is not None:
                self._finish(call, [relabeled(bad, oid) for oid in spec_return_ids(call.spec)])
                continue
            self.in_flight[call.spec.task_id] = call
            self.stream.send(call.spec)

    def _ensure_connected(self) -> None:
        if self.connecting or self.state == DEAD:
            return
        self.connecting = True
        if self.owner_info is not None and self.state in (PENDING, RESTARTING) and self.lease is None:
            self.loop.create_task(self._create())
        else:
            self.loop.create_task(self._follow())

    # ---- owner: placement, construction, restarts -----------------------------------------
    async def _create(self) -> None:
        info = self.owner_info
        worker = self.worker
        if not self.num_restarts:
            worker.warn_if_infeasible(info["placement"])
        if self.num_restarts:
            self._record(RESTARTING)
        request = node_pb2.LeaseRequest(
            resources=info["placement"], running_resources=info["running"], for_actor=True,
            job_id=worker.job_id, actor_id=self.actor_id, strategy=info.get("strategy", ""),
            owner_worker_id="" if info["detached"] else worker.worker_id)
        try:
            reply, stub = await worker.lease(request)
        except (grpc.RpcError, asyncio.CancelledError) as err:
            self.connecting = False
            self._die(exc.ActorDiedError(f"The actor could not be placed: {describe(err)}"))
            return
        if reply.rejected:
            self.connecting = False
            self._die(exc.ActorUnschedulableError(f"The actor could not be placed: {reply.error}"))
            return
        if self.state == DEAD:  # killed while waiting for placement
            await _quiet(stub.ReturnLease(node_pb2.ReturnLeaseRequest(lease_id=reply.lease_id,
                                                                      kill_worker=True)))
            return
        self.lease = (reply.lease_id, stub)
        self.address = reply.worker
        creation = common_pb2.TaskSpec()
        creation.CopyFrom(info["creation_spec"])
        creation.task_id = self.actor_id
        creation.attempt = self.num_restarts
        self._open_stream(reply.worker, reply.gpu_ids)
        self.in_flight[creation.task_id] = ActorCall(creation, [], 0)
        self.stream.send(creation)
        self.connecting = False
        self._flush()

    def _on_created(self, result) -> None:
        if result.app_error:
            error = self.worker.io.from_value(result.returns[0])
            self._die(exc.ActorDiedError(
                f"The actor died because of an error raised in its creation task: {error}",
                cause=error))
            return
        self.state = ALIVE
        self._record(ALIVE)

    def _record(self, state: str) -> None:
        info = self.owner_info
        record = {"actor_id": self.actor_id.hex(), "state": state, "class_name": info["class_name"],
                  "name": info["name"], "namespace": info["namespace"], "meta": info["meta"],
                  "num_restarts": self.num_restarts, "max_restarts": info["max_restarts"],
                  "detached": info["detached"], "job_id": self.worker.job_id.hex(),
                  "owner": self.worker.address.SerializeToString(),
                  "address": self.address.SerializeToString() if state == ALIVE else b"",
                  "node_id": self.address.node_id if state == ALIVE else "",
                  "pid": self.address.pid if state == ALIVE else 0,
                  "death_cause": str(self.death) if self.death else "",
                  "time": time.time()}
        try:
            self.worker.gcs.put_actor(self.actor_id.hex(), record)
        except Exception:
            pass

    # ---- other callers: follow the actor table -------------------------------------------
    async def _follow(self) -> None:
        from raylite.protocol import common_pb2 as pb
        delay = 0.005
        stale = getattr(self, "address", None)
        started = time.monotonic()
        try:
            while True:
                record = self.worker.gcs.get_actor(self.actor_id.hex())
                if record is not None and record["state"] == DEAD:
                    self._die(exc.ActorDiedError(
                        f"The actor {self.actor_id.hex()} is dead: {record.get('death_cause') or 'it exited'}"))
                    return
                if record is not None and record["state"] == ALIVE and record["address"]:
                    address = pb.Address.FromString(record["address"])
                    if stale is None or address.worker_id != stale.worker_id:
                        self.address = address
                        self.num_restarts = record.get("num_restarts", 0)
                        self.state = ALIVE
                        self._open_stream(address, ())
                        self._flush()
                        return
                    if time.monotonic() - started > 5 and not self.worker.scheduler_knows(address):
                        # The owner is gone too and nobody will restart the actor.
                        self._die(exc.ActorDiedError(f"The actor {self.actor_id.hex()} died."))
                        return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)
        finally:
            self.connecting = False

    # ---- the stream ------------------------------------------------------------------------
    def _open_stream(self, address, gpu_ids) -> None:
        self.address = address
        stream = open_task_stream(self.worker, address, self._on_results,
                                  lambda error: self._on_broken(stream, error), gpu_ids)
        self.stream = stream

    def _on_results(self, results) -> None:
        for result in results:
            call = self.in_flight.pop(result.task_id, None)
            if call is None:
                continue
            if call.spec.type == common_pb2.ACTOR_CREATION_TASK:
                self._on_created(result)
                continue
            if result.status == common_pb2.TASK_CANCELLED:
                self._fail(call, exc.TaskCancelledError(call.spec.task_id.hex()))
            elif result.status == common_pb2.TASK_ACTOR_DEAD:
                if self.state != DEAD:
                    self._die(exc.ActorDiedError(result.message or "The actor is dead."))
                self._fail(call, self._death_error())
            else:
                self._finish(call, result.returns)

    def _on_broken(self, stream, error) -> None:
        if stream is not self.stream or self.worker.shutting_down:
            return
        if self.state == DEAD:
            self._die(self._death_error())
            return
        stranded = list(self.in_flight.values())
        self.in_flight.clear()
        exit_reason = self.worker.actor_exit_reason(self.actor_id)
        can_restart = (self.owner_info is not None and exit_reason is None and
                       (self.owner_info["max_restarts"] == -1 or
                        self.num_restarts < self.owner_info["max_restarts"]))
        retry = []
        for call in stranded:
            if call.spec.type == common_pb2.ACTOR_CREATION_TASK:
                continue
            will_return = can_restart or (self.owner_info is None and exit_reason is None)
            if will_return and call.retries_left != 0:
                if call.retries_left > 0:
                    call.retries_left -= 1
                retry.append(call)
            else:
                reason = exit_reason or f"its worker process died ({describe(error)})"
                self._fail(call, exc.ActorDiedError(
                    f"The actor {self.actor_id.hex()} died while running {call.spec.name}: {reason}"))
        self.queue.extendleft(reversed(retry))
        if self.owner_info is not None:
            lease = self.lease
            self.lease = None
            if lease is not None:
                self.loop.create_task(_quiet(lease[1].ReturnLease(
                    node_pb2.ReturnLeaseRequest(lease_id=lease[0], kill_worker=True))))
            if can_restart:
                self.num_restarts += 1
                self.state = RESTARTING
                self._flush()
            else:
                self._die(exc.ActorDiedError(
                    f"The actor {self.actor_id.hex()} died: {exit_reason or describe(error)}"))
        else:
            self.state = RESTARTING
            self._flush()

    # ---- endings -----------------------------------------------------------------------
    def _death_error(self) -> BaseException:
        return self.death or exc.ActorDiedError(f"The actor {self.actor_id.hex()} is dead.")

    def _die(self, error: BaseException) -> None:
        first = self.state != DEAD
        self.state = DEAD
        self.death = self.death or error
        if first and self.owner_info is not None:
            self._record(DEAD)
            if self.owner_info["name"]:
                try:
                    self.worker.gcs.release_actor_name(self.owner_info["namespace"],
                                                       self.owner_info["name"], self.actor_id.hex())
                except Exception:
                    pass
        for call in list(self.in_flight.values()):
            if call.spec.type != common_pb2.ACTOR_CREATION_TASK:
                self._fail(call, self._death_error())
        self.in_flight.clear()
        while self.queue:
            self._fail(self.queue.popleft(), self._death_error())

    def _finish(self, call: ActorCall, returns) -> None:
        call.done = True
        self.worker.finish_task(call.spec, returns)
        call.deps = None

    def _fail(self, call: ActorCall, error: BaseException) -> None:
        self._finish(call, [self.worker.error_value(oid, error) for oid in spec_return_ids(call.spec)])

    def cancel(self, task_id: bytes, force: bool) -> bool:
        for call in self.queue:
            if call.spec.task_id == task_id:
                call.cancelled = True
                self.queue.remove(call)
                self._fail(call, exc.TaskCancelledError(task_id.hex()))
                return True
        if task_id in self.in_flight and self.stream is not None:
            self.stream.cancel(task_id)
            return True
        return False

    def kill(self, no_restart: bool) -> None:
        """Kill the actor's process; with no_restart it stays dead."""
        if no_restart:
            self.worker.gcs.redis.hset(_exit_key(), self.actor_id.hex(), "killed by ray.kill()")
        address = getattr(self, "address", None)
        if self.owner_info is not None and self.state in (PENDING, RESTARTING) and address is None:
            if no_restart:
                self._die(exc.ActorDiedError("The actor was killed by ray.kill() before it started."))
            return
        if address is None:
            record = self.worker.gcs.get_actor(self.actor_id.hex())
            if record and record.get("address"):
                address = common_pb2.Address.FromString(record["address"])
        if address is not None:
            self.loop.create_task(self.worker.kill_worker_at(address))
        if no_restart:
            # Calls made after kill() must fail, even before the process is gone.
            self.state = DEAD
            self.death = exc.ActorDiedError(f"The actor {self.actor_id.hex()} was killed by ray.kill().")
            while self.queue:
                self._fail(self.queue.popleft(), self.death)
            if self.owner_info is not None:
                self._record(DEAD)

    def terminate_when_idle(self) -> None:
        """All handles are gone: stop the actor once the calls already sent finish."""
        if self.state == DEAD:
            return
        self.worker.gcs.redis.hset(_exit_key(), self.actor_id.hex(), "all handles went out of scope")
        from raylite.core.actor_runtime import terminate_spec
        # Queued behind the calls already made, so those still run (as in Ray).
        self.submit(ActorCall(terminate_spec(self.worker, self.actor_id), [], 0))


def _exit_key() -> str:
    from raylite.gcs import keys
    return keys.ACTOR_EXITS


