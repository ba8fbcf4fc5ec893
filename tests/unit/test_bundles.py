"""Placement group decisions (raylite.scheduler.bundles) and bundles inside
SchedulerState: no sockets, no processes."""
from __future__ import annotations

import pytest

from raylite.scheduler import placement as pl
from raylite.scheduler.bundles import (
    BundleLedger,
    Infeasible,
    NodeView,
    Placed,
    Wait,
    place_bundles,
)
from raylite.scheduler.state import Grant, KillWorker, LeaseAsk, Reject, SchedulerState


def nodes(*cpus, free=None):
    """Nodes n0, n1, ... with these CPU totals (and free amounts)."""
    free = free or cpus
    return [NodeView(f"n{i}", {"CPU": float(c)}, {"CPU": float(f)})
            for i, (c, f) in enumerate(zip(cpus, free))]


ONE = {"CPU": 1.0}


# ---- which node gets which bundle ------------------------------------------------------
def test_strict_pack_puts_every_bundle_on_one_node():
    assert place_bundles([ONE, ONE], "STRICT_PACK", nodes(1, 2, 4)) == Placed(("n1", "n1"))
    assert isinstance(place_bundles([ONE] * 5, "STRICT_PACK", nodes(2, 2, 2)), Infeasible)


def test_pack_prefers_one_node_then_as_few_as_possible():
    assert place_bundles([ONE, ONE], "PACK", nodes(2, 2), prefer="n1") == Placed(("n1", "n1"))
    assert place_bundles([ONE] * 3, "PACK", nodes(2, 2)) == Placed(("n0", "n0", "n1"))


def test_spread_uses_distinct_nodes_first_then_doubles_up():
    assert place_bundles([ONE] * 3, "SPREAD", nodes(4, 4, 4)) == Placed(("n0", "n1", "n2"))
    got = place_bundles([ONE] * 4, "SPREAD", nodes(4, 4, 4))
    assert isinstance(got, Placed) and sorted(got.nodes) == ["n0", "n0", "n1", "n2"]


def test_strict_spread_needs_a_node_per_bundle_and_backtracks():
    assert place_bundles([ONE] * 3, "STRICT_SPREAD", nodes(4, 4, 4)) == \
        Placed(("n0", "n1", "n2"))
    assert isinstance(place_bundles([ONE] * 4, "STRICT_SPREAD", nodes(4, 4, 4)), Infeasible)
    # The big bundle fits only n0; greedy first-fit would take n0 for the small one.
    big = {"CPU": 3.0}
    assert place_bundles([ONE, big], "STRICT_SPREAD", nodes(4, 1)) == Placed(("n1", "n0"))


def test_busy_cluster_waits_and_too_small_cluster_is_infeasible_naming_the_bundles():
    assert isinstance(place_bundles([ONE, ONE], "STRICT_PACK", nodes(2, free=[1])), Wait)
    got = place_bundles([{"CPU": 8.0}], "PACK", nodes(2, 2))
    assert isinstance(got, Infeasible) and "{'CPU': 8.0}" in got.reason
    assert isinstance(place_bundles([{"GPU": 1.0}], "PACK", nodes(2)), Infeasible)


def test_a_joining_node_makes_an_infeasible_group_placeable():
    table = nodes(1)
    assert isinstance(place_bundles([ONE, ONE], "STRICT_SPREAD", table), Infeasible)
    assert place_bundles([ONE, ONE], "STRICT_SPREAD", table + nodes(1, 1)[1:]) == \
        Placed(("n0", "n1"))


def test_unknown_strategy_raises():
    with pytest.raises(ValueError):
        place_bundles([ONE], "NEAR", nodes(1))


