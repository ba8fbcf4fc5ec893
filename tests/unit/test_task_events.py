"""TaskEventBuffer (pure): merging per attempt, bounds and drop counts; the task table
built from entries of owner and worker; filters; the Chrome trace."""
from __future__ import annotations

import json

import msgpack
import pytest

from raylite.core import task_events as te
from raylite.observability import filters, task_table, timeline
from raylite.protocol import common_pb2

WHERE = {"node_id": "n1", "worker_id": "w1", "worker_pid": 42}


def spec(tid: bytes, name="f", type_=0, attempt=0, job=b"\x01", actor=b""):
    return common_pb2.TaskSpec(task_id=tid, name=name, type=type_, attempt=attempt, job_id=job,
                               actor_id=actor, call_site="x.py:1 in main")


def test_events_become_plain_lists_grouped_by_job():
    buf = te.TaskEventBuffer(100)
    s = spec(b"a" * 16)
    buf.add((te._SUBMITTED, s, 1.0, {"CPU": 1.0}))
    buf.running[s.task_id] = (s, 2.0)
    buf.running.pop(s.task_id)   # ended before the flush: one event with its start time
    buf.add((te._ENDED, s, 3.5, te.FINISHED, "", "", "", None, 2.0))
    buf.add((te._ENDED, spec(b"d" * 16, job=b"\x02"), 2.0, te.FAILED, "WORKER_DIED", "x", "",
             te._OWNER, None))
    batches, dropped = buf.take()
    assert dropped == {} and sorted(batches) == [b"\x01", b"\x02"]
    assert batches[b"\x01"] == [
        [0, b"a" * 16, 0, 1.0, "f", 0, b"", "x.py:1 in main", {"CPU": 1.0}],
        [2, b"a" * 16, 0, 3.5, te.FINISHED, "", "", "", False, 2.0, "f", 0, b""]]
    assert batches[b"\x02"][0][8] is True
    assert len(buf) == 0 and buf.take() == ({}, {})


def test_a_task_still_running_is_reported_once():
    buf = te.TaskEventBuffer(100)
    s = spec(b"r" * 16)
    buf.running[s.task_id] = (s, 5.0)
    assert buf.take()[0] == {b"\x01": [[1, b"r" * 16, 0, 5.0, "f", 0, b""]]}
    assert buf.take()[0] == {}
    buf.running.pop(s.task_id)
    buf.add((te._ENDED, s, 6.0, te.FINISHED, "", "", "", None, 5.0))
    assert buf.take()[0][b"\x01"][0][0] == 2
    assert not buf._reported


def test_a_full_buffer_drops_and_counts_per_job():
    buf = te.TaskEventBuffer(2)
    for i in range(5):
        buf.add((te._ENDED, spec(bytes([i]) * 16), 1.0, te.FINISHED, "", "", "", None, None))
    batches, dropped = buf.take()
    assert len(batches[b"\x01"]) == 2 and dropped == {"01": 3}
    assert buf.take()[1] == {}   # counted once


def _entries_from(*rounds):
    """Each round as one process's batch, through msgpack as the GCS stores it;
    ("start", spec, t) marks a task running at the flush."""
    batches = []
    for events in rounds:
        buf = te.TaskEventBuffer(100)
        for event in events:
            if event[0] == "start":
                buf.running[event[1].task_id] = (event[1], event[2])
            else:
                buf.add(event)
        for items in buf.take()[0].values():
            blob = msgpack.packb({"where": WHERE, "events": items}, use_bin_type=True)
            batches.append(msgpack.unpackb(blob, raw=False))
    return batches


def test_owner_side_failure_carries_no_worker_location_and_attempts_are_rows():
    s0, s1 = spec(b"b" * 16), spec(b"b" * 16, attempt=1)
    rows = task_table.merge_entries(_entries_from(
        [("start", s0, 1.0), (te._ENDED, s1, 2.0, te.FAILED, "WORKER_DIED", "crashed", "",
                               te._OWNER, None)]))
    assert sorted((r["attempt_number"], r["state"], r["worker_pid"]) for r in rows) == [
        (0, "RUNNING", 42), (1, "FAILED", None)]


