"""Deciding that a node is dead: one monitor for the cluster, elected through Redis.

Every node scheduler beats from a thread of its own (raylite.scheduler.heartbeat)
and, in the same thread, tries to hold the monitor lease (a Redis key with a short
expiry). The holder watches every node's heartbeat *change* on its own monotonic
clock -- so clocks that differ between machines do not matter -- and marks a node
dead once its beat has not moved for NODE_TIMEOUT_S; the death is published on the
node channel. A new holder starts with a clean slate and gives every node a full
timeout before judging it, so a monitor handover never kills a live node.

``MonitorState`` is the pure decision (unit-tested in tests/unit/test_monitor.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MonitorState:
    """Which nodes have stopped beating, as seen by the monitor."""

    timeout_s: float
    # node id -> (the last heartbeat value seen, monotonic time it was first seen)
    seen: dict[str, tuple[float, float]] = field(default_factory=dict)

    def observe(self, beats: dict[str, float], alive: dict[str, bool], now: float,
                self_id: str = "") -> list[str]:
        """Nodes to mark dead now, given each node's last heartbeat value (``beats``),
        whether its record still says alive, and the monitor's monotonic ``now``.

        The monitor's own node is never judged: it is running this very check.
        """
        dead = []
        for node_id, beat in beats.items():
            if not alive.get(node_id, False):
                self.seen.pop(node_id, None)
                continue
            previous = self.seen.get(node_id)
            if previous is None or previous[0] != beat:
                self.seen[node_id] = (beat, now)
                continue
            if node_id != self_id and now - previous[1] > self.timeout_s:
                dead.append(node_id)
                del self.seen[node_id]
        for gone in [n for n in self.seen if n not in beats]:
            del self.seen[gone]
        return dead

    def reset(self) -> None:
        """Forget what was seen (leadership was lost or just gained)."""
        self.seen.clear()