# ---- the node-side ledger ------------------------------------------------------------------
def test_prepare_is_all_or_nothing_and_cancel_gives_back():
    ledger, free = BundleLedger(), {"CPU": 2.0}
    assert not ledger.prepare("g", [(0, ONE), (1, ONE), (2, ONE)], free)
    assert free == {"CPU": 2.0} and not ledger.bundles
    assert ledger.prepare("g", [(0, ONE), (1, ONE)], free)
    assert free == {"CPU": 0.0}
    assert ledger.prepare("g", [(0, ONE)], free)          # idempotent: not taken twice
    assert free == {"CPU": 0.0}
    assert ledger.pick("g", -1, ONE) is None              # prepared, not committed
    assert ledger.commit("g")
    assert ledger.pick("g", 1, ONE).index == 1
    assert len(ledger.cancel("g", free)) == 2 and free == {"CPU": 2.0}
    assert not ledger.commit("g")                         # a late commit finds nothing


# ---- bundles in SchedulerState ----------------------------------------------------------------
def state_with_workers(cpus: float, n: int) -> SchedulerState:
    state = SchedulerState({"CPU": cpus})
    for i in range(n):
        state.worker_starting()
        state.worker_registered(f"w{i}", 100 + i)
    return state


def in_group(rid, pg="g", index=-1, cpus=1.0):
    return LeaseAsk(rid, {"CPU": cpus}, owner="driver", bundle=(pg, index))


def test_leases_in_a_bundle_use_its_resources_not_the_nodes():
    state = state_with_workers(2, 3)
    assert state.prepare_bundles("g", [(0, ONE)], owner="driver", commit=True)
    assert state.available["CPU"] == 1.0
    grants = [a for a in state.request(in_group(1)) if isinstance(a, Grant)]
    assert len(grants) == 1 and state.available["CPU"] == 1.0
    # The bundle is full: a second task in it waits although the node has a free CPU.
    assert not [a for a in state.request(in_group(2)) if isinstance(a, Grant)]
    # ... which a task outside the group may use.
    assert [a for a in state.request(LeaseAsk(3, ONE)) if isinstance(a, Grant)]
    # The first task ends: the waiting one runs in the bundle.
    after = state.lease_returned(grants[0].lease_id)
    assert [g.request_id for g in after if isinstance(g, Grant)] == [2]


def test_place_routes_group_requests_to_their_bundles():
    state = state_with_workers(2, 1)
    state.prepare_bundles("g", [(0, ONE)], commit=True)
    assert state.place(ONE, "PG:g:0", False, lambda: []) == pl.RUN_HERE
    assert state.place(ONE, "PG:g:-1:c", False, lambda: []) == pl.RUN_HERE
    assert state.place({"CPU": 2.0}, "PG:g:0", False, lambda: []).error
    assert state.place(ONE, "PG:g:3", False, lambda: []).error.startswith(pl.NOT_HERE_ERROR)
    assert state.place(ONE, "PG:other:-1", False, lambda: []).error.startswith(pl.NOT_HERE_ERROR)


def test_removing_a_group_kills_its_workers_rejects_its_waiters_and_frees_resources():
    state = state_with_workers(2, 2)
    state.prepare_bundles("g", [(0, ONE)], commit=True)
    granted = [a for a in state.request(in_group(1)) if isinstance(a, Grant)]
    state.request(in_group(2))
    actions = state.cancel_bundles("g")
    assert [a.worker_id for a in actions if isinstance(a, KillWorker)] == [granted[0].worker_id]
    rejected = [a for a in actions if isinstance(a, Reject)]
    assert [r.request_id for r in rejected] == [2]
    assert rejected[0].reason.startswith(pl.PG_REMOVED_ERROR)
    assert state.available["CPU"] == 2.0
    # The killed worker's late return changes nothing.
    state.lease_returned(granted[0].lease_id)
    assert state.available["CPU"] == 2.0


def test_blocked_task_in_a_bundle_lends_the_bundles_cpu():
    state = state_with_workers(2, 3)
    state.prepare_bundles("g", [(0, ONE)], commit=True)
    (grant,) = [a for a in state.request(in_group(1)) if isinstance(a, Grant)]
    state.set_blocked(grant.worker_id, True)
    assert [a for a in state.request(in_group(2)) if isinstance(a, Grant)]   # nested task
    assert state.available["CPU"] == 1.0


