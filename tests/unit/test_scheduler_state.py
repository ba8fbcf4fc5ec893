"""The node scheduler's decisions (raylite.scheduler.state.SchedulerState), driven by
events alone: no sockets, no processes."""
from __future__ import annotations

import pytest

from raylite.scheduler.state import (
    Grant,
    KillWorker,
    LeaseAsk,
    Reject,
    SchedulerState,
    StartWorker,
    Warn,
)


def ask(rid: int, owner: str = "driver", **resources) -> LeaseAsk:
    return LeaseAsk(rid, {k: float(v) for k, v in resources.items()}, owner=owner)


def grants(actions) -> list[Grant]:
    return [a for a in actions if isinstance(a, Grant)]


def starts(actions) -> int:
    return sum(1 for a in actions if isinstance(a, StartWorker))


def with_workers(total: dict, n: int) -> SchedulerState:
    state = SchedulerState(total)
    for i in range(n):
        state.worker_starting()
        assert grants(state.worker_registered(f"w{i}", 1000 + i)) == []
    return state


def lease_of(state: SchedulerState, actions, rid: int) -> bytes:
    for g in grants(actions):
        if g.request_id == rid:
            return g.lease_id
    raise AssertionError(f"request {rid} was not granted: {actions}")


# ---- granting ------------------------------------------------------------------------

def test_grants_in_arrival_order_and_queues_the_rest():
    state = with_workers({"CPU": 2}, 3)
    actions = []
    for rid in (1, 2, 3):
        actions += state.request(ask(rid, CPU=1))
    assert [g.request_id for g in grants(actions)] == [1, 2]
    assert [a.request_id for a in state.pending] == [3]
    assert state.available["CPU"] == 0
    # A returned lease goes to the oldest waiting ask.
    actions = state.lease_returned(lease_of(state, actions, 1))
    assert [g.request_id for g in grants(actions)] == [3]
    assert not state.pending


def test_each_grant_gets_its_own_worker_and_lease():
    state = with_workers({"CPU": 4}, 4)
    actions = []
    for rid in range(1, 5):
        actions += state.request(ask(rid, CPU=1))
    got = grants(actions)
    assert len({g.worker_id for g in got}) == 4
    assert len({g.lease_id for g in got}) == 4


def test_skips_asks_that_do_not_fit_yet():
    state = with_workers({"CPU": 2, "custom": 1}, 3)
    actions = state.request(ask(1, CPU=1))
    actions += state.request(ask(2, CPU=2))          # does not fit while 1 is held
    actions += state.request(ask(3, CPU=1))          # fits: granted past the big ask
    actions += state.request(ask(4, custom=2))       # never fits on this node
    assert [g.request_id for g in grants(actions)] == [1, 3]
    assert [a.request_id for a in state.pending] == [2, 4]
    actions = state.lease_returned(lease_of(state, actions, 1))
    assert grants(actions) == []                     # ask 2 still needs both CPUs
    assert [a.request_id for a in state.pending] == [2, 4]


def test_releases_restore_available_exactly():
    total = {"CPU": 3, "custom": 2}
    state = with_workers(total, 3)
    actions = state.request(ask(1, CPU=1, custom=1))
    actions += state.request(ask(2, CPU=2, custom=1))
    assert state.available == {"CPU": 0, "custom": 0}
    for rid in (1, 2):
        state.lease_returned(lease_of(state, actions, rid))
    assert state.available == {k: float(v) for k, v in total.items()}


def test_zero_cpu_ask_does_not_consume_cpu():
    state = with_workers({"CPU": 1}, 2)
    actions = state.request(ask(1, CPU=1))
    actions += state.request(LeaseAsk(2, {}))
    assert [g.request_id for g in grants(actions)] == [1, 2]


def test_unknown_lease_return_is_ignored():
    state = with_workers({"CPU": 1}, 1)
    assert state.lease_returned(b"\x00" * 8) == []
    assert state.available == {"CPU": 1}


def test_infeasible_reports_missing_resources():
    state = SchedulerState({"CPU": 2})
    assert state.infeasible({"CPU": 1}) == {}
    assert state.infeasible({"CPU": 4}) == {"CPU": 4}
    assert state.infeasible({"CPU": 1, "GPU": 1, "x": 2}) == {"GPU": 1, "x": 2}


# ---- worker start requests ----------------------------------------------------------------

