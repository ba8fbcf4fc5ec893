"""TaskSubmitState, socket-free: events in, instructions out (no process, no loop)."""
from __future__ import annotations

import random
from collections import namedtuple
from types import SimpleNamespace

import pytest

from raylite import exceptions as exc
from raylite.core import submit_state as ss
from raylite.protocol.common_pb2 import TASK_CANCELLED, TASK_OK, TASK_RETURNED, TASK_SYSTEM_ERROR

KEY = (b"fn", (("CPU", 1.0),), "")
Result = namedtuple("Result", "task_id status duration app_error returns")


def entry(n, *, max_retries=3, retry_exceptions=False, deps=None, key=KEY):
    spec = SimpleNamespace(task_id=b"t%03d" % n, name=f"task{n}", attempt=0)
    return ss.TaskEntry(spec, key, {"CPU": 1.0}, max_retries, retry_exceptions, deps)


def ok(e, duration=0.0001, returns=("value",)):
    return Result(e.task_id, TASK_OK, duration, False, list(returns))


def app_error(e):
    return Result(e.task_id, TASK_OK, 0.0001, True, ["error"])


def returned(e):
    return Result(e.task_id, TASK_RETURNED, 0.0, False, [])


def of(out, kind):
    return [i for i in out if isinstance(i, kind)]


def one(out, kind):
    found = of(out, kind)
    assert len(found) == 1, out
    return found[0]


def sent(out):
    """{lease: [task ids]} of the Send instructions in ``out``."""
    return {s.lease: [e.task_id for e in s.entries] for s in of(out, ss.Send)}


def finished(out):
    return {i.entry.task_id for i in of(out, ss.Finish)}


def errors(out):
    """{task id: error class} of the failures in ``out``; a task whose worker died with
    no retries left maps to FailWorkerDied (the shell asks the node why)."""
    failed = {i.entry.task_id: i.kind for i in of(out, ss.FinishWithError)}
    failed.update({i.entry.task_id: ss.FailWorkerDied for i in of(out, ss.FailWorkerDied)})
    return failed


def grant(state, out, name="grant"):
    """Grant the first lease request in ``out``; returns (lease, instructions)."""
    request = of(out, ss.RequestLease)[0]
    got = state.handle(ss.LeaseGranted(request.request_id, name))
    return one(got, ss.OpenStream).lease, got


def warm_up(state, lease, n=3):
    """Finish what runs on ``lease``, then run ``n`` short tasks there so the state
    learns they are short."""
    for task_id in list(lease.in_flight):
        state.handle(ss.ResultsArrived(lease, [Result(task_id, TASK_OK, 0.0001, False, [])]))
    for i in range(n):
        e = entry(900 + i)
        out = state.handle(ss.Submitted([e]))
        assert sent(out)[lease] == [e.task_id]
        state.handle(ss.ResultsArrived(lease, [ok(e)]))


# ---- pipelining and dealing ----------------------------------------------------------
def test_one_task_per_lease_until_tasks_are_known_short_then_pipelined():
    state = ss.TaskSubmitState()
    tasks = [entry(i) for i in range(20)]
    out = state.handle(ss.Submitted(tasks))
    assert len(of(out, ss.RequestLease)) == ss.MAX_LEASE_REQUESTS
    assert one(out, ss.WarnInfeasible).resources == {"CPU": 1.0}
    lease, out = grant(state, out)
    assert sent(out)[lease] == [tasks[0].task_id]       # depth 1: durations unknown
    out = state.handle(ss.ResultsArrived(lease, [ok(tasks[0])]))
    assert finished(out) == {tasks[0].task_id}
    # 0.1 ms tasks: 2 ms of work per worker is 19 more tasks, all of the queue.
    assert sent(out)[lease] == [t.task_id for t in tasks[1:]]
    assert one(out, ss.StartTimer).kind == ss.STUCK
    assert not of(out, ss.WarnInfeasible)


