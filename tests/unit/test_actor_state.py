"""ActorCallState without sockets, processes or an event loop: feed events, check the
instructions. Each test replays one situation of core/actor_submitter.py."""
from __future__ import annotations

import pytest

from raylite import exceptions as exc
from raylite.core import actor_state as st
from raylite.core.actor_state import ALIVE, DEAD, RESTARTING, ActorCall, ActorCallState
from raylite.protocol import common_pb2

ACTOR = b"A" * 16


def call(n: int, *, deps: int = 0, retries: int = 0) -> ActorCall:
    spec = common_pb2.TaskSpec(task_id=bytes([n]) * 16, name=f"A.m{n}", type=common_pb2.ACTOR_TASK)
    return ActorCall(spec, [object()] * deps, retries)


def address(worker: str) -> common_pb2.Address:
    return common_pb2.Address(worker_id=worker)


def ok(c: ActorCall, status=common_pb2.TASK_OK, message="") -> common_pb2.TaskResult:
    return common_pb2.TaskResult(task_id=c.spec.task_id, status=status, message=message)


def created(app_error=False) -> common_pb2.TaskResult:
    return common_pb2.TaskResult(task_id=ACTOR, app_error=app_error)


def of(kind, instructions) -> list:
    return [i for i in instructions if isinstance(i, kind)]


def sent(instructions) -> list[bytes]:
    return [spec.task_id for send in of(st.Send, instructions) for spec in send.specs]


def failed(instructions) -> dict[bytes, BaseException]:
    return {f.call.spec.task_id: f.error for f in of(st.Fail, instructions)}


def alive_owner(max_restarts=0) -> ActorCallState:
    """An owner whose actor was placed on worker w1 and constructed."""
    sm = ActorCallState(ACTOR, is_owner=True, max_restarts=max_restarts)
    assert of(st.PlaceActor, sm.handle(st.Start()))
    sm.handle(st.Placed(address("w1"), (), "lease-1"))
    sm.handle(st.ResultsArrived([created()]))
    assert sm.state == ALIVE
    return sm


def die(sm: ActorCallState, exit_reason=None) -> list:
    return sm.handle(st.StreamBroken(sm.stream, "UNAVAILABLE: socket closed", exit_reason=exit_reason))


def test_calls_are_sent_in_order_and_stop_at_unresolved_args():
    sm = alive_owner()
    first, waiting, after = call(1), call(2, deps=1), call(3)
    assert sent(sm.handle(st.CallSubmitted(first))) == [first.task_id]
    assert sent(sm.handle(st.CallSubmitted(waiting))) == []
    # A ready call behind an unresolved one waits: order is the contract.
    assert sent(sm.handle(st.CallSubmitted(after))) == []
    out = sm.handle(st.ArgsResolved(waiting))
    assert sent(out) == [waiting.task_id, after.task_id]
    assert len(of(st.Send, out)) == 1          # one batch


def test_an_error_argument_is_forwarded_without_sending():
    sm = alive_owner()
    c = call(1, deps=1)
    sm.handle(st.CallSubmitted(c))
    out = sm.handle(st.ArgsResolved(c, bad_dep="error-value"))
    assert sent(out) == []
    assert [(i.call, i.bad_dep) for i in of(st.ForwardArgError, out)] == [(c, "error-value")]


def test_owner_places_then_opens_stream_sends_constructor_then_calls():
    sm = ActorCallState(ACTOR, is_owner=True)
    c = call(1)
    out = sm.handle(st.Start())
    assert [type(i) for i in out] == [st.PlaceActor] and out[0].first
    assert sm.handle(st.CallSubmitted(c)) == []     # placement already under way
    out = sm.handle(st.Placed(address("w1"), (0,), "lease-1"))
    assert [type(i) for i in out] == [st.OpenStream, st.SendCreation, st.Send]
    assert out[0].address.worker_id == "w1" and out[0].gpu_ids == (0,)
    assert out[1].attempt == 0 and sent(out) == [c.task_id]
    out = sm.handle(st.ResultsArrived([created(), ok(c)]))
    assert [type(i) for i in out] == [st.RecordActor, st.Finish]
    assert out[0].state == ALIVE and sm.state == ALIVE