def test_requests_worker_start_when_no_idle_worker():
    state = SchedulerState({"CPU": 2})
    actions = state.request(ask(1, CPU=1))
    assert starts(actions) == 1 and grants(actions) == []
    # The registered worker takes the waiting ask.
    actions = state.worker_registered("w0", 1000)
    assert [g.request_id for g in grants(actions)] == [1]
    assert grants(actions)[0].worker_id == "w0"


def test_does_not_start_duplicate_workers_for_the_same_ask():
    state = SchedulerState({"CPU": 2})
    assert starts(state.request(ask(1, CPU=1))) == 1
    assert starts(state.schedule()) == 0
    assert starts(state.schedule()) == 0


def test_starts_no_more_workers_than_the_resources_can_run():
    """Five 1-CPU asks on a 2-CPU node: only two can run at once, so only two
    workers are worth starting."""
    state = SchedulerState({"CPU": 2})
    actions = []
    for rid in range(1, 6):
        actions += state.request(ask(rid, CPU=1))
    assert starts(actions) == 2


def test_no_worker_started_for_an_ask_that_does_not_fit():
    state = SchedulerState({"CPU": 1})
    assert starts(state.request(ask(1, CPU=4))) == 0


def test_failed_start_is_retried():
    state = SchedulerState({"CPU": 1})
    assert starts(state.request(ask(1, CPU=1))) == 1
    assert starts(state.worker_start_failed()) == 1


def test_max_workers_caps_starts():
    state = SchedulerState({"CPU": 8}, max_workers=2)
    actions = []
    for rid in range(1, 6):
        actions += state.request(ask(rid, CPU=1))
    assert starts(actions) == 2


# ---- blocked workers lend their CPUs ----------------------------------------------------------

def test_blocked_worker_lends_cpus_so_nested_ask_runs():
    state = with_workers({"CPU": 1}, 2)
    actions = state.request(ask(1, CPU=1))
    outer = grants(actions)[0]
    assert grants(state.request(ask(2, owner=outer.worker_id, CPU=1))) == []
    actions = state.set_blocked(outer.worker_id, True)
    inner = grants(actions)
    assert [g.request_id for g in inner] == [2]
    assert inner[0].worker_id != outer.worker_id
    # Unblocking takes the CPU back, even if that overcommits for a while.
    state.set_blocked(outer.worker_id, False)
    assert state.available["CPU"] == -1
    state.lease_returned(inner[0].lease_id)
    state.lease_returned(outer.lease_id)
    assert state.available == {"CPU": 1}


def test_lease_returned_while_blocked_does_not_double_count():
    state = with_workers({"CPU": 2}, 1)
    outer = grants(state.request(ask(1, CPU=2)))[0]
    state.set_blocked(outer.worker_id, True)
    assert state.available["CPU"] == 2
    state.lease_returned(outer.lease_id)
    assert state.available == {"CPU": 2}


def test_blocking_twice_lends_once():
    state = with_workers({"CPU": 1}, 1)
    outer = grants(state.request(ask(1, CPU=1)))[0]
    state.set_blocked(outer.worker_id, True)
    state.set_blocked(outer.worker_id, True)
    assert state.available["CPU"] == 1
    state.set_blocked(outer.worker_id, False)
    state.set_blocked(outer.worker_id, False)
    assert state.available["CPU"] == 0


def test_blocking_an_unleased_worker_changes_nothing():
    state = with_workers({"CPU": 1}, 1)
    assert state.set_blocked("w0", True) == []
    assert state.set_blocked("nope", True) == []
    assert state.available == {"CPU": 1}


# ---- deaths -----------------------------------------------------------------------------------

def test_owner_death_reclaims_its_leases_and_pending_asks():
    state = with_workers({"CPU": 2}, 3)
    actions = state.request(ask(1, owner="A", CPU=1))
    actions += state.request(ask(2, owner="B", CPU=1))
    actions += state.request(ask(3, owner="A", CPU=1))   # waits: no CPU left
    a_worker = grants(actions)[0].worker_id
    actions = state.owner_died("A")
    assert KillWorker(a_worker) in actions
    assert any(isinstance(x, Reject) and x.request_id == 3 for x in actions)
    assert a_worker not in state.workers
    assert not [p for p in state.pending if p.owner == "A"]
    assert state.available["CPU"] == 1            # B still holds one
    # The freed CPU is usable by others.
    assert [g.request_id for g in grants(state.request(ask(4, owner="B", CPU=1)))] == [4]