def test_long_tasks_stay_one_per_lease():
    state = ss.TaskSubmitState()
    tasks = [entry(i) for i in range(3)]
    lease, out = grant(state, state.handle(ss.Submitted(tasks)))
    out = state.handle(ss.ResultsArrived(lease, [ok(tasks[0], duration=1.0)]))
    assert sent(out)[lease] == [tasks[1].task_id]


def test_tasks_are_dealt_round_robin_over_leases():
    state = ss.TaskSubmitState()
    e0, e1 = entry(0), entry(1)
    out = state.handle(ss.Submitted([e0, e1]))
    assert len(of(out, ss.RequestLease)) == 2
    lease_a, _ = grant(state, out, "a")
    state.handle(ss.ResultsArrived(lease_a, [ok(e0)]))
    state.handle(ss.ResultsArrived(lease_a, [ok(e1)]))
    got = state.handle(ss.LeaseGranted(next(iter(state.requests)), "b"))
    lease_b = one(got, ss.OpenStream).lease
    tasks = [entry(i) for i in range(10, 16)]
    out = state.handle(ss.Submitted(tasks))
    by_lease = sent(out)
    assert by_lease[lease_a] == [b"t010", b"t012", b"t014"]
    assert by_lease[lease_b] == [b"t011", b"t013", b"t015"]
    assert len(of(out, ss.Send)) == 2                   # one batch per lease
    assert not of(out, ss.RequestLease)


# ---- work stealing -------------------------------------------------------------------
def test_tasks_queued_behind_a_stuck_one_are_stolen_and_return_in_order():
    state = ss.TaskSubmitState()
    first = state.handle(ss.Submitted([entry(0)]))
    lease_a, _ = grant(state, first, "a")
    warm_up(state, lease_a)
    tasks = [entry(i) for i in range(1, 5)]
    out = state.handle(ss.Submitted(tasks))
    assert sent(out)[lease_a] == [t.task_id for t in tasks]
    timer = one(out, ss.StartTimer)
    assert (timer.kind, timer.target) == (ss.STUCK, lease_a)
    out = state.handle(ss.TimerFired(ss.STUCK, lease_a, timer.token))  # no progress since
    steal = one(out, ss.Steal)
    assert steal.lease is lease_a and steal.task_ids == [b"t002", b"t003", b"t004"]
    assert not of(out, ss.Send)                          # a stuck lease gets nothing new
    # The worker gives them back; a new lease takes them, in their original order.
    out = state.handle(ss.ResultsArrived(lease_a, [returned(t) for t in tasks[1:]]))
    assert not finished(out) and not errors(out)
    assert list(state.keys[KEY].queue) == tasks[1:]
    request = next(iter(state.requests))
    got = state.handle(ss.LeaseGranted(request, "b"))
    lease_b = one(got, ss.OpenStream).lease
    assert sent(got)[lease_b] == [b"t002", b"t003", b"t004"]


def test_a_lease_making_progress_is_not_stolen_from():
    state = ss.TaskSubmitState()
    lease, _ = grant(state, state.handle(ss.Submitted([entry(0)])))
    warm_up(state, lease)
    tasks = [entry(i) for i in range(1, 4)]
    timer = one(state.handle(ss.Submitted(tasks)), ss.StartTimer)
    state.handle(ss.ResultsArrived(lease, [ok(tasks[0])]))
    out = state.handle(ss.TimerFired(ss.STUCK, lease, timer.token))
    assert not of(out, ss.Steal)
    assert one(out, ss.StartTimer).kind == ss.STUCK     # keeps watching


# ---- retries -------------------------------------------------------------------------
def broken_stream_until_exhausted(max_retries, breaks):
    state = ss.TaskSubmitState()
    e = entry(0, max_retries=max_retries)
    out = state.handle(ss.Submitted([e]))
    for attempt in range(breaks):
        lease, got = grant(state, out)
        assert sent(got)[lease] == [e.task_id]
        out = state.handle(ss.StreamBroken(lease, "UNAVAILABLE: worker died"))
        assert one(out, ss.ReturnLease).kill is True
        if errors(out):
            return e, out, attempt
        # the retry asks for a new lease
        assert of(out, ss.RequestLease) or state.requests
        if not of(out, ss.RequestLease):
            out = [ss.RequestLease(next(iter(state.requests)), KEY, {})]
    return e, out, breaks


