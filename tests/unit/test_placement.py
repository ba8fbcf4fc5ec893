"""Where a lease request runs (SchedulerState.place over raylite.scheduler.placement):
scheduling strategies and spill-over, decided over a node table given as data."""
from __future__ import annotations

from raylite.scheduler.placement import RUN_HERE, Peer, Placement, spill_target, spread_candidates
from raylite.scheduler.state import LeaseAsk, SchedulerState


def peer(node_id: str, cpus: float, free: float | None = None, is_self: bool = False, **extra) -> Peer:
    total = {"CPU": float(cpus), **{k: float(v) for k, v in extra.items()}}
    available = dict(total, CPU=float(cpus if free is None else free))
    return Peer(node_id, f"addr-{node_id}", total, available, is_self)


def here(cpus: float = 2, **extra) -> SchedulerState:
    return SchedulerState({"CPU": float(cpus), **extra}, node_id="me")


class Table:
    """The node table as the shell hands it over; counts how often it was read."""

    def __init__(self, *peers: Peer):
        self.peers = list(peers)
        self.reads = 0

    def __call__(self) -> list[Peer]:
        self.reads += 1
        return self.peers


def cpu(n: float) -> dict:
    return {"CPU": float(n)}


# ---- DEFAULT: bottom-up ------------------------------------------------------------

def test_fits_here_runs_here_without_reading_the_table():
    table = Table(peer("me", 2, is_self=True), peer("b", 8))
    assert here().place(cpu(1), "", False, table) == RUN_HERE
    assert table.reads == 0


def test_infeasible_here_spills_to_a_node_that_has_it_in_total():
    table = Table(peer("me", 2, is_self=True), peer("b", 4, free=0), peer("c", 8, free=8))
    # b is busy right now but has 4 CPUs in total: it can ever run the ask, so it is chosen.
    assert here().place(cpu(4), "", False, table) == Placement(spill_to="addr-b")


def test_infeasible_everywhere_queues_here():
    table = Table(peer("me", 2, is_self=True), peer("b", 2))
    assert here().place({"GPU": 1.0}, "", False, table) == RUN_HERE


def test_busy_here_spills_to_a_node_with_it_free_now():
    state = here(cpus=1)
    state.worker_starting()
    state.worker_registered("w0", 100)
    state.request(LeaseAsk(1, cpu(1)))          # takes this node's only CPU
    table = Table(peer("me", 1, free=0, is_self=True), peer("b", 4, free=0), peer("c", 4, free=2))
    assert state.place(cpu(1), "", False, table) == Placement(spill_to="addr-c")


def test_busy_here_and_everywhere_queues_here():
    state = here(cpus=1)
    state.request(LeaseAsk(1, cpu(1)))          # queued: claims the CPU
    table = Table(peer("me", 1, free=0, is_self=True), peer("b", 4, free=0))
    assert state.place(cpu(1), "", False, table) == RUN_HERE


def test_a_spilled_request_stays_even_when_busy():
    state = here(cpus=1)
    state.request(LeaseAsk(1, cpu(1)))
    table = Table(peer("me", 1, free=0, is_self=True), peer("b", 4, free=4))
    assert state.place(cpu(1), "", True, table) == RUN_HERE
    assert state.place(cpu(1), "SPREAD", True, table) == RUN_HERE
    assert table.reads == 0


def test_never_spills_to_itself():
    assert spill_target(cpu(1), [peer("me", 4, is_self=True)], free_now=True) == ""


# ---- SPREAD ------------------------------------------------------------------------

def test_spread_rotates_over_the_nodes_that_fit_this_one_included():
    state = here(cpus=2)
    table = Table(peer("c", 4), peer("me", 2, is_self=True), peer("a", 4), peer("small", 1))
    placed = [state.place(cpu(2), "SPREAD", False, table) for _ in range(6)]
    # Sorted by node id: a, c, me; "small" never fits 2 CPUs.
    assert [p.spill_to for p in placed] == ["addr-a", "addr-c", "", "addr-a", "addr-c", ""]


def test_spread_with_no_fitting_node_falls_back_to_default():
    table = Table(peer("me", 2, is_self=True), peer("b", 2))
    assert here().place(cpu(8), "SPREAD", False, table) == RUN_HERE


def test_spread_turn_on_this_node_still_spills_when_busy():
    state = here(cpus=1)
    state.request(LeaseAsk(1, cpu(1)))
    table = Table(peer("me", 1, free=0, is_self=True), peer("b", 1, free=1))
    # Turn 1 goes to b; turn 2 to this node, which is busy, so DEFAULT spills it to b.
    assert state.place(cpu(1), "SPREAD", False, table) == Placement(spill_to="addr-b")
    assert state.place(cpu(1), "SPREAD", False, table) == Placement(spill_to="addr-b")
    assert table.reads == 2  # one read per decision, even when DEFAULT follows


def test_spread_candidates_are_stable():
    peers = [peer("b", 1), peer("a", 1), peer("c", 0)]
    assert [p.node_id for p in spread_candidates(cpu(1), peers)] == ["a", "b"]


# ---- NodeAffinitySchedulingStrategy --------------------------------------------------

def test_affinity_to_another_node_spills_there():
    table = Table(peer("me", 8, is_self=True), peer("b", 2))
    assert here(8).place(cpu(1), "NODE:b:hard", False, table) == Placement(spill_to="addr-b")
    assert here(8).place(cpu(1), "NODE:b:soft", False, table) == Placement(spill_to="addr-b")


def test_hard_affinity_to_a_dead_or_too_small_node_is_rejected():
    table = Table(peer("me", 8, is_self=True), peer("b", 2))
    for strategy in ("NODE:gone:hard", "NODE:b:hard"):
        placement = here(8).place(cpu(4), strategy, False, table)
        assert placement.spill_to == ""
        assert "NodeAffinitySchedulingStrategy" in placement.error and "soft=False" in placement.error


def test_soft_affinity_that_cannot_be_met_is_placed_as_default():
    table = Table(peer("me", 2, is_self=True), peer("b", 2), peer("c", 8))
    # b lacks 4 CPUs; this node too; DEFAULT spills to c, which has them.
    assert here().place(cpu(4), "NODE:b:soft", False, table) == Placement(spill_to="addr-c")
    assert here().place(cpu(1), "NODE:gone:soft", False, table) == RUN_HERE


def test_hard_affinity_to_this_node_never_spills_on_load():
    state = here(cpus=1)
    state.request(LeaseAsk(1, cpu(1)))          # busy
    table = Table(peer("me", 1, free=0, is_self=True), peer("b", 4, free=4))
    assert state.place(cpu(1), "NODE:me:hard", False, table) == RUN_HERE
    # Soft affinity to this node is DEFAULT: busy here, so it spills.
    assert state.place(cpu(1), "NODE:me:soft", False, table) == Placement(spill_to="addr-b")


def test_affinity_to_this_node_holds_even_when_the_table_lacks_it():
    assert here().place(cpu(1), "NODE:me:hard", False, Table()) == RUN_HERE