def test_job_finished_stops_its_owned_work_but_not_detached_or_other_jobs():
    state = with_workers({"CPU": 3}, 3)
    job, other = b"J1", b"J2"
    in_job = LeaseAsk(1, {"CPU": 1.0}, owner="worker-of-J1", job_id=job)
    detached = LeaseAsk(2, {"CPU": 1.0}, owner="", job_id=job)
    elsewhere = LeaseAsk(3, {"CPU": 1.0}, owner="driver-J2", job_id=other)
    queued = LeaseAsk(4, {"CPU": 1.0}, owner="driver-J1", job_id=job)
    by_rid = {}
    for a in (in_job, detached, elsewhere):
        by_rid.update({g.request_id: g for g in grants(state.request(a))})
    assert grants(state.request(queued)) == []
    actions = state.job_finished(job)
    assert KillWorker(by_rid[1].worker_id) in actions
    assert by_rid[2].worker_id in state.workers and by_rid[3].worker_id in state.workers
    assert [x.request_id for x in actions if isinstance(x, Reject)] == [4]
    assert state.available["CPU"] == 1
    assert state.job_finished(job) == []          # nothing left of it: a repeat is harmless


def test_worker_death_releases_its_lease():
    state = with_workers({"CPU": 1}, 2)
    first = grants(state.request(ask(1, CPU=1)))[0]
    assert grants(state.request(ask(2, CPU=1))) == []
    actions = state.worker_died(first.worker_id)
    assert [g.request_id for g in grants(actions)] == [2]
    assert first.worker_id not in state.workers


def test_kill_on_return_removes_worker():
    state = with_workers({"CPU": 1}, 1)
    g = grants(state.request(ask(1, CPU=1)))[0]
    actions = state.lease_returned(g.lease_id, kill=True)
    assert KillWorker(g.worker_id) in actions
    assert g.worker_id not in state.workers
    assert state.available == {"CPU": 1}


def test_idle_workers_beyond_the_kept_pool_are_reaped():
    state = SchedulerState({"CPU": 1}, idle_keep=1)
    for i in range(3):
        state.worker_starting()
        state.worker_registered(f"w{i}", 1000 + i, now=0.0)
    assert state.idle_workers_to_reap(now=1.0, idle_timeout=10.0) == []
    reaped = state.idle_workers_to_reap(now=20.0, idle_timeout=10.0)
    assert len(reaped) == 2 and all(isinstance(a, KillWorker) for a in reaped)
    assert len(state.workers) == 1


# ---- GPU slots --------------------------------------------------------------------------------

def test_gpu_slots_are_assigned_distinct_ids():
    state = with_workers({"CPU": 4, "GPU": 2}, 4)
    actions = state.request(ask(1, CPU=1, GPU=1))
    actions += state.request(ask(2, CPU=1, GPU=1))
    actions += state.request(ask(3, CPU=1, GPU=1))
    got = grants(actions)
    assert sorted(g.gpu_ids for g in got) == [[0], [1]]
    assert [a.request_id for a in state.pending] == [3]
    first = got[0]
    actions = state.lease_returned(first.lease_id)
    assert [g.gpu_ids for g in grants(actions)] == [first.gpu_ids]


def test_multi_gpu_ask_gets_all_ids():
    state = with_workers({"CPU": 2, "GPU": 2}, 2)
    g = grants(state.request(ask(1, CPU=1, GPU=2)))[0]
    assert sorted(g.gpu_ids) == [0, 1]
    assert grants(state.request(ask(2, CPU=1, GPU=1))) == []


def test_fractional_gpus_share_one_device():
    state = with_workers({"CPU": 4, "GPU": 1}, 4)
    actions = state.request(ask(1, CPU=1, GPU=0.5))
    actions += state.request(ask(2, CPU=1, GPU=0.5))
    actions += state.request(ask(3, CPU=1, GPU=0.5))
    got = grants(actions)
    assert [g.gpu_ids for g in got] == [[0], [0]]
    assert [a.request_id for a in state.pending] == [3]
    actions = state.lease_returned(got[0].lease_id)
    assert [g.gpu_ids for g in grants(actions)] == [[0]]


def test_gpu_ask_without_gpus_waits():
    state = with_workers({"CPU": 2}, 1)
    assert grants(state.request(ask(1, CPU=1, GPU=1))) == []
    assert state.infeasible({"GPU": 1}) == {"GPU": 1}