def test_broken_stream_retries_up_to_max_retries_then_fails_with_the_workers_death():
    e, out, attempt = broken_stream_until_exhausted(max_retries=2, breaks=10)
    assert attempt == 2 and e.spec.attempt == 2
    failure = one(out, ss.FailWorkerDied)
    assert failure.entry is e and failure.lease.grant == "grant" and not failure.lease.alive
    assert "task0" in failure.message and "worker died" in failure.message
    assert e.done   # forgotten: nothing else finishes it while the shell asks the node


@pytest.mark.parametrize("max_retries, retriable", [(3, True), (-1, True), (0, False)])
def test_lease_requests_say_whether_the_waiting_tasks_can_be_retried(max_retries, retriable):
    # The node's memory monitor kills workers of retriable work first.
    out = ss.TaskSubmitState().handle(ss.Submitted([entry(0, max_retries=max_retries)]))
    assert one(out, ss.RequestLease).retriable is retriable


def test_max_retries_minus_one_retries_for_ever():
    e, out, attempt = broken_stream_until_exhausted(max_retries=-1, breaks=25)
    assert attempt == 25 and e.spec.attempt == 25 and not errors(out)


def test_max_retries_zero_fails_at_once():
    e, out, attempt = broken_stream_until_exhausted(max_retries=0, breaks=5)
    assert attempt == 0 and errors(out) == {e.task_id: ss.FailWorkerDied}


@pytest.mark.parametrize("retry_exceptions, retryable, retried", [
    (False, frozenset(), False),
    (True, frozenset(), True),
    ([ValueError], frozenset({b"t000"}), True),     # the shell found a matching type
    ([ValueError], frozenset(), False),
])
def test_retry_exceptions(retry_exceptions, retryable, retried):
    state = ss.TaskSubmitState()
    e = entry(0, max_retries=1, retry_exceptions=retry_exceptions)
    lease, _ = grant(state, state.handle(ss.Submitted([e])))
    out = state.handle(ss.ResultsArrived(lease, [app_error(e)], retryable))
    if retried:
        assert not finished(out) and sent(out)[lease] == [e.task_id] and e.spec.attempt == 1
        out = state.handle(ss.ResultsArrived(lease, [app_error(e)], retryable))
    assert finished(out) == {e.task_id}                  # retries used up: the error stands
    assert one(out, ss.Finish).returns == ["error"]


# ---- cancellation --------------------------------------------------------------------
def test_cancel_queued_task():
    state = ss.TaskSubmitState()
    a, b = entry(0), entry(1)
    out = state.handle(ss.Submitted([a, b]))
    out = state.handle(ss.Cancel(b.task_id, force=False))
    assert errors(out) == {b.task_id: exc.TaskCancelledError}
    lease, got = grant(state, [r for r in of(out, ss.RequestLease)] or
                       [ss.RequestLease(next(iter(state.requests)), KEY, {})])
    assert sent(got)[lease] == [a.task_id]
    state.handle(ss.ResultsArrived(lease, [ok(a)]))
    assert not state.keys[KEY].queue
    assert state.handle(ss.Cancel(b.task_id, force=True)) == []   # already done


def test_cancel_task_with_unresolved_deps_and_its_late_resolution():
    state = ss.TaskSubmitState()
    e = entry(0, deps=["ref"])
    out = state.handle(ss.Submitted([e]))
    assert one(out, ss.ResolveDeps).entry is e and not of(out, ss.RequestLease)
    assert errors(state.handle(ss.Cancel(e.task_id, force=False))) == {
        e.task_id: exc.TaskCancelledError}
    assert state.handle(ss.DepsResolved(e)) == []        # finished once, never queued
    assert not state.keys


