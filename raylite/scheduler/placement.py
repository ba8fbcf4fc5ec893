"""Which node a lease request should run on: scheduling strategies and spill-over.

Pure decisions over the node table passed in as data (a list of Peer), called from
SchedulerState.place. The gRPC shell reads the table from the GCS and decides which
nodes are alive; nothing here reads a clock, Redis or a socket.

A request's strategy travels as a string (raylite.util.scheduling_strategies.encode):
"" (DEFAULT), "SPREAD", "NODE:<node_id>:hard|soft", or "PG:<group id>:<bundle index>"
(index -1: any bundle of the group).
"""
from __future__ import annotations

from dataclasses import dataclass

from raylite.scheduler import resources as res


@dataclass(frozen=True)
class Peer:
    """One alive node as the node table last described it."""
    node_id: str
    address: str            # where its scheduler listens (what a spilled request dials)
    resources: dict         # its total resources
    available: dict         # what was free at its last heartbeat
    is_self: bool = False   # the node deciding


@dataclass(frozen=True)
class Placement:
    """Where a lease request goes: another node (``spill_to``, its address), nowhere
    (``error``, the request is rejected), or — both empty — this node's queue."""
    spill_to: str = ""
    error: str = ""
    alone: bool = False     # SPREAD, and no other node could run it: leases may be reused


RUN_HERE = Placement()

# Rejections of placement group requests the submitter acts on (it sees only the text).
NOT_HERE_ERROR = "PG_BUNDLE_NOT_HERE"    # ask where the group's bundles are now, again
PG_REMOVED_ERROR = "PG_REMOVED"          # the group was removed: fail the request


def bundle_of(strategy: str) -> tuple[str, int]:
    """(group id, bundle index) of a "PG:<id>:<index>" strategy."""
    parts = strategy.split(":")   # a trailing ":c" (capture child tasks) is the owner's
    return parts[1], int(parts[2])


def group_of(strategy: str) -> tuple | None:
    """The (group id, index) a lease request must run in, None outside groups."""
    return bundle_of(strategy) if strategy.startswith("PG:") else None


def is_hard_affinity(strategy: str) -> bool:
    """Whether ``strategy`` pins the request to one node (it never spills on load)."""
    return strategy.startswith("NODE:") and strategy.endswith(":hard")


def spread_candidates(resources: dict, peers: list[Peer]) -> list[Peer]:
    """The nodes SPREAD rotates over: those whose totals fit ``resources``, in a
    stable order (by node id) so every turn of the rotation means the same node."""
    return sorted((p for p in peers if res.fits(resources, p.resources)), key=lambda p: p.node_id)


def by_affinity(node_id: str, soft: bool, resources: dict, here: str,
                peers: list[Peer]) -> Placement | None:
    """NodeAffinitySchedulingStrategy: spill to ``node_id`` when it is alive and could
    ever run ``resources``. None when the request should be placed as DEFAULT would
    (it names this node, or the affinity is soft and cannot be met); a rejection when
    a hard affinity cannot be met."""
    if node_id == here:
        return None
    for peer in peers:
        if peer.node_id == node_id and res.feasible(resources, peer.resources):
            return Placement(spill_to=peer.address)
    if soft:
        return None
    return Placement(error=f"NodeAffinitySchedulingStrategy(node_id={node_id!r}, soft=False): "
                           f"that node is not alive or lacks {resources}")


def spill_target(resources: dict, peers: list[Peer], free_now: bool) -> str:
    """Address of another node that has ``resources`` — in total, or free at its last
    heartbeat when ``free_now`` — in table order; "" when there is none."""
    for peer in peers:
        if peer.is_self:
            continue
        if res.fits(resources, peer.available if free_now else peer.resources):
            return peer.address
    return ""