def test_creator_death_drops_its_groups_but_not_detached_ones():
    state = state_with_workers(4, 0)
    state.prepare_bundles("mine", [(0, ONE)], owner="driver", commit=True)
    state.prepare_bundles("detached", [(0, ONE)], owner="", commit=True)
    state.owner_died("driver")
    assert state.ledger.of("mine") == [] and len(state.ledger.of("detached")) == 1
    assert state.available["CPU"] == 3.0


def test_group_strategy_parsing():
    assert pl.bundle_of("PG:abc:2") == ("abc", 2)
    assert pl.bundle_of("PG:abc:-1:c") == ("abc", -1)
    assert pl.group_of("SPREAD") is None and pl.group_of("") is None


# ---- re-placing what a dead node held -----------------------------------------------------
def test_fixed_bundles_stay_and_only_the_lost_ones_move():
    table = nodes(2, 2, 2, free=[1, 1, 2])     # n0 and n1 each hold one bundle already
    got = place_bundles([ONE] * 3, "STRICT_SPREAD", table, fixed={0: "n0", 1: "n1"})
    assert got == Placed(("n0", "n1", "n2"))
    got = place_bundles([ONE] * 3, "STRICT_SPREAD", nodes(2, 2, free=[1, 1]),
                        fixed={0: "n0", 1: "n1"})
    assert isinstance(got, Infeasible)         # no third node to go to
    got = place_bundles([ONE] * 2, "STRICT_PACK", nodes(2, 4, free=[1, 4]), fixed={0: "n0"})
    assert got == Placed(("n0", "n0"))         # next to the one that stays, not on n1
    got = place_bundles([ONE] * 2, "STRICT_PACK", nodes(2, 4, free=[0, 4]), fixed={0: "n0"})
    assert isinstance(got, Wait)
    got = place_bundles([ONE] * 3, "SPREAD", nodes(4, 4, 4, free=[3, 3, 4]),
                        fixed={0: "n0", 1: "n1"})
    assert got == Placed(("n0", "n1", "n2"))   # counts the bundles that stay
    got = place_bundles([ONE] * 2, "PACK", nodes(4, 4, free=[4, 3]), fixed={0: "n1"})
    assert got == Placed(("n1", "n1"))


def test_cancelling_some_bundles_keeps_the_others_and_their_workers():
    state = state_with_workers(4, 2)
    state.prepare_bundles("g", [(0, ONE), (1, ONE)], commit=True)
    (grant,) = [a for a in state.request(in_group(1, index=0)) if isinstance(a, Grant)]
    actions = state.cancel_bundles("g", indices={1})
    assert not [a for a in actions if isinstance(a, KillWorker)]   # bundle 0's task runs on
    assert [b.index for b in state.ledger.of("g")] == [0]
    assert state.available["CPU"] == 3.0
    # A request for the moved bundle waiting here is told to look elsewhere.
    state.request(in_group(2, index=0))
    (reject,) = [a for a in state.cancel_bundles("g", indices={0}) if isinstance(a, Reject)]
    assert reject.reason.startswith(pl.NOT_HERE_ERROR)


def test_a_gpu_bundle_lends_its_gpu_only_to_requests_inside_it():
    state = SchedulerState({"CPU": 4.0, "GPU": 1.0})
    for i in range(2):
        state.worker_starting()
        state.worker_registered(f"w{i}", 100 + i)
    assert state.prepare_bundles("g", [(0, {"GPU": 1.0})], commit=True)
    outside = LeaseAsk(1, {"CPU": 1.0, "GPU": 1.0})
    assert not [a for a in state.request(outside) if isinstance(a, Grant)]
    inside = LeaseAsk(2, {"CPU": 0.0, "GPU": 1.0}, bundle=("g", 0))
    (grant,) = [a for a in state.request(inside) if isinstance(a, Grant)]
    assert grant.gpu_ids == [0]