def test_cancel_task_queued_on_a_lease_asks_the_worker():
    state = ss.TaskSubmitState()
    lease, _ = grant(state, state.handle(ss.Submitted([entry(0)])))
    warm_up(state, lease)
    a, b = entry(1), entry(2)
    state.handle(ss.Submitted([a, b]))
    for force in (False, True):       # force never kills a worker for a task not running
        out = state.handle(ss.Cancel(b.task_id, force=force))
        assert out == [ss.CancelOnWorker(lease, b.task_id)]
    out = state.handle(ss.ResultsArrived(lease, [ok(a), Result(b.task_id, TASK_CANCELLED, 0, False, [])]))
    assert finished(out) == {a.task_id} and errors(out) == {b.task_id: exc.TaskCancelledError}


def test_cancel_running_task_politely():
    state = ss.TaskSubmitState()
    e = entry(0, max_retries=3, retry_exceptions=True)
    lease, _ = grant(state, state.handle(ss.Submitted([e])))
    assert state.handle(ss.Cancel(e.task_id, force=False)) == [ss.CancelOnWorker(lease, e.task_id)]
    # It raised (KeyboardInterrupt) rather than report cancelled: no retry of a cancelled task.
    out = state.handle(ss.ResultsArrived(lease, [app_error(e)]))
    assert finished(out) == {e.task_id} and not of(out, ss.Send)


def test_force_cancel_running_task_kills_worker_and_raises_task_cancelled():
    state = ss.TaskSubmitState()
    e = entry(0, max_retries=3)
    lease, _ = grant(state, state.handle(ss.Submitted([e])))
    assert state.handle(ss.Cancel(e.task_id, force=True)) == [ss.KillWorker(lease)]
    out = state.handle(ss.StreamBroken(lease, "UNAVAILABLE: killed"))
    assert errors(out) == {e.task_id: exc.TaskCancelledError}   # not retried, not "crashed"
    assert one(out, ss.ReturnLease) == ss.ReturnLease(lease, kill=True)
    assert not of(out, ss.RequestLease)


def test_stolen_task_cancelled_meanwhile_is_not_requeued():
    state = ss.TaskSubmitState()
    lease, _ = grant(state, state.handle(ss.Submitted([entry(0)])))
    warm_up(state, lease)
    a, b = entry(1), entry(2)
    timer = one(state.handle(ss.Submitted([a, b])), ss.StartTimer)
    state.handle(ss.TimerFired(ss.STUCK, lease, timer.token))
    state.handle(ss.Cancel(b.task_id, force=False))
    out = state.handle(ss.ResultsArrived(lease, [returned(b)]))
    assert errors(out) == {b.task_id: exc.TaskCancelledError}
    assert not state.keys[KEY].queue


# ---- the lost-CPU race: every grant ends in exactly one ReturnLease -------------------
def test_grant_after_cancel_is_returned_not_leaked():
    """REGRESSION: a cancel (or a drained queue) used to cancel the lease request; when
    that raced with the grant, the granted CPU was never returned."""
    state = ss.TaskSubmitState()
    e = entry(0)
    out = state.handle(ss.Submitted([e]))
    requests = of(out, ss.RequestLease)
    state.handle(ss.Cancel(e.task_id, force=False))
    # The request is not withdrawn; its grant arrives after the queue emptied.
    got = state.handle(ss.LeaseGranted(requests[0].request_id, "late"))
    lease = one(got, ss.OpenStream).lease
    assert not of(got, ss.Send)
    linger = one(got, ss.StartTimer)
    assert (linger.kind, linger.target, linger.delay) == (ss.LINGER, lease, ss.LINGER_S)
    returns = of(state.handle(ss.TimerFired(ss.LINGER, lease)), ss.ReturnLease)
    assert returns == [ss.ReturnLease(lease, kill=False)]
    # Nothing later returns it a second time.
    assert state.handle(ss.StreamBroken(lease, "closed")) == []
    assert state.handle(ss.TimerFired(ss.LINGER, lease)) == []


