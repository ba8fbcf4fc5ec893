"""The node's heartbeat, and the cluster's failure monitor when this node holds it.

A thread of its own, not a task on the scheduler's event loop: a busy loop (a burst
of leases) or a slow Redis must not delay beats (peers would think us dead), and a
beat must never stall a lease. Each round it beats, refreshes the node table that
placement reads, and -- while this node holds the monitor lease -- marks dead the
nodes whose beats stopped (raylite.gcs.monitor).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from raylite.gcs.liveness import HEARTBEAT_INTERVAL_S, NODE_TIMEOUT_S
from raylite.gcs.monitor import MonitorState

log = logging.getLogger("raylite.scheduler")

# The monitor lease outlives a few missed rounds, so a busy holder keeps it.
MONITOR_LEASE_S = max(1.0, 5 * HEARTBEAT_INTERVAL_S)


class Heartbeat:
    """Beats for ``node_id`` until ``stop()``; ``nodes`` is the last node table read."""

    def __init__(self, gcs, node_id: str, available, interval_s: float = HEARTBEAT_INTERVAL_S,
                 timeout_s: float = NODE_TIMEOUT_S):
        self.gcs = gcs
        self.node_id = node_id
        self._available = available          # () -> dict of free resources
        self.interval_s = interval_s
        self.nodes: dict = {}
        self.monitor = MonitorState(timeout_s)
        self.leading = False
        self.extra: Callable[[], None] | None = None   # called each beat (store summary)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="raylite-heartbeat")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.round()
                if failing:
                    log.warning("heartbeat: the GCS is back")
                failing = False
            except Exception as err:  # the GCS may be restarting: keep beating
                if not failing:
                    log.warning("heartbeat failed: %s", err)
                failing = True
                self._lose_lead()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def round(self) -> None:
        """One beat: announce ourselves, read the table, judge the others if we lead."""
        gcs = self.gcs
        gcs.heartbeat(self.node_id, self._snapshot(), retry=False)
        if self.extra is not None:
            self.extra()
        nodes = gcs.nodes(retry=False)
        me = nodes.get(self.node_id)
        if me is not None and not me.alive and not self._stop.is_set():
            # Declared dead while we were stalled (not gone): say we are back.
            log.warning("this node was marked dead (%s) but is running: reviving it",
                        me.death_reason)
            gcs.revive_node(self.node_id, retry=False)
            me.alive = True
        self.nodes = nodes
        if gcs.lead_monitor(self.node_id, MONITOR_LEASE_S):
            if not self.leading:
                self.leading = True
                self.monitor.reset()
            beats = {n: r.last_heartbeat for n, r in nodes.items()}
            alive = {n: r.alive for n, r in nodes.items()}
            for dead in self.monitor.observe(beats, alive, time.monotonic(), self.node_id):
                reason = (f"missed heartbeats for {self.monitor.timeout_s:g} s "
                          f"(seen by node {self.node_id[:8]})")
                log.warning("node %s is dead: %s", dead[:8], reason)
                gcs.mark_node_dead(dead, reason, retry=False)
                nodes[dead].alive = False
        else:
            self._lose_lead()

    def _lose_lead(self) -> None:
        if self.leading:
            self.leading = False
            self.monitor.reset()

    def _snapshot(self) -> dict | None:
        try:
            return dict(self._available())
        except RuntimeError:   # resized by the event loop mid-copy: beat without it
            return None
