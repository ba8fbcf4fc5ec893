"""When a node reads the node table and tries the monitor lease (issue 14, point 5):
the heartbeat's TableSchedule, and Heartbeat.round over a fake GCS that counts calls
(no Redis, no thread; the clock is patched)."""
from __future__ import annotations

import pytest

from raylite.gcs.records import NodeRecord
from raylite.scheduler import heartbeat as hb
from raylite.scheduler.heartbeat import Heartbeat, TableSchedule, view_period


def test_the_view_period_grows_with_the_cluster_but_stays_bounded():
    assert view_period(1, 0.2) == 0.2 and view_period(3, 0.2) == 0.2
    assert view_period(20, 0.2) == pytest.approx(1.0)
    assert view_period(1000, 0.2) == hb.MAX_VIEW_S
    # Well inside the liveness rule: a cached beat never looks stale by our own delay.
    assert hb.MAX_VIEW_S < hb.STALE_FACTOR * hb.NODE_TIMEOUT_S / 2


def test_a_table_is_read_on_a_version_change_or_when_the_view_expires():
    s = TableSchedule(interval_s=0.2)
    assert s.should_read(0, now=0.0, leading=False)          # nothing read yet
    s.was_read(5, now=0.0, node_count=20)
    assert not s.should_read(5, now=0.5, leading=False)
    assert s.should_read(6, now=0.5, leading=False)           # a node joined or died
    assert s.should_read(5, now=1.0, leading=False)           # beats are 1 s old
    assert s.should_read(5, now=0.1, leading=True)            # the monitor judges every round
    s.forget()
    assert s.should_read(5, now=0.1, leading=False)


def test_the_monitor_lease_is_tried_every_round_only_by_its_holder():
    s = TableSchedule(interval_s=0.2)
    assert s.should_try_monitor(0.0, leading=False)
    s.tried_monitor(0.0, won=False)
    assert not s.should_try_monitor(0.2, leading=False)
    assert s.should_try_monitor(hb.MONITOR_TRY_S, leading=False)
    assert s.should_try_monitor(0.2, leading=True)


class FakeGcs:
    def __init__(self, count: int):
        self.version = 1
        self.table = {f"n{i}": NodeRecord(node_id=f"n{i}", alive=True, last_heartbeat=100.0)
                      for i in range(count)}
        self.calls: dict[str, int] = {}
        self.monitor = ""

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def heartbeat(self, node_id, available, retry=True):
        self._count("heartbeat")
        return self.version

    def nodes(self, retry=True):
        self._count("nodes")
        return {k: v.replace() for k, v in self.table.items()}

    def lead_monitor(self, node_id, ttl_s, retry=False):
        self._count("lead_monitor")
        if not self.monitor:
            self.monitor = node_id
        return self.monitor == node_id

    def revive_node(self, node_id, retry=True):
        self._count("revive")
        self.table[node_id] = self.table[node_id].replace(alive=True)
        self.version += 1

    def mark_node_dead(self, node_id, reason="", retry=True):
        self._count("dead")
        self.table[node_id] = self.table[node_id].replace(alive=False)
        self.version += 1


def run_rounds(beat: Heartbeat, clock: list, rounds: int, step: float = 0.2) -> None:
    for _ in range(rounds):
        beat.round()
        clock[0] += step


@pytest.fixture
def clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(hb.time, "monotonic", lambda: now[0])
    return now


def test_a_follower_of_twenty_reads_the_table_once_a_second(clock):
    gcs = FakeGcs(20)
    gcs.monitor = "n0"                       # someone else leads
    beat = Heartbeat(gcs, "n5", dict, interval_s=0.2)
    run_rounds(beat, clock, 50)              # 10 s
    assert gcs.calls["heartbeat"] == 50
    assert gcs.calls["nodes"] == 10          # was 50: every round
    assert 15 <= gcs.calls["lead_monitor"] <= 20   # the first round 0.5 s after the last try
    assert set(beat.nodes) == set(gcs.table)


def test_a_membership_change_is_seen_at_the_next_round(clock):
    gcs = FakeGcs(20)
    gcs.monitor = "n0"
    beat = Heartbeat(gcs, "n5", dict, interval_s=0.2)
    run_rounds(beat, clock, 2)
    gcs.table["n20"] = NodeRecord(node_id="n20", alive=True)
    gcs.version += 1
    run_rounds(beat, clock, 1)
    assert "n20" in beat.nodes


def test_a_node_marked_dead_while_stalled_revives_itself_at_once(clock):
    gcs = FakeGcs(3)
    gcs.monitor = "n0"
    beat = Heartbeat(gcs, "n1", dict, interval_s=0.2)
    run_rounds(beat, clock, 1)
    gcs.mark_node_dead("n1")
    run_rounds(beat, clock, 1)
    assert gcs.calls["revive"] == 1 and gcs.table["n1"].alive and beat.nodes["n1"].alive


def test_the_monitor_reads_every_round_and_marks_a_silent_node_dead(clock):
    gcs = FakeGcs(3)
    beat = Heartbeat(gcs, "n0", dict, interval_s=0.2, timeout_s=1.0)
    for _ in range(10):   # n1 beats, n2 is silent
        gcs.table["n1"] = gcs.table["n1"].replace(last_heartbeat=clock[0])
        run_rounds(beat, clock, 1)
    assert beat.leading and gcs.calls["nodes"] == 10
    assert not gcs.table["n2"].alive and gcs.table["n1"].alive and gcs.calls["dead"] == 1