def test_grant_after_queue_drained_is_used_or_returned():
    state = ss.TaskSubmitState()
    tasks = [entry(i) for i in range(3)]
    out = state.handle(ss.Submitted(tasks))
    requests = of(out, ss.RequestLease)
    assert len(requests) == 3
    lease, _ = grant(state, requests[:1])
    for t in tasks:
        state.handle(ss.ResultsArrived(lease, [ok(t, duration=1.0)]))
    for r in requests[1:]:                              # both late grants ...
        got = state.handle(ss.LeaseGranted(r.request_id, "late"))
        late = one(got, ss.OpenStream).lease
        assert one(got, ss.StartTimer).kind == ss.LINGER      # ... linger, then go back
        assert of(state.handle(ss.TimerFired(ss.LINGER, late)), ss.ReturnLease)


def test_every_grant_ends_in_exactly_one_return_lease_under_random_events():
    rng = random.Random(9)
    for _ in range(200):
        state = ss.TaskSubmitState()
        pending_requests, timers, leases = [], [], []
        returned_leases: list = []
        serial = [0]

        def perform(out):
            for ins in out:
                if isinstance(ins, ss.RequestLease):
                    pending_requests.append(ins.request_id)
                elif isinstance(ins, ss.OpenStream):
                    leases.append(ins.lease)
                elif isinstance(ins, ss.ReturnLease):
                    returned_leases.append(ins.lease)
                elif isinstance(ins, ss.StartTimer):
                    timers.append(ins)

        for _ in range(60):
            roll = rng.random()
            if roll < 0.2:
                serial[0] += 1
                perform(state.handle(ss.Submitted([entry(serial[0], max_retries=rng.choice([0, 1]))])))
            elif roll < 0.4 and pending_requests:
                rid = pending_requests.pop(rng.randrange(len(pending_requests)))
                perform(state.handle(ss.LeaseGranted(rid, "g")))
            elif roll < 0.45 and pending_requests:
                rid = pending_requests.pop(rng.randrange(len(pending_requests)))
                perform(state.handle(ss.LeaseFailed(rid, "sched", "UNAVAILABLE")))
            elif roll < 0.6 and state.tasks:
                perform(state.handle(ss.Cancel(rng.choice(list(state.tasks)), rng.random() < 0.5)))
            elif roll < 0.75 and leases:
                lease = rng.choice(leases)
                if lease.in_flight:
                    tid = next(iter(lease.in_flight))
                    perform(state.handle(ss.ResultsArrived(lease, [Result(tid, TASK_OK, 0.001, False, [])])))
            elif roll < 0.8 and leases:
                perform(state.handle(ss.StreamBroken(rng.choice(leases), "boom")))
            elif timers:
                t = timers.pop(rng.randrange(len(timers)))
                perform(state.handle(ss.TimerFired(t.kind, t.target, t.token)))
        # Let everything settle: grant what is pending, finish work, fire timers.
        for _ in range(500):
            if pending_requests:
                perform(state.handle(ss.LeaseGranted(pending_requests.pop(), "g")))
            elif any(lease.in_flight for lease in leases if lease.alive):
                lease = next(lease for lease in leases if lease.alive and lease.in_flight)
                tid = next(iter(lease.in_flight))
                perform(state.handle(ss.ResultsArrived(lease, [Result(tid, TASK_OK, 0.001, False, [])])))
            elif timers:
                t = timers.pop(0)
                perform(state.handle(ss.TimerFired(t.kind, t.target, t.token)))
            else:
                break
        assert not state.tasks and not state.requests
        assert sorted(map(id, returned_leases)) == sorted(map(id, leases)), "a lease leaked or doubled"


