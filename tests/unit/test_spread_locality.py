"""SPREAD dealing and locality-aware leasing in TaskSubmitState (no process, no loop)."""
from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

from raylite.core import submit_state as ss
from raylite.protocol.common_pb2 import TASK_OK, ObjectValue

SPREAD_KEY = (b"fn", (("CPU", 1.0),), "SPREAD", "")   # (function, shape, strategy, env)
DEFAULT_KEY = (b"fn", (("CPU", 1.0),), "", "")
Result = namedtuple("Result", "task_id status duration app_error returns")


def entry(n, key, deps=None):
    spec = SimpleNamespace(task_id=b"t%03d" % n, name=f"task{n}", attempt=0)
    return ss.TaskEntry(spec, key, {"CPU": 1.0}, 3, False, deps)


def of(out, kind):
    return [i for i in out if isinstance(i, kind)]


def ok(e):
    return Result(e.task_id, TASK_OK, 0.0001, False, ["v"])


def test_spread_tasks_each_get_a_lease_of_their_own():
    state = ss.TaskSubmitState()
    tasks = [entry(i, SPREAD_KEY) for i in range(30)]
    out = state.handle(ss.Submitted(tasks))
    requests = of(out, ss.RequestLease)
    assert len(requests) == ss.MAX_LEASE_REQUESTS   # one per task, up to the cap
    leases: list = []
    seen: set = set()
    ran = 0
    # Grants and results interleave; each lease carries exactly one task, is returned
    # when it is done and never reused, so every task's lease is placed on its own.
    while requests or leases:
        if requests:
            request = requests.pop(0)
            got = state.handle(ss.LeaseGranted(request.request_id, "g"))
            requests += of(got, ss.RequestLease)
            for send in of(got, ss.Send):
                assert len(send.entries) == 1 and send.lease not in seen
                seen.add(send.lease)
                leases.append(send.lease)
            if not of(got, ss.Send):   # nothing left to run: returned after lingering
                assert not state.keys[SPREAD_KEY].queue
            continue
        lease = leases.pop(0)
        (e,) = lease.in_flight.values()
        out = state.handle(ss.ResultsArrived(lease, [ok(e)]))
        ran += 1
        assert [r.lease for r in of(out, ss.ReturnLease)] == [lease]
        assert not of(out, ss.Send)
        requests += of(out, ss.RequestLease)
    assert ran == 30 and not state.tasks and len(seen) == 30


def test_default_tasks_still_reuse_and_pipeline_leases():
    state = ss.TaskSubmitState()
    tasks = [entry(i, DEFAULT_KEY) for i in range(20)]
    out = state.handle(ss.Submitted(tasks))
    request = of(out, ss.RequestLease)[0]
    got = state.handle(ss.LeaseGranted(request.request_id, "g"))
    lease = of(got, ss.Send)[0].lease
    out = state.handle(ss.ResultsArrived(lease, [ok(tasks[0])]))
    assert not of(out, ss.ReturnLease)
    assert len(of(out, ss.Send)[0].entries) == 19     # pipelined on the same lease


def value(node, size, in_store=True):
    return ObjectValue(id=b"x" * 20, in_store=in_store, node_id=node, size=size)


def test_preferred_node_is_where_most_large_argument_bytes_live():
    big = ss.LOCALITY_MIN_BYTES
    assert ss.preferred_node([value("B", big)], here="A") == "B"
    assert ss.preferred_node([value("B", big), value("C", 2 * big)], here="A") == "C"
    assert ss.preferred_node([value("B", big // 2), value("B", big // 2)], here="A") == "B"
    assert ss.preferred_node([value("A", 2 * big), value("B", big)], here="A") == ""
    assert ss.preferred_node([value("B", big - 1)], here="A") == ""        # too small
    assert ss.preferred_node([value("", 10, in_store=False)], here="A") == ""   # inline
    assert ss.preferred_node([], here="A") == ""


def test_task_with_remote_data_asks_that_node_and_spread_ignores_it():
    state = ss.TaskSubmitState()
    e = entry(0, DEFAULT_KEY, deps=["ref"])
    state.handle(ss.Submitted([e]))
    out = state.handle(ss.DepsResolved(e, None, "nodeB"))
    (request,) = of(out, ss.RequestLease)
    assert request.prefer_node == "nodeB"
    assert request.key[:4] == DEFAULT_KEY            # strategy and runtime_env unchanged
    s = entry(1, SPREAD_KEY, deps=["ref"])
    state.handle(ss.Submitted([s]))
    out = state.handle(ss.DepsResolved(s, None, "nodeB"))
    (request,) = of(out, ss.RequestLease)
    assert request.prefer_node == ""                  # an explicit strategy wins


def test_spread_lease_with_nowhere_else_to_go_is_reused():
    state = ss.TaskSubmitState()
    tasks = [entry(i, SPREAD_KEY) for i in range(3)]
    out = state.handle(ss.Submitted(tasks))
    request = of(out, ss.RequestLease)[0]
    got = state.handle(ss.LeaseGranted(request.request_id, "g", reusable=True))
    lease = of(got, ss.Send)[0].lease
    out = state.handle(ss.ResultsArrived(lease, [ok(tasks[0])]))
    assert not of(out, ss.ReturnLease)
    assert [e.task_id for e in of(out, ss.Send)[0].entries] == [tasks[1].task_id]


def test_scheduler_spreads_round_robin_and_flags_a_lone_node():
    from raylite.scheduler.placement import Peer
    from raylite.scheduler.state import SchedulerState
    state = SchedulerState({"CPU": 2.0}, node_id="a")
    me = Peer("a", "addr-a", {"CPU": 2.0}, {"CPU": 2.0}, is_self=True)
    others = [Peer(n, f"addr-{n}", {"CPU": 2.0}, {"CPU": 2.0}) for n in ("b", "c")]
    picks = [state.place({"CPU": 1.0}, "SPREAD", False, lambda: [me, *others])
             for _ in range(6)]
    targets = [p.spill_to or "here" for p in picks]
    assert sorted(targets) == sorted(["here", "addr-b", "addr-c"] * 2)
    assert not any(p.alone for p in picks)
    alone = state.place({"CPU": 1.0}, "SPREAD", False, lambda: [me])
    assert alone.alone and not alone.spill_to and not alone.error