def test_constructor_error_kills_the_actor_and_its_calls():
    sm = ActorCallState(ACTOR, is_owner=True)
    sm.handle(st.Start())
    c = call(1)
    sm.handle(st.CallSubmitted(c))
    sm.handle(st.Placed(address("w1"), (), "lease-1"))
    boom = ValueError("boom")
    out = sm.handle(st.ResultsArrived([created(app_error=True)], creation_error=boom))
    assert sm.state == DEAD
    assert [i.state for i in of(st.RecordActor, out)] == [DEAD] and of(st.ReleaseName, out)
    error = failed(out)[c.task_id]
    assert isinstance(error, exc.ActorDiedError) and error.cause is boom


@pytest.mark.parametrize("unschedulable, kind", [(True, exc.ActorUnschedulableError),
                                                  (False, exc.ActorDiedError)])
def test_placement_failure_fails_queued_calls(unschedulable, kind):
    sm = ActorCallState(ACTOR, is_owner=True)
    sm.handle(st.Start())
    c = call(1)
    sm.handle(st.CallSubmitted(c))
    out = sm.handle(st.PlacementFailed("no node has GPU", unschedulable=unschedulable))
    while not unschedulable and not failed(out):   # transient: retried until it gives up
        sm.handle(st.PlacementRetry())
        out = sm.handle(st.PlacementFailed("UNAVAILABLE", unschedulable=False))
    assert isinstance(failed(out)[c.task_id], kind)
    assert isinstance(failed(sm.handle(st.CallSubmitted(call(2))))[call(2).task_id], kind)


def test_restarts_count_up_to_max_restarts_then_the_actor_dies():
    sm = alive_owner(max_restarts=2)
    for attempt in (1, 2):
        out = die(sm)
        assert sm.state == RESTARTING and sm.num_restarts == attempt
        assert [type(i) for i in out] == [st.ReturnLease, st.RecordActor, st.PlaceActor]
        assert not out[2].first
        out = sm.handle(st.Placed(address(f"w{attempt + 1}"), (), f"lease-{attempt + 1}"))
        assert of(st.SendCreation, out)[0].attempt == attempt
        sm.handle(st.ResultsArrived([created()]))
    c = call(1)
    sm.handle(st.CallSubmitted(c))
    out = die(sm)
    assert sm.state == DEAD and not of(st.PlaceActor, out)
    assert isinstance(failed(out)[c.task_id], exc.ActorDiedError)
    assert isinstance(failed(sm.handle(st.CallSubmitted(call(2))))[call(2).task_id], exc.ActorDiedError)


def test_infinite_restarts():
    sm = alive_owner(max_restarts=-1)
    for attempt in range(1, 20):
        assert of(st.PlaceActor, die(sm))
        sm.handle(st.Placed(address(f"w{attempt}"), (), attempt))
        sm.handle(st.ResultsArrived([created()]))
    assert sm.num_restarts == 19 and sm.state == ALIVE


def test_in_flight_calls_are_resent_after_restart_while_retries_allow():
    sm = alive_owner(max_restarts=-1)
    once, never, always = call(1, retries=1), call(2, retries=0), call(3, retries=-1)
    queued = call(4, deps=1)
    for c in (once, never, always, queued):
        sm.handle(st.CallSubmitted(c))
    out = die(sm)
    assert list(failed(out)) == [never.task_id]
    assert "A.m2" in str(failed(out)[never.task_id])
    sm.handle(st.ArgsResolved(queued))
    out = sm.handle(st.Placed(address("w2"), (), "lease-2"))
    # Resent first, in their original order, before the call that was still queued.
    assert sent(out) == [once.task_id, always.task_id, queued.task_id]
    out = die(sm)
    # once: its one retry is spent; queued: it was in flight this time, with no retries.
    assert list(failed(out)) == [once.task_id, queued.task_id]
    out = sm.handle(st.Placed(address("w3"), (), "lease-3"))
    assert sent(out) == [always.task_id]


def test_intentional_exit_is_not_restarted_and_says_why():
    sm = alive_owner(max_restarts=5)
    c = call(1, retries=-1)
    sm.handle(st.CallSubmitted(c))
    out = die(sm, exit_reason="sys.exit() was called")
    assert sm.state == DEAD and not of(st.PlaceActor, out)
    assert "sys.exit() was called" in str(failed(out)[c.task_id])
    assert "sys.exit() was called" in str(sm.death_error())