# ---- lease rejected / failed ----------------------------------------------------------
def test_lease_rejected_fails_queued_tasks_unschedulable():
    state = ss.TaskSubmitState()
    tasks = [entry(i) for i in range(2)]
    out = state.handle(ss.Submitted(tasks))
    got = state.handle(ss.LeaseRejected(of(out, ss.RequestLease)[0].request_id, "no node has GPU"))
    assert errors(got) == {t.task_id: exc.TaskUnschedulableError for t in tasks}
    assert {i.message for i in of(got, ss.FinishWithError)} == {"no node has GPU"}


def test_lease_failure_backs_off_then_recovers():
    state = ss.TaskSubmitState()
    e = entry(0)
    out = state.handle(ss.Submitted([e]))
    rid = one(out, ss.RequestLease).request_id
    delays = []
    for _ in range(4):
        out = state.handle(ss.LeaseFailed(rid, "unix:/sched", "UNAVAILABLE: refused"))
        timer = one(out, ss.StartTimer)
        assert timer.kind == ss.LEASE_RETRY and not errors(out)
        delays.append(timer.delay)
        rid = one(state.handle(ss.TimerFired(timer.kind, timer.target)), ss.RequestLease).request_id
    assert delays == sorted(delays) and delays[0] < delays[-1]   # backing off
    lease, got = grant(state, [ss.RequestLease(rid, KEY, {})])
    assert sent(got)[lease] == [e.task_id]
    assert state.keys[KEY].failed_for == 0.0                      # the count starts over


def test_lease_failures_for_about_ten_seconds_fail_the_queue_with_system_error():
    state = ss.TaskSubmitState()
    tasks = [entry(i) for i in range(3)]
    requests = of(state.handle(ss.Submitted(tasks)), ss.RequestLease)
    # Concurrent requests failing in one outage count once.
    out = state.handle(ss.LeaseFailed(requests[0].request_id, "10.0.0.1:6380", "UNAVAILABLE"))
    for r in requests[1:]:
        assert state.handle(ss.LeaseFailed(r.request_id, "10.0.0.1:6380", "UNAVAILABLE")) == []
    waited, failures = 0.0, 1
    while True:
        timer = of(out, ss.StartTimer)
        if not timer:
            break
        waited += timer[0].delay
        retry = of(state.handle(ss.TimerFired(ss.LEASE_RETRY, timer[0].target)), ss.RequestLease)
        out = state.handle(ss.LeaseFailed(retry[0].request_id, "10.0.0.1:6380", "UNAVAILABLE"))
        for r in retry[1:]:
            assert not of(state.handle(ss.LeaseFailed(r.request_id, "s", "UNAVAILABLE")), ss.FinishWithError)
        failures += 1
        assert failures < 50, "never gave up"
    assert ss.LEASE_RETRY_GIVE_UP_S <= waited < 2 * ss.LEASE_RETRY_GIVE_UP_S
    failed = of(out, ss.FinishWithError)
    assert {f.entry.task_id for f in failed} == {t.task_id for t in tasks}
    assert all(f.kind is exc.RaySystemError for f in failed)
    assert "10.0.0.1:6380" in failed[0].message and "UNAVAILABLE" in failed[0].message
    # A later task starts afresh rather than failing at once.
    out = state.handle(ss.Submitted([entry(99)]))
    assert of(out, ss.RequestLease)


# ---- linger, dependencies, shutdown ---------------------------------------------------
def test_idle_lease_lingers_then_is_returned_unless_reused():
    state = ss.TaskSubmitState()
    a = entry(0)
    lease, _ = grant(state, state.handle(ss.Submitted([a])))
    out = state.handle(ss.ResultsArrived(lease, [ok(a)]))
    assert one(out, ss.StartTimer) == ss.StartTimer(ss.LINGER, lease, ss.LINGER_S)
    b = entry(1)
    out = state.handle(ss.Submitted([b]))               # reused before the timer fires
    assert sent(out)[lease] == [b.task_id]
    assert one(out, ss.CancelTimer) == ss.CancelTimer(ss.LINGER, lease)
    assert not of(out, ss.RequestLease)
    out = state.handle(ss.ResultsArrived(lease, [ok(b)]))
    linger = one(out, ss.StartTimer)
    out = state.handle(ss.TimerFired(linger.kind, lease))
    assert out == [ss.ReturnLease(lease, kill=False)]
    out = state.handle(ss.Submitted([entry(2)]))         # a returned lease is not used
    assert not of(out, ss.Send) and of(out, ss.RequestLease)


