"""The node's heartbeat, and the cluster's failure monitor when this node holds it.

A thread of its own, not a task on the scheduler's event loop: a busy loop (a burst
of leases) or a slow Redis must not delay beats (peers would think us dead), and a
beat must never stall a lease. Each round it beats, keeps the node table that
placement reads fresh enough, and -- while this node holds the monitor lease -- marks
dead the nodes whose beats stopped (raylite.gcs.monitor).

Reading the whole table every round from every node costs the GCS N x N entries per
round (N^2 growth): ``TableSchedule`` decides when a node reads it instead. The beat's
own round trip returns the table's version (bumped on every join, death or revival),
so membership changes are seen within a round; beat times and free resources, which
move all the time, are re-read only every ``view_period(N)`` (0.2 s for a few nodes,
1 s at 20, at most 2 s), well inside the liveness rule's staleness bound. The monitor
reads every round: it judges beats.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from raylite.gcs.liveness import HEARTBEAT_INTERVAL_S, NODE_TIMEOUT_S, STALE_FACTOR
from raylite.gcs.monitor import MonitorState

log = logging.getLogger("raylite.scheduler")

# The monitor lease outlives a few missed rounds, so a busy holder keeps it.
MONITOR_LEASE_S = max(1.0, 5 * HEARTBEAT_INTERVAL_S)
# A node that does not hold the lease tries to take it this often (a new monitor
# takes over at most this long after the old lease expired).
MONITOR_TRY_S = MONITOR_LEASE_S / 2
VIEW_S_PER_NODE = 0.05         # table re-read period grows with the cluster ...
MAX_VIEW_S = min(2.0, STALE_FACTOR * NODE_TIMEOUT_S / 3)   # ... but stays well inside liveness


def view_period(node_count: int, interval_s: float = HEARTBEAT_INTERVAL_S) -> float:
    """How long a node may keep its copy of the node table when nothing joined or died."""
    return max(interval_s, min(MAX_VIEW_S, VIEW_S_PER_NODE * node_count))


@dataclass
class TableSchedule:
    """When to read the node table and when to try the monitor lease (pure: times
    come in as arguments, on the heartbeat thread's monotonic clock)."""

    interval_s: float = HEARTBEAT_INTERVAL_S
    version: int = -1              # table version of the copy we hold (-1: none)
    next_read: float = 0.0         # the copy's beats and free resources expire then
    next_monitor_try: float = 0.0

    def should_read(self, version: int, now: float, leading: bool) -> bool:
        return leading or version != self.version or now >= self.next_read

    def was_read(self, version: int, now: float, node_count: int) -> None:
        self.version = version
        self.next_read = now + view_period(node_count, self.interval_s)

    def should_try_monitor(self, now: float, leading: bool) -> bool:
        return leading or now >= self.next_monitor_try

    def tried_monitor(self, now: float, won: bool) -> None:
        self.next_monitor_try = now if won else now + max(self.interval_s, MONITOR_TRY_S)

    def forget(self) -> None:
        """The GCS failed or restarted: read everything on the next round."""
        self.version = -1
        self.next_read = 0.0
        self.next_monitor_try = 0.0


def gcs_reconnect_timeout_s() -> float:
    """How long a node waits for an unreachable GCS before it shuts down: Ray's
    ``gcs_rpc_server_reconnect_timeout_s`` (60 s); RAYLITE_GCS_RECONNECT_TIMEOUT_S sets it."""
    try:
        return float(os.environ.get("RAYLITE_GCS_RECONNECT_TIMEOUT_S", "60"))
    except ValueError:
        log.warning("RAYLITE_GCS_RECONNECT_TIMEOUT_S is not a number; using 60 s")
        return 60.0


class Heartbeat:
    """Beats for ``node_id`` until ``stop()``; ``nodes`` is the last node table read."""

    def __init__(self, gcs, node_id: str, available, interval_s: float = HEARTBEAT_INTERVAL_S,
                 timeout_s: float = NODE_TIMEOUT_S, on_jobs_finished=None,
                 on_gcs_lost=None, gcs_lost_after_s: float | None = None):
        self.gcs = gcs
        # () -> None, called once when the GCS has not answered for gcs_lost_after_s:
        # the node leaves (as Ray's raylet does) rather than live on as an orphan.
        self._on_gcs_lost = on_gcs_lost
        self.gcs_lost_after_s = (gcs_reconnect_timeout_s() if gcs_lost_after_s is None
                                 else gcs_lost_after_s)
        # (job id hexes) -> None, called from this thread when drivers went away
        # (GcsClient.finish_job bumps the table version, so they are seen within a read).
        self._on_jobs_finished = on_jobs_finished
        self._jobs_since = time.time() - 60.0   # jobs that ended before we came are not ours
        self._jobs_seen: set[str] = set()
        self.node_id = node_id
        self._available = available          # () -> dict of free resources
        self.interval_s = interval_s
        self.nodes: dict = {}
        self.monitor = MonitorState(timeout_s)
        self.schedule = TableSchedule(interval_s)
        self._sent: dict | None = None       # free resources the last beat wrote
        self.leading = False
        self.extra: Callable[[], None] | None = None   # called each beat (store summary)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="raylite-heartbeat")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        failing_since = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.round()
                if failing_since is not None:
                    log.warning("heartbeat: the GCS is back")
                failing_since = None
            except Exception as err:  # the GCS may be restarting: keep beating
                if failing_since is None:
                    log.warning("heartbeat failed: %s", err)
                    failing_since = started
                self._lose_lead()
                self.schedule.forget()
                if (self._on_gcs_lost is not None
                        and started - failing_since >= self.gcs_lost_after_s):
                    log.error("the GCS has not answered for %.0f s (%s): this node leaves",
                              started - failing_since, err)
                    self._on_gcs_lost()
                    return
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def round(self) -> None:
        """One beat: announce ourselves, read the table when due (see TableSchedule),
        judge the others if we lead."""
        gcs = self.gcs
        schedule = self.schedule
        version = gcs.heartbeat(self.node_id, self._snapshot(), retry=False)
        if self.extra is not None:
            self.extra()
        now = time.monotonic()
        if schedule.should_read(version, now, self.leading):
            nodes = gcs.nodes(retry=False)
            schedule.was_read(version, now, len(nodes))
            me = nodes.get(self.node_id)
            if me is not None and not me.alive and not self._stop.is_set():
                # Declared dead while we were stalled (not gone): say we are back.
                log.warning("this node was marked dead (%s) but is running: reviving it",
                            me.death_reason)
                gcs.revive_node(self.node_id, retry=False)
                me.alive = True
            self.nodes = nodes
            if self._on_jobs_finished is not None:
                self._look_for_finished_jobs()
        else:
            nodes = self.nodes
        if not schedule.should_try_monitor(now, self.leading):
            return
        won = gcs.lead_monitor(self.node_id, MONITOR_LEASE_S)
        schedule.tried_monitor(now, won)
        if won:
            if not self.leading:
                self.leading = True
                self.monitor.reset()   # (a first look only records beats: never a verdict)
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

    def _look_for_finished_jobs(self) -> None:
        finished = self.gcs.finished_jobs(self._jobs_since, retry=False)
        new = [job for job in finished if job not in self._jobs_seen]
        if finished:
            # Keep a margin for clocks of other hosts; the seen-set stops repeats.
            self._jobs_since = max(finished.values()) - 60.0
            self._jobs_seen = {j for j, t in finished.items() if t >= self._jobs_since}
        if new:
            self._on_jobs_finished(new)

    def _lose_lead(self) -> None:
        if self.leading:
            self.leading = False
            self.monitor.reset()

    def _snapshot(self) -> dict | None:
        """Free resources to write with this beat; None when unchanged since the last
        beat that carried them (an idle node writes one key per beat, not two)."""
        try:
            now = dict(self._available())
        except RuntimeError:   # resized by the event loop mid-copy: beat without it
            return None
        if now == self._sent and self.schedule.version >= 0:
            return None
        self._sent = now
        return now
