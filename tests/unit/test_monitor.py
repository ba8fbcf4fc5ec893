"""The failure monitor's decision (no processes): a node is dead once its heartbeat
value has not changed for the timeout on the monitor's own clock."""
from __future__ import annotations

from raylite.gcs.monitor import MonitorState


def test_a_node_whose_beat_stops_is_dead_after_the_timeout():
    m = MonitorState(timeout_s=1.6)
    alive = {"a": True, "b": True}
    assert m.observe({"a": 10.0, "b": 10.0}, alive, now=0.0) == []
    assert m.observe({"a": 10.2, "b": 10.0}, alive, now=1.0) == []
    assert m.observe({"a": 11.5, "b": 10.0}, alive, now=1.6) == []     # b: exactly 1.6
    assert m.observe({"a": 11.7, "b": 10.0}, alive, now=1.7) == ["b"]
    assert m.observe({"a": 11.9, "b": 10.0}, alive, now=5.0) == []     # reported once


def test_clocks_between_machines_do_not_matter():
    # Only changes of the beat value count, not how far it is from the monitor's clock.
    m = MonitorState(timeout_s=1.0)
    alive = {"far": True}
    for step in range(20):
        assert m.observe({"far": -1e6 + step}, alive, now=step * 0.5) == []


def test_the_monitor_never_judges_itself():
    m = MonitorState(timeout_s=1.0)
    m.observe({"me": 1.0}, {"me": True}, now=0.0, self_id="me")
    assert m.observe({"me": 1.0}, {"me": True}, now=10.0, self_id="me") == []


def test_nodes_already_dead_or_gone_are_not_reported():
    m = MonitorState(timeout_s=1.0)
    m.observe({"a": 1.0, "b": 1.0}, {"a": True, "b": True}, now=0.0)
    assert m.observe({"a": 1.0}, {"a": False}, now=5.0) == []
    assert m.seen == {}


def test_a_new_monitor_gives_every_node_a_full_timeout():
    m = MonitorState(timeout_s=1.0)
    m.observe({"a": 1.0}, {"a": True}, now=0.0)
    m.reset()                                            # leadership changed hands
    assert m.observe({"a": 1.0}, {"a": True}, now=5.0) == []
    assert m.observe({"a": 1.0}, {"a": True}, now=6.5) == ["a"]


def test_a_node_that_comes_back_is_judged_afresh():
    m = MonitorState(timeout_s=1.0)
    m.observe({"a": 1.0}, {"a": True}, now=0.0)
    assert m.observe({"a": 1.0}, {"a": True}, now=2.0) == ["a"]
    assert m.observe({"a": 1.0}, {"a": True}, now=2.5) == []       # revived: fresh slate
    assert m.observe({"a": 3.0}, {"a": True}, now=3.0) == []