def test_failed_dependency_propagates_its_error_value_unrun():
    state = ss.TaskSubmitState()
    e = entry(0, deps=["ref"])
    state.handle(ss.Submitted([e]))
    out = state.handle(ss.DepsResolved(e, failed_value="the error value"))
    assert out == [ss.PropagateError(e, "the error value")]
    assert not state.tasks and not state.keys


def test_resolved_dependency_queues_the_task():
    state = ss.TaskSubmitState()
    e = entry(0, deps=["ref"])
    state.handle(ss.Submitted([e]))
    out = state.handle(ss.DepsResolved(e))
    lease, got = grant(state, out)
    assert sent(got)[lease] == [e.task_id]


def test_shutdown_aborts_streams_and_returns_late_grants():
    state = ss.TaskSubmitState()
    out = state.handle(ss.Submitted([entry(0), entry(1)]))
    requests = of(out, ss.RequestLease)
    lease, _ = grant(state, requests[:1])
    assert state.handle(ss.Shutdown()) == [ss.AbortStream(lease)]
    got = state.handle(ss.LeaseGranted(requests[1].request_id, "late"))
    assert of(got, ss.ReturnLease) and not of(got, ss.OpenStream)
    assert state.handle(ss.StreamBroken(lease, "aborted")) == []


# ---- arguments lost with their node ----------------------------------------------------
LostResult = namedtuple("LostResult", "task_id status duration app_error returns message "
                                      "lost_object_id")


def lost_argument(e, object_id=b"dep-object-id"):
    return LostResult(e.task_id, TASK_SYSTEM_ERROR, 0.0, False, [], "lost with node n1",
                      object_id)


def test_lost_argument_is_recovered_then_the_task_runs_again():
    state = ss.TaskSubmitState()
    e = entry(1, deps=["ref"])
    state.handle(ss.Submitted([e]))
    out = state.handle(ss.DepsResolved(e))
    lease, _ = grant(state, out)
    out = state.handle(ss.ResultsArrived(lease, [lost_argument(e)]))
    recover = one(out, ss.RecoverArgument)
    assert recover.entry is e and recover.object_id == b"dep-object-id"
    assert e.retries_left == 2 and e.spec.attempt == 1 and e.lease is None
    assert not errors(out) and not finished(out)
    # The shell rebuilt the argument and resolved the arguments again.
    out = state.handle(ss.DepsResolved(e))
    assert sent(out)[lease] == [e.task_id]
    assert finished(state.handle(ss.ResultsArrived(lease, [ok(e)]))) == {e.task_id}


def test_lost_argument_with_no_retries_left_fails_with_object_lost():
    state = ss.TaskSubmitState()
    e = entry(1, max_retries=0, deps=["ref"])
    state.handle(ss.Submitted([e]))
    lease, _ = grant(state, state.handle(ss.DepsResolved(e)))
    out = state.handle(ss.ResultsArrived(lease, [lost_argument(e)]))
    assert errors(out) == {e.task_id: exc.ObjectLostError}
    assert not of(out, ss.RecoverArgument)


def test_rebuilt_argument_that_failed_propagates_its_error():
    state = ss.TaskSubmitState()
    e = entry(1, deps=["ref"])
    state.handle(ss.Submitted([e]))
    lease, _ = grant(state, state.handle(ss.DepsResolved(e)))
    state.handle(ss.ResultsArrived(lease, [lost_argument(e)]))
    out = state.handle(ss.DepsResolved(e, failed_value="ObjectLostError value"))
    assert one(out, ss.PropagateError).value == "ObjectLostError value"
