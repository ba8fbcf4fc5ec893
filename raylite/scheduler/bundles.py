"""Placement groups, the pure parts: which node gets which bundle, and a node's ledger
of the bundles reserved on it.

``place_bundles`` decides, over the node table passed in as data, where the bundles of
a group go under its strategy (PACK, SPREAD, STRICT_PACK, STRICT_SPREAD, as in Ray).
The creator's shell (raylite.core.placement_groups) then reserves them in two phases:
every chosen node *prepares* its bundles (resources set aside, nothing may use them
yet), then all are *committed*; if any prepare fails every prepared bundle is
cancelled, so a group is reserved whole or not at all.

``BundleLedger`` is the node side (owned by SchedulerState): prepared and committed
bundles, what each still has free for the tasks and actors leased inside it. Nothing
here reads a clock, Redis or a socket. Unit-tested in tests/unit/test_bundles.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from raylite.scheduler import resources as res

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


@dataclass(frozen=True)
class NodeView:
    """One alive node as placement sees it."""
    node_id: str
    total: dict
    available: dict        # free at its last heartbeat (what prepare will check)


@dataclass(frozen=True)
class Placed:
    """Bundle i goes to ``nodes[i]``."""
    nodes: tuple


@dataclass(frozen=True)
class Wait:
    """The cluster could hold the group, but not with what is free now."""
    reason: str


@dataclass(frozen=True)
class Infeasible:
    """No node set of this cluster can ever hold the group (a node may join)."""
    reason: str


def place_bundles(bundles: list[dict], strategy: str, nodes: list[NodeView],
                  prefer: str = "", fixed: dict | None = None) -> Placed | Wait | Infeasible:
    """Where each bundle goes under ``strategy``, using what the nodes have free.

    ``prefer`` (the creator's node) is tried first, then nodes in id order, so the
    same table always gives the same answer. ``fixed`` (bundle index -> node) holds
    bundles that stay where they are (a group re-placing only what a dead node held);
    their resources are already reserved there. Wait when only the totals would fit
    (retry later), Infeasible when not even they do."""
    order = sorted(nodes, key=lambda n: (n.node_id != prefer, n.node_id))
    fixed = fixed or {}
    placed = _assign_around(bundles, strategy, fixed,
                            [(n.node_id, dict(n.available)) for n in order])
    if placed is not None:
        return Placed(tuple(placed))
    # The totals check counts the fixed bundles against their nodes' totals too.
    room = []
    for n in order:
        left = dict(n.total)
        for index, node_id in fixed.items():
            if node_id == n.node_id:
                res.subtract(left, bundles[index])
        room.append((n.node_id, left))
    if _assign_around(bundles, strategy, fixed, room) is not None:
        return Wait(f"placement group {describe(bundles, strategy)} waits for resources "
                    "in use to be freed")
    totals: dict = {}
    for n in nodes:
        res.add(totals, n.total)
    return Infeasible(f"placement group {describe(bundles, strategy)} cannot be placed on "
                      f"the {len(nodes)} alive node(s) of this cluster (total {totals}); it "
                      "stays pending until nodes with these resources join")


def describe(bundles: list[dict], strategy: str) -> str:
    return f"{strategy} with bundles {bundles}"


def _assign_around(bundles: list[dict], strategy: str, fixed: dict,
                   free: list[tuple[str, dict]]) -> list | None:
    """Place the bundles not in ``fixed`` under the strategy's rules, given where the
    fixed ones are; returns the node of every bundle."""
    if not fixed:
        return _assign(bundles, strategy, free)
    todo = [i for i in range(len(bundles)) if i not in fixed]
    used = set(fixed.values())
    if strategy == "STRICT_PACK":
        free = [(n, f) for n, f in free if n in used]        # where the others are
    elif strategy == "STRICT_SPREAD":
        free = [(n, f) for n, f in free if n not in used]    # a node of its own each
    elif strategy == "PACK":
        free = sorted(free, key=lambda nf: nf[0] not in used)  # next to the others first
    rest = [bundles[i] for i in todo]
    if strategy == "SPREAD":   # fewest bundles per node, counting the ones that stay
        got = _greedy(rest, free, spread=True, already=list(fixed.values()))
    else:
        got = _assign(rest, strategy, free) if rest else []
    if got is None:
        return None
    out = [fixed.get(i, "") for i in range(len(bundles))]
    for i, node_id in zip(todo, got):
        out[i] = node_id
    return out


def _assign(bundles: list[dict], strategy: str, free: list[tuple[str, dict]]) -> list | None:
    if strategy == "STRICT_PACK":
        return _strict_pack(bundles, free)
    if strategy == "PACK":
        return _strict_pack(bundles, free) or _greedy(bundles, free, spread=False)
    if strategy == "SPREAD":
        return _greedy(bundles, free, spread=True)
    if strategy == "STRICT_SPREAD":
        return _strict_spread(bundles, free, 0, set())
    raise ValueError(f"unknown placement strategy {strategy!r}")


def _strict_pack(bundles: list[dict], free: list[tuple[str, dict]]) -> list | None:
    need: dict = {}
    for bundle in bundles:
        res.add(need, bundle)
    for node_id, avail in free:
        if res.fits(need, avail):
            return [node_id] * len(bundles)
    return None


def _greedy(bundles: list[dict], free: list[tuple[str, dict]], spread: bool,
            already: list | None = None) -> list | None:
    """PACK: each bundle on the busiest node that fits it (fewest nodes used).
    SPREAD: each bundle on the node holding the fewest bundles of the group so far."""
    left = {node_id: dict(avail) for node_id, avail in free}
    count = {node_id: 0 for node_id, _ in free}
    for node_id in already or ():
        if node_id in count:
            count[node_id] += 1
    rank = {node_id: i for i, (node_id, _) in enumerate(free)}
    out = []
    for bundle in bundles:
        fitting = [n for n in left if res.fits(bundle, left[n])]
        if not fitting:
            return None
        if spread:
            chosen = min(fitting, key=lambda n: (count[n], rank[n]))
        else:
            chosen = min(fitting, key=lambda n: (-count[n], rank[n]))
        res.subtract(left[chosen], bundle)
        count[chosen] += 1
        out.append(chosen)
    return out


def _strict_spread(bundles: list[dict], free: list[tuple[str, dict]], i: int,
                   used: set) -> list | None:
    """Each bundle on a different node (small backtracking: groups are small)."""
    if i == len(bundles):
        return []
    for node_id, avail in free:
        if node_id in used or not res.fits(bundles[i], avail):
            continue
        rest = _strict_spread(bundles, free, i + 1, used | {node_id})
        if rest is not None:
            return [node_id] + rest
    return None


# ---- the node side -----------------------------------------------------------------------
@dataclass
class Bundle:
    """A bundle reserved on this node. ``available`` is what leases inside it may
    still take; the node's own pool no longer counts ``resources``."""
    pg_id: str
    index: int
    resources: dict
    available: dict
    owner: str = ""            # worker id of the creator ("" for detached groups)
    committed: bool = False


@dataclass
class BundleLedger:
    """The bundles reserved on one node, keyed by (group id, bundle index)."""
    bundles: dict = field(default_factory=dict)

    def prepare(self, pg_id: str, wanted: list[tuple[int, dict]], node_free: dict,
                owner: str = "") -> bool:
        """Reserve every (index, resources) of ``wanted`` out of ``node_free`` (changed
        in place), all or none. A bundle already held here is not taken twice."""
        new = [(i, r) for i, r in wanted if (pg_id, i) not in self.bundles]
        need: dict = {}
        for _, r in new:
            res.add(need, r)
        if not res.fits(need, node_free):
            return False
        res.subtract(node_free, need)
        for index, r in new:
            self.bundles[(pg_id, index)] = Bundle(pg_id, index, dict(r), dict(r), owner)
        return True

    def commit(self, pg_id: str) -> bool:
        """Make the group's bundles here usable; False when none is held (cancelled)."""
        found = False
        for bundle in self.of(pg_id):
            bundle.committed = True
            found = True
        return found

    def cancel(self, pg_id: str, node_free: dict, indices=None) -> list[Bundle]:
        """Drop the group's bundles (those of ``indices`` when given), returning their
        resources to ``node_free``."""
        dropped = [b for b in self.of(pg_id) if indices is None or b.index in indices]
        for bundle in dropped:
            del self.bundles[(pg_id, bundle.index)]
            res.add(node_free, bundle.resources)
        return dropped

    def of(self, pg_id: str) -> list[Bundle]:
        return [b for (p, _), b in self.bundles.items() if p == pg_id]

    def owned_by(self, owner: str) -> set[str]:
        return {b.pg_id for b in self.bundles.values() if owner and b.owner == owner}

    def pick(self, pg_id: str, index: int, request: dict) -> Bundle | None:
        """A committed bundle of the group (``index``, or any when -1) that has
        ``request`` free now."""
        for bundle in self.of(pg_id):
            if bundle.committed and (index < 0 or bundle.index == index) \
                    and res.fits(request, bundle.available):
                return bundle
        return None

    def could_ever(self, pg_id: str, index: int, request: dict) -> bool | None:
        """Whether a bundle here could hold ``request`` once idle; None when this node
        holds no bundle of the group (with that index)."""
        mine = [b for b in self.of(pg_id) if index < 0 or b.index == index]
        if not mine:
            return None
        return any(res.fits(request, b.resources) for b in mine)
