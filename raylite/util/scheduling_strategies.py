"""Scheduling strategies, as in ``ray.util.scheduling_strategies``.

Pass one as ``scheduling_strategy=`` to ``@ray.remote`` or ``.options()``; the string
strategies "DEFAULT" and "SPREAD" are accepted too.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeAffinitySchedulingStrategy:
    """Run on the node with ``node_id`` (hex, as ``get_runtime_context().get_node_id()``).

    With ``soft=True`` the task runs elsewhere when that node is gone or cannot run it;
    otherwise it fails with TaskUnschedulableError (ActorUnschedulableError for actors).
    """
    node_id: str
    soft: bool = False

    def __post_init__(self):
        if not isinstance(self.node_id, str) or not self.node_id:
            raise ValueError("NodeAffinitySchedulingStrategy needs a node id (hex string)")


class PlacementGroupSchedulingStrategy:
    """Run inside a placement group: in bundle ``placement_group_bundle_index`` (-1:
    any bundle that has room), using the resources the bundle reserved. With
    ``placement_group_capture_child_tasks=True`` the tasks and actors it starts (with
    the default strategy) run in the same group too.

    Raises ValueError when the index is out of range for the group.
    """

    def __init__(self, placement_group, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        if placement_group is None or not hasattr(placement_group, "id"):
            raise ValueError("PlacementGroupSchedulingStrategy needs a PlacementGroup "
                             f"(from raylite.util.placement_group), got {placement_group!r}")
        index = placement_group_bundle_index
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"placement_group_bundle_index must be an int, got {index!r}")
        count = placement_group.bundle_count
        if index < -1 or (count and index >= count):
            raise ValueError(f"placement_group_bundle_index {index} is out of range: the "
                             f"placement group has {count} bundle(s)")
        self.placement_group = placement_group
        self.placement_group_bundle_index = index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks

    def __repr__(self) -> str:
        return (f"PlacementGroupSchedulingStrategy({self.placement_group!r}, "
                f"placement_group_bundle_index={self.placement_group_bundle_index}, "
                f"placement_group_capture_child_tasks="
                f"{self.placement_group_capture_child_tasks})")


def encode(strategy) -> str:
    """The strategy as it travels in LeaseRequest.strategy ("" means DEFAULT); a
    placement group is "PG:<group id>:<bundle index>", with ":c" when it captures
    child tasks."""
    if strategy is None or strategy == "DEFAULT":
        return ""
    if strategy == "SPREAD":
        return "SPREAD"
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return f"NODE:{strategy.node_id}:{'soft' if strategy.soft else 'hard'}"
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        capture = ":c" if strategy.placement_group_capture_child_tasks else ""
        return (f"PG:{strategy.placement_group.id.hex()}:"
                f"{strategy.placement_group_bundle_index}{capture}")
    raise ValueError(f"unknown scheduling_strategy {strategy!r}")


__all__ = ["NodeAffinitySchedulingStrategy", "PlacementGroupSchedulingStrategy"]