@pytest.mark.parametrize("amount", [0.25, 1, 2])
def test_gpu_release_restores_slots(amount):
    state = with_workers({"CPU": 1, "GPU": 2}, 1)
    g = grants(state.request(ask(1, GPU=amount)))[0]
    state.lease_returned(g.lease_id)
    assert state.gpus.free == [1.0, 1.0]
    assert state.available["GPU"] == 2


def test_a_lease_goes_to_a_warm_worker_of_the_same_job_first():
    # w0 ran job A last; w1/w2 registered later (fresh). Job A's next lease gets w0 back
    # (its code is loaded: no GCS read, no import), another job the most recently idle.
    state = with_workers({"CPU": 3.0}, 3)
    first = LeaseAsk(1, {"CPU": 1.0}, owner="driver", job_id=b"A")
    [g] = grants(state.request(first))
    state.lease_returned(g.lease_id, now=5.0)
    [again] = grants(state.request(LeaseAsk(2, {"CPU": 1.0}, owner="driver", job_id=b"A")))
    assert again.worker_id == g.worker_id
    state.lease_returned(again.lease_id, now=6.0)
    [other] = grants(state.request(LeaseAsk(3, {"CPU": 1.0}, owner="driver", job_id=b"B")))
    assert other.worker_id == g.worker_id     # the most recently idle of all
    [second] = grants(state.request(LeaseAsk(4, {"CPU": 1.0}, owner="driver", job_id=b"A")))
    assert second.worker_id != g.worker_id


def test_queued_request_moves_to_a_node_with_free_resources_after_a_while():
    from raylite.scheduler.placement import Peer
    from raylite.scheduler.state import Spill
    state = with_workers({"CPU": 1.0}, 1)
    [g] = grants(state.request(LeaseAsk(1, {"CPU": 1.0}, owner="d")))        # an actor, for good
    stuck = LeaseAsk(2, {"CPU": 1.0}, owner="d", movable=True, queued_at=10.0)
    pinned = LeaseAsk(3, {"CPU": 1.0}, owner="d", movable=False, queued_at=10.0)
    assert grants(state.request(stuck)) == [] and grants(state.request(pinned)) == []
    peers = [Peer("me", "here:1", {"CPU": 1.0}, {"CPU": 0.0}, is_self=True),
             Peer("b", "b:1", {"CPU": 2.0}, {"CPU": 1.0})]
    assert state.respill(10.2, lambda: peers) == []          # not waited long enough
    moved = state.respill(11.0, lambda: peers)
    assert moved == [Spill(2, "b:1")]                          # the pinned one stays
    assert [a.request_id for a in state.pending] == [3]
    assert peers[1].available == {"CPU": 1.0}                  # the table is not touched
    assert state.respill(12.0, lambda: peers) == []


def test_nothing_moves_when_no_peer_has_room():
    from raylite.scheduler.placement import Peer
    state = with_workers({"CPU": 1.0}, 1)
    grants(state.request(LeaseAsk(1, {"CPU": 1.0}, owner="d")))
    state.request(LeaseAsk(2, {"CPU": 1.0}, owner="d", movable=True))
    busy = [Peer("b", "b:1", {"CPU": 1.0}, {"CPU": 0.0})]
    assert state.respill(5.0, lambda: busy) == []
    assert [a.request_id for a in state.pending] == [2]


def test_actor_workers_do_not_count_against_the_worker_cap():
    state = SchedulerState({"CPU": 1}, max_workers=2)
    actions = []
    for rid in range(1, 6):
        actions += state.request(LeaseAsk(rid, {}, {}, for_actor=True, owner="driver"))
    assert starts(actions) == 2          # at most max_workers start at once
    granted = []
    for i in range(2):
        granted += grants(state.worker_registered(f"w{i}", 100 + i))
    assert len(granted) == 2
    assert state.starting == 2           # the next two started: actors do not count
    for i in range(2, 5):
        state.worker_registered(f"w{i}", 100 + i)
    assert not state.pending
    assert not any(isinstance(a, Warn) for a in actions)


def test_task_worker_cap_warns_once_with_the_waiting_demand():
    state = with_workers({"CPU": 8}, 2)
    state.max_workers = 2
    actions = []
    for rid in range(1, 6):
        actions += state.request(ask(rid, CPU=0))
    warnings = [a for a in actions if isinstance(a, Warn)]
    assert len(warnings) == 1
    assert "1 lease request(s) on this node wait" in warnings[0].message   # the first one waiting
    assert "RAYLITE_MAX_WORKERS=2" in warnings[0].message
