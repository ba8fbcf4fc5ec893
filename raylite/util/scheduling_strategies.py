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


def encode(strategy) -> str:
    """The strategy as it travels in LeaseRequest.strategy ("" means DEFAULT)."""
    if strategy is None or strategy == "DEFAULT":
        return ""
    if strategy == "SPREAD":
        return "SPREAD"
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return f"NODE:{strategy.node_id}:{'soft' if strategy.soft else 'hard'}"
    raise ValueError(f"unknown scheduling_strategy {strategy!r}")


__all__ = ["NodeAffinitySchedulingStrategy"]
