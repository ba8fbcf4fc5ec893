"""Calling actors: one ActorCaller per (process, actor). Runs on the core worker's loop.

The decisions (ordering, placement, restarts, retries, death, cancel) live in the pure
state machine core/actor_state.py; this module is its asyncio shell: it feeds it
events (calls, resolved arguments, lease replies, results, broken streams) and
performs the instructions it returns (lease a worker, open a stream, send calls,
write the GCS actor table, finish or fail calls).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import grpc

from raylite.core import actor_state as st
from raylite.core.actor_state import ALIVE, DEAD, PENDING, RESTARTING, ActorCall  # noqa: F401
from raylite.core.local_channel import open_task_stream
from raylite.core.object_manager import _quiet, error_value, relabeled
from raylite.core.submitter import FAILURE_CAUSE_TIMEOUT_S
from raylite.core.task_stream import TaskStream, describe
from raylite.exceptions import AuthenticationError
from raylite.gcs.records import ActorRecord
from raylite.ids import spec_return_ids
from raylite.protocol import common_pb2, node_pb2

__all__ = ["ActorCall", "ActorCaller", "ALIVE", "DEAD", "PENDING", "RESTARTING"]


class ActorCaller:
    """Performs what ActorCallState decides for one actor in this process."""

    def __init__(self, manager, actor_id: bytes, *, owner_info: dict[str, Any] | None = None):
        self.manager = manager
        self.worker = manager.worker
        self.loop = self.worker.loop
        self.actor_id = actor_id
        self.owner_info = owner_info          # set in the creating process
        self.sm = st.ActorCallState(actor_id, is_owner=owner_info is not None,
                                    max_restarts=owner_info["max_restarts"] if owner_info else 0)
        self.stream: TaskStream | None = None
        self._perform_one: dict[type, Callable[[Any], object]] = {
            st.Send: self._send, st.Finish: self._finish, st.Fail: self._fail,
            st.ForwardArgError: self._forward_arg_error, st.OpenStream: self._open_stream,
            st.SendCreation: self._send_creation, st.PlaceActor: self._place,
            st.RetryPlacementLater: lambda i: self.loop.call_later(
                i.delay, self._feed, st.PlacementRetry()),
            st.FollowAddress: self._follow, st.CancelOnWorker: self._cancel_on_worker,
            st.KillWorker: self._kill_worker, st.ReturnLease: self._return_lease,
            st.RecordActor: lambda i: self._record(i.state),
            st.RecordExit: lambda i: self.worker.gcs.record_actor_exit(self.actor_id.hex(), i.reason),
            st.ReleaseName: self._release_name,
            st.CancelPlacement: self._cancel_placement,
        }
        self._placing: asyncio.Task | None = None   # the lease request in flight

    @property
    def state(self) -> str:
        return self.sm.state

    def _feed(self, event) -> None:
        perform = self._perform_one
        for instruction in self.sm.handle(event):
            perform[type(instruction)](instruction)

    # ---- entry points (loop thread) ---------------------------------------------------
    def start(self) -> None:
        """Place the actor (owner) or find it (others)."""
        self._feed(st.Start())

    def submit(self, call: ActorCall) -> None:
        self._feed(st.CallSubmitted(call))
        if call.unresolved and self.sm.state != DEAD:
            self.worker.objects.resolve_deps(call.spec, call.deps, lambda: self._deps_resolved(call))

    def _deps_resolved(self, call: ActorCall) -> None:
        bad = next((v for v in call.spec.deps if v.is_error), None)
        self._feed(st.ArgsResolved(call, bad))

    def cancel(self, task_id: bytes, force: bool) -> None:
        self._feed(st.Cancel(task_id))

    def kill(self, no_restart: bool) -> None:
        """Kill the actor's process; with no_restart it stays dead."""
        self._feed(st.Kill(no_restart))

    def terminate_when_idle(self) -> None:
        """All handles are gone: stop the actor once the calls already sent finish."""
        if self.sm.state == DEAD or self.worker.shutting_down:
            return   # shutting down: the job's end stops its actors (no GCS writes now)
        from raylite.core.actor_runtime import terminate_spec
        self._feed(st.HandlesGone(ActorCall(terminate_spec(self.worker, self.actor_id), [], 0)))

    # ---- the stream ------------------------------------------------------------------------
    def _open_stream(self, instruction: st.OpenStream) -> None:
        epoch = instruction.stream
        self.stream = open_task_stream(self.worker, instruction.address, self._on_results,
                                       lambda error: self._on_broken(epoch, error),
                                       instruction.gpu_ids,
                                       self.owner_info["running"] if self.owner_info else None)

    def _send(self, instruction: st.Send) -> None:
        stream = self.stream
        assert stream is not None   # Send follows OpenStream
        send = stream.send
        for spec in instruction.specs:
            send(spec)
        generators = self.worker.generators
        if generators.records:   # their acks (backpressure) follow them to this worker
            for spec in instruction.specs:
                if spec.generator:
                    generators.sent(spec.task_id, self.stream)

    def _send_creation(self, instruction: st.SendCreation) -> None:
        info, stream = self.owner_info, self.stream
        assert info is not None and stream is not None   # the owner, after OpenStream
        creation = common_pb2.TaskSpec()
        creation.CopyFrom(info["creation_spec"])
        creation.task_id = self.actor_id
        creation.attempt = instruction.attempt
        stream.send(creation)

    def _cancel_on_worker(self, instruction: st.CancelOnWorker) -> None:
        if self.stream is not None:
            self.stream.cancel(instruction.task_id)

    def _on_results(self, results) -> None:
        error = None
        if self.sm.creating:
            for result in results:
                if result.task_id == self.actor_id and result.app_error:
                    error = self.worker.io.from_value(result.returns[0])
        self._feed(st.ResultsArrived(results, error))

    def _on_broken(self, epoch: int, error) -> None:
        if self.worker.shutting_down or epoch != self.sm.stream:
            return
        if self.owner_info is not None and self.sm.lease is not None:
            # The owner holds the lease: ask its node whether the memory monitor killed it.
            self.loop.create_task(self._broken_with_cause(epoch, describe(error), self.sm.lease))
            return
        self._broken_because(epoch, describe(error))

    async def _broken_with_cause(self, epoch: int, detail: str, lease) -> None:
        lease_id, stub = lease
        try:
            cause = await stub.GetWorkerFailureCause(
                node_pb2.WorkerFailureRequest(lease_id=lease_id), timeout=FAILURE_CAUSE_TIMEOUT_S)
            if cause.oom:
                detail = f"OutOfMemoryError: {cause.message}"
        except Exception:   # the node is gone too: its death is the news
            pass
        if not self.worker.shutting_down and epoch == self.sm.stream:
            self._broken_because(epoch, detail)

    def _broken_because(self, epoch: int, detail: str) -> None:
        # Whether the actor ended on purpose (exit_actor, sys.exit, ray.kill) is in the GCS.
        self._feed(st.StreamBroken(epoch, detail,
                                   exit_reason=self.worker.actor_exit_reason(self.actor_id)))

    # ---- owner: placement, the actor table -------------------------------------------------
    def _place(self, instruction: st.PlaceActor) -> None:
        if instruction.first:
            info = self.owner_info
            assert info is not None   # only the owner places the actor
            self.worker.warn_if_infeasible(info["placement"])
        self._placing = self.loop.create_task(self._lease())

    def _cancel_placement(self, _instruction: st.CancelPlacement) -> None:
        # Cancelling the call withdraws the request from the node scheduler's queue.
        if self._placing is not None:
            self._placing.cancel()

    async def _lease(self) -> None:
        info = self.owner_info
        assert info is not None   # only the owner places the actor
        worker = self.worker
        request = node_pb2.LeaseRequest(
            resources=info["placement"], running_resources=info["running"], for_actor=True,
            job_id=worker.job_id, actor_id=self.actor_id, strategy=info.get("strategy", ""),
            owner_worker_id="" if info["detached"] else worker.worker_id,
            runtime_env=info.get("runtime_env", ""),
            retriable=info["max_restarts"] != 0)
        try:
            reply, stub = await worker.lease(request)
        except asyncio.CancelledError:
            if self.sm.state != DEAD:
                self._feed(st.PlacementFailed("the placement request was cancelled"))
            return
        except grpc.RpcError as err:
            self._feed(st.PlacementFailed(describe(err)))
            return
        if reply.rejected:
            self._feed(st.PlacementFailed(reply.error, unschedulable=True,
                                          runtime_env_failed=reply.runtime_env_failed))
            return
        self._feed(st.Placed(reply.worker, tuple(reply.gpu_ids), (reply.lease_id, stub)))

    def _return_lease(self, instruction: st.ReturnLease) -> None:
        # The handle is ours, made in _lease: (lease id, the scheduler stub that granted it).
        lease_id, stub = cast("tuple[bytes, Any]", instruction.lease)
        self.loop.create_task(_quiet(stub.ReturnLease(
            node_pb2.ReturnLeaseRequest(lease_id=lease_id, kill_worker=True))))

    def _record(self, state: str) -> None:
        info = self.owner_info
        assert info is not None   # only the owner writes the actor table
        sm = self.sm
        address: Any = sm.address   # an Address message, or None while there is none
        alive = state == ALIVE and address is not None
        record = ActorRecord(
            actor_id=self.actor_id.hex(), state=state, class_name=info["class_name"],
            name=info["name"], namespace=info["namespace"], meta=info["meta"],
            num_restarts=sm.num_restarts, max_restarts=info["max_restarts"],
            detached=info["detached"], job_id=self.worker.job_id.hex(),
            owner=self.worker.address_bytes,
            address=address.SerializeToString() if alive else b"",
            node_id=address.node_id if alive else "", pid=address.pid if alive else 0,
            death_cause=str(sm.death) if sm.death else "", time=time.time())
        # Buffered: a synchronous write here held the event loop for a Redis round trip
        # per record, the bottleneck when creating many actors. Never raises.
        self.worker.gcs.put_actor_buffered(record)

    def _release_name(self, _instruction) -> None:
        info = self.owner_info
        assert info is not None   # only the owner holds the name
        if info["name"]:
            try:
                self.worker.gcs.release_actor_name(info["namespace"], info["name"], self.actor_id.hex())
            except Exception:
                pass

    # ---- other callers: follow the actor table -------------------------------------------
    def _follow(self, instruction: st.FollowAddress) -> None:
        self.loop.create_task(self._poll_address(instruction.stale_worker_id))

    async def _poll_address(self, stale_worker_id: str | None) -> None:
        delay = 0.005
        started = time.monotonic()
        actor_hex = self.actor_id.hex()
        while True:
            try:
                record = self.worker.gcs.get_actor(actor_hex)
            except AuthenticationError as err:   # a forged record: never dial it
                self._feed(st.ActorGone(str(err)))
                return
            if record is not None and record.state == DEAD:
                self._feed(st.ActorGone(
                    f"The actor {actor_hex} is dead: {record.death_cause or 'it exited'}"))
                return
            if record is not None and record.state == ALIVE and record.address:
                address = common_pb2.Address.FromString(record.address)
                if address.worker_id != stale_worker_id:
                    self._feed(st.AddressKnown(address, record.num_restarts))
                    return
                if time.monotonic() - started > 5 and not self.worker.scheduler_knows(address):
                    # The owner is gone too and nobody will restart the actor.
                    self._feed(st.ActorGone(f"The actor {actor_hex} died."))
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _kill_worker(self, instruction: st.KillWorker) -> None:
        address = instruction.address
        if address is None:
            record = self.worker.gcs.get_actor(self.actor_id.hex())
            if record is not None and record.address:
                address = common_pb2.Address.FromString(record.address)
        if address is not None:
            self.loop.create_task(self.worker.kill_worker_at(address))

    # ---- endings -----------------------------------------------------------------------
    def _finish(self, instruction: st.Finish) -> None:
        self._done(instruction.call, instruction.returns)

    def _fail(self, instruction: st.Fail) -> None:
        call = instruction.call
        self._done(call, [error_value(oid, instruction.error) for oid in spec_return_ids(call.spec)])

    def _forward_arg_error(self, instruction: st.ForwardArgError) -> None:
        call = instruction.call
        self._done(call, [relabeled(instruction.bad_dep, oid) for oid in spec_return_ids(call.spec)])

    def _done(self, call, returns) -> None:
        self.worker.objects.finish_task(call.spec, returns)
        call.deps = None