def test_task_table_merges_owner_and_worker_rounds_and_later_states_win():
    s = spec(b"e" * 16, name="g")
    owner = [(te._SUBMITTED, s, 5.0, {"CPU": 2.0})]
    worker1 = [("start", s, 4.0)]      # the worker's clock is behind the owner's
    worker2 = [(te._ENDED, s, 4.5, te.FAILED, "TASK_EXECUTION_EXCEPTION", "ValueError: x",
                "Traceback...", None, 4.0)]
    [row] = task_table.merge_entries(_entries_from(worker2, owner, worker1))
    assert row["state"] == "FAILED" and row["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert row["traceback"] == "Traceback..." and row["required_resources"] == {"CPU": 2.0}
    assert row["worker_pid"] == 42 and row["func_or_class_name"] == "g"
    assert [e["state"] for e in row["events"]] == ["PENDING_NODE_ASSIGNMENT", "RUNNING", "FAILED"]


def test_pending_demand_groups_by_resources_and_actor_deaths_fail_calls():
    rows = task_table.merge_entries(_entries_from(
        [(te._SUBMITTED, spec(bytes([i]) * 16, name="big"), 1.0, {"GPU": 8.0}) for i in range(3)]
        + [(te._SUBMITTED, spec(b"z" * 16, name="m", type_=2, actor=b"q" * 16), 1.0, None)]))
    assert task_table.pending_demand(rows) == [{"resources": {"GPU": 8.0}, "count": 3,
                                                "names": ["big"]}]
    task_table.apply_actor_deaths(rows, {(b"q" * 16).hex()})
    assert [r["state"] for r in rows if r["name"] == "m"] == ["FAILED"]
    summary = task_table.summarize_tasks(rows)
    assert summary["total_tasks"] == 3 and summary["total_actor_tasks"] == 1
    assert summary["summary"]["big"]["state_counts"] == {"PENDING_NODE_ASSIGNMENT": 3}


def test_filters_match_like_ray():
    rows = [{"state": "RUNNING", "pid": 3, "is_alive": True, "actor_id": None},
            {"state": "FINISHED", "pid": 4, "is_alive": False, "actor_id": "ab"}]
    cols = {"state", "pid", "is_alive", "actor_id"}
    assert filters.apply_filters(rows, [("state", "=", "running")], cols) == rows[:1]
    assert filters.apply_filters(rows, [("STATE", "!=", "RUNNING")], cols) == rows[1:]
    assert filters.apply_filters(rows, [("pid", "=", "4")], cols) == rows[1:]
    assert filters.apply_filters(rows, [("is_alive", "=", "true")], cols) == rows[:1]
    assert filters.apply_filters(rows, [("actor_id", "=", "None")], cols) == rows[:1]
    with pytest.raises(ValueError, match="not supported"):
        filters.apply_filters(rows, [("nope", "=", "1")], cols)
    with pytest.raises(ValueError, match="predicate"):
        filters.apply_filters(rows, [("pid", ">", "1")], cols)
    assert filters.parse_filter("state!=FAILED") == ("state", "!=", "FAILED")
    assert filters.parse_filter(" name = f ") == ("name", "=", "f")
    with pytest.raises(ValueError):
        filters.parse_filter("state")
    assert filters.select(rows, ("pid",), (), False, 1) == [{"pid": 3}]
    assert filters.select(rows, ("pid",), (), True, None) == rows


def test_timeline_is_chrome_tracing_per_node_and_worker():
    s1, s2 = spec(b"f" * 16, name="f"), spec(b"g" * 16, name="A.m", type_=2, actor=b"q" * 16)
    rows = task_table.merge_entries(_entries_from(
        [(te._ENDED, s1, 1.25, te.FINISHED, "", "", "", None, 1.0), ("start", s2, 2.0)],
        [(te._SUBMITTED, spec(b"h" * 16), 1.0, None)]))   # never ran: no event
    events = timeline.chrome_events(rows, now_ms=3000.0)
    json.loads(json.dumps(events))
    complete = [e for e in events if e["ph"] == "X"]
    assert [(e["name"], e["ts"], e["dur"]) for e in complete] == [("f", 1e6, 250e3),
                                                                  ("A.m", 2e6, 1e6)]
    assert complete[1]["cat"] == "actor_task" and complete[0]["tid"] == 42
    names = {e["name"] for e in events if e["ph"] == "M"}
    assert names == {"process_name", "thread_name"}


def test_an_owner_reports_only_tasks_still_waiting_at_a_flush():
    rec = te.TaskEventRecorder(None, WHERE)
    te.RECORDER, saved = rec, te.RECORDER
    try:
        quick, slow = spec(b"q" * 16), spec(b"s" * 16)
        te.submitted(quick, {"CPU": 1.0})
        te.submitted(slow, {"GPU": 8.0})
        te.finished(quick.task_id)            # ran at once: nothing to send
        batches, _ = rec.buffer.take()
        [[kind, task_id, *_rest, resources]] = batches[b"\x01"]
        assert (kind, task_id, resources) == (0, slow.task_id, {"GPU": 8.0})
        assert rec.buffer.take()[0] == {}     # once
        te.finished(slow.task_id)
        rec.buffer.take()
        assert not rec.buffer.pending and not rec.buffer._reported_pending
    finally:
        te.RECORDER = saved