def test_results_from_a_stale_stream_are_ignored():
    sm = alive_owner(max_restarts=1)
    old = sm.stream
    die(sm)
    sm.handle(st.Placed(address("w2"), (), "lease-2"))
    assert sm.handle(st.StreamBroken(old, "late notice")) == []
    assert sm.state != DEAD


def test_kill_no_restart_fails_later_calls_at_once():
    sm = alive_owner(max_restarts=3)
    running, queued = call(1), call(2, deps=1)
    sm.handle(st.CallSubmitted(running))
    sm.handle(st.CallSubmitted(queued))
    out = sm.handle(st.Kill(no_restart=True))
    assert [i.reason for i in of(st.RecordExit, out)] == ["killed by ray.kill()"]
    assert of(st.KillWorker, out)[0].address.worker_id == "w1"
    assert list(failed(out)) == [queued.task_id]
    assert sm.state == DEAD
    later = call(3)
    assert "ray.kill()" in str(failed(sm.handle(st.CallSubmitted(later)))[later.task_id])
    out = die(sm, exit_reason="killed by ray.kill()")
    assert list(failed(out)) == [running.task_id] and not of(st.PlaceActor, out)


def test_kill_allowing_restart_restarts_and_resends():
    sm = alive_owner(max_restarts=1)
    c = call(1, retries=-1)
    sm.handle(st.CallSubmitted(c))
    out = sm.handle(st.Kill(no_restart=False))
    assert [type(i) for i in out] == [st.KillWorker]
    assert of(st.PlaceActor, die(sm))
    assert sent(sm.handle(st.Placed(address("w2"), (), "lease-2"))) == [c.task_id]


def test_kill_before_placement_returns_the_lease_when_it_comes():
    sm = ActorCallState(ACTOR, is_owner=True)
    sm.handle(st.Start())
    out = sm.handle(st.Kill(no_restart=True))
    assert sm.state == DEAD and not of(st.KillWorker, out)
    assert sm.handle(st.Placed(address("w1"), (), "lease-1")) == [st.ReturnLease("lease-1")]


def test_cancel_queued_call_fails_it_here_and_running_call_asks_the_worker():
    sm = alive_owner()
    running, queued = call(1), call(2, deps=1)
    sm.handle(st.CallSubmitted(running))
    sm.handle(st.CallSubmitted(queued))
    assert sm.has_call(queued.task_id) and sm.has_call(running.task_id)
    out = sm.handle(st.Cancel(queued.task_id))
    assert isinstance(failed(out)[queued.task_id], exc.TaskCancelledError)
    assert not sm.has_call(queued.task_id)
    assert sm.handle(st.Cancel(running.task_id)) == [st.CancelOnWorker(running.task_id)]
    # The worker interrupts it (async method) or lets it finish (sync method).
    out = sm.handle(st.ResultsArrived([ok(running, common_pb2.TASK_CANCELLED)]))
    assert isinstance(failed(out)[running.task_id], exc.TaskCancelledError)
    assert sm.handle(st.Cancel(b"?" * 16)) == []


def test_actor_dead_reply_kills_the_actor_once():
    sm = alive_owner(max_restarts=3)
    a, b = call(1), call(2)
    sm.handle(st.CallSubmitted(a))
    sm.handle(st.CallSubmitted(b))
    out = sm.handle(st.ResultsArrived([ok(a, common_pb2.TASK_ACTOR_DEAD, "exit_actor() was called")]))
    assert sm.state == DEAD
    assert [i.state for i in of(st.RecordActor, out)] == [DEAD]
    assert set(failed(out)) == {a.task_id, b.task_id}
    assert "exit_actor" in str(failed(out)[a.task_id])


def test_follower_finds_the_actor_and_follows_it_after_a_restart():
    sm = ActorCallState(ACTOR)
    c = call(1, retries=1)
    out = sm.handle(st.CallSubmitted(c))
    assert out == [st.FollowAddress(None)]
    out = sm.handle(st.AddressKnown(address("w1"), 0))
    assert of(st.OpenStream, out)[0].address.worker_id == "w1" and sent(out) == [c.task_id]
    out = die(sm)
    # Only the owner restarts; the follower looks for an address other than w1's.
    assert out == [st.FollowAddress("w1")] and sm.state == RESTARTING
    out = sm.handle(st.AddressKnown(address("w2"), 1))
    assert sent(out) == [c.task_id] and sm.num_restarts == 1 and sm.state == ALIVE


def test_follower_learns_of_death_from_the_gcs():
    sm = ActorCallState(ACTOR)
    c = call(1)
    sm.handle(st.CallSubmitted(c))
    out = sm.handle(st.ActorGone("The actor is dead: killed"))
    assert "killed" in str(failed(out)[c.task_id])
    assert not of(st.RecordActor, out)            # the owner writes the actor table


def test_dropped_connection_reopens_to_the_same_worker():
    sm = alive_owner(max_restarts=0)
    c = call(1, retries=1)
    sm.handle(st.CallSubmitted(c))
    out = sm.handle(st.StreamBroken(sm.stream, "connection reset", process_died=False))
    assert of(st.OpenStream, out)[0].address.worker_id == "w1"
    assert sent(out) == [c.task_id] and sm.num_restarts == 0


def test_handles_gone_terminates_after_calls_already_made():
    sm = alive_owner()
    c, slow = call(1), call(2, deps=1)
    sm.handle(st.CallSubmitted(c))
    sm.handle(st.CallSubmitted(slow))
    terminate = call(9)
    out = sm.handle(st.HandlesGone(terminate))
    assert of(st.RecordExit, out)[0].reason == "all handles went out of scope"
    assert sent(out) == []                          # behind the call still waiting
    assert sent(sm.handle(st.ArgsResolved(slow))) == [slow.task_id, terminate.task_id]


def test_handles_gone_after_death_does_nothing():
    sm = alive_owner()
    sm.handle(st.Kill(no_restart=True))
    assert sm.handle(st.HandlesGone(call(9))) == []


def test_transient_placement_failure_is_retried_with_backoff_then_gives_up():
    from raylite.core import actor_state as st2
    sm = st2.ActorCallState(b"a" * 16, is_owner=True, max_restarts=1)
    out = sm.handle(st2.Start())
    assert any(isinstance(i, st2.PlaceActor) for i in out)
    delays = []
    for _ in range(100):
        out = sm.handle(st2.PlacementFailed("UNAVAILABLE: node died"))
        later = [i for i in out if isinstance(i, st2.RetryPlacementLater)]
        if not later:
            break
        delays.append(later[0].delay)
        assert any(isinstance(i, st2.PlaceActor) for i in sm.handle(st2.PlacementRetry()))
    assert delays[:3] == [0.05, 0.1, 0.2] and max(delays) == st2.PLACEMENT_RETRY_MAX_S
    assert sm.state == st2.DEAD and isinstance(sm.death, exc.ActorDiedError)
    assert "could not be placed" in str(sm.death)


def test_placement_succeeding_after_a_transient_failure_resets_the_backoff():
    from raylite.core import actor_state as st2
    sm = st2.ActorCallState(b"a" * 16, is_owner=True)
    sm.handle(st2.Start())
    sm.handle(st2.PlacementFailed("UNAVAILABLE"))
    sm.handle(st2.PlacementRetry())
    sm.handle(st2.Placed("address", (), "lease"))
    assert sm.placement_delay == 0.0 and sm.placement_failed_for == 0.0


def test_handles_gone_before_placement_withdraws_it_and_never_creates():
    sm = st.ActorCallState(b"a" * 16, is_owner=True)
    assert of(st.PlaceActor, sm.handle(st.Start()))
    out = sm.handle(st.HandlesGone(call(9)))
    assert of(st.CancelPlacement, out)
    assert of(st.RecordActor, out)[0].state == st.DEAD
    assert sent(out) == []
    # A grant that raced the withdrawal is handed back: no constructor is sent.
    late = sm.handle(st.Placed(address("w1"), (), "lease"))
    assert [type(i) for i in late] == [st.ReturnLease]


def test_handles_gone_before_placement_with_calls_still_creates():
    sm = st.ActorCallState(b"a" * 16, is_owner=True)
    sm.handle(st.Start())
    sm.handle(st.CallSubmitted(call(1)))
    out = sm.handle(st.HandlesGone(call(9)))
    assert not of(st.CancelPlacement, out)
    assert of(st.SendCreation, sm.handle(st.Placed(address("w1"), (), "lease")))
