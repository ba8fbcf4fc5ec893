"""Pure pieces of raylite's observability: reference kinds, memory rows and sorting,
store summaries, session retention decisions, sizes."""
from __future__ import annotations

from types import SimpleNamespace

from raylite.cli.memory_cmd import memory_rows, sort_objects
from raylite.cli.tables import fmt_bytes, table
from raylite.observability.object_report import reference_kind
from raylite.observability.sessions import SessionDir, _creator_pid, to_remove
from raylite.observability.store_summary import store_summary


def test_reference_kinds_follow_ray_memory():
    local, pinned, captured = {b"l": 1, b"t": 1, b"u": 2}, {b"p", b"c"}, {b"c"}
    assert reference_kind(b"l", local, pinned, captured) == "LOCAL_REFERENCE"
    uses = {b"t": 1, b"u": 1}   # refs held by unfinished tasks' arguments
    assert reference_kind(b"t", local, pinned, captured, uses) == "USED_BY_PENDING_TASK"
    assert reference_kind(b"u", local, pinned, captured, uses) == "LOCAL_REFERENCE"
    assert reference_kind(b"c", local, pinned, captured) == "CAPTURED_IN_OBJECT"
    assert reference_kind(b"p", local, pinned, captured) == "USED_BY_PENDING_TASK"
    assert reference_kind(b"x", local, pinned, captured) == "PINNED_IN_MEMORY"


def _obj(oid, size, pid, **kw):
    base = {"object_id": oid, "object_size": size, "pid": pid, "type": "DRIVER",
            "is_owner": True, "node_id": "abcdef0123", "reference_type": "LOCAL_REFERENCE",
            "call_site": "disabled", "task_status": "FINISHED", "in_store": False}
    return {**base, **kw}


def test_memory_rows_and_sorting():
    objs = [_obj("a", 10, 3), _obj("b", 5000, 1, in_store=True, spilled=True),
            _obj("c", -1, 2, task_status="PENDING", is_owner=False, type="WORKER")]
    assert [o["object_id"] for o in sort_objects(objs, "object_size")] == ["b", "a", "c"]
    assert [o["object_id"] for o in sort_objects(objs, "pid")] == ["b", "c", "a"]
    rows = {r["object_id"]: r for r in memory_rows(objs)}
    assert rows["b"]["where"] == "spilled" and rows["b"]["size"] == "4.9 KiB"
    assert rows["a"]["where"] == "inline" and rows["a"]["node"] == "abcdef01"
    assert rows["c"]["where"] == "pending" and rows["c"]["owner"] == "worker pid=2 (borrower)"


def test_store_summary_counts_spilled_and_cached_copies():
    objects = {"x": SimpleNamespace(spilled=True, secondary=False),
               "y": SimpleNamespace(spilled=False, secondary=True)}
    store = SimpleNamespace(objects=objects, used=10, capacity=100, spilled_bytes=7,
                            num_spilled=1, num_restored=0)
    summary = store_summary(store)
    assert summary["spilled_ids"] == ["x"] and summary["num_secondary"] == 1
    assert (summary["used"], summary["capacity"], summary["spilled_bytes"]) == (10, 100, 7)


def test_retention_keeps_the_newest_dead_sessions_and_every_live_one():
    sessions = [SessionDir("/r/s-1", 1.0, False), SessionDir("/r/s-2", 5.0, False),
                SessionDir("/r/s-3", 3.0, False), SessionDir("/r/s-4", 0.5, True)]
    assert to_remove(sessions, 2) == ["/r/s-1"]
    assert sorted(to_remove(sessions, 0)) == ["/r/s-1", "/r/s-2", "/r/s-3"]
    assert to_remove(sessions, 10) == []
    assert _creator_pid("s-1234abcdef") == 1234 and _creator_pid("s-weird") == 0


def test_sizes_and_tables():
    assert fmt_bytes(0) == "0 B" and fmt_bytes(1536) == "1.5 KiB" and fmt_bytes(None) == "?"
    assert fmt_bytes(3 << 30) == "3.0 GiB"
    assert table([{"a": 1, "bb": None}, {"a": 22, "bb": {"x": 1}}]).splitlines() == [
        "A   BB", "1   -", '22  {"x": 1}']
    assert table([]) == ""


def test_loop_failures_print_one_line_and_log_the_traceback(tmp_path, capfd):
    import asyncio

    from raylite.observability.errors import install_loop_handler, one_line

    class FakeRpcError(Exception):
        def code(self):
            return SimpleNamespace(name="UNAVAILABLE")

        def details(self):
            return "connect failed\nmore lines of a dump"

    loop = asyncio.new_event_loop()
    try:
        install_loop_handler(loop, str(tmp_path))
        try:
            raise FakeRpcError("<_InactiveRpcError of RPC that terminated with:\n\tstatus>")
        except FakeRpcError as err:
            loop.call_exception_handler({"message": "Task exception was never retrieved",
                                         "exception": err})
    finally:
        loop.close()
    err_lines = capfd.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "UNAVAILABLE: connect failed" in err_lines[0], err_lines
    [log] = list(tmp_path.iterdir())
    assert "Traceback" in log.read_text() and str(log) in err_lines[0]
    assert one_line(ValueError("a\nb")) == "ValueError: a" and one_line(KeyError()) == "KeyError"


def test_tail_lines(tmp_path):
    from raylite.cli.logs_cmd import tail_lines
    path = tmp_path / "worker-x.log"
    path.write_text("".join(f"line {i}\n" for i in range(10)))
    assert tail_lines(str(path), 3) == ["line 7", "line 8", "line 9"]
    assert len(tail_lines(str(path), 0)) == 10


def test_placement_groups_read_the_pg_records_when_the_build_has_them():
    from raylite.util.state import placement_group_rows
    assert placement_group_rows(SimpleNamespace()) == []
    record = SimpleNamespace(name="pg", job_id="01", state="CREATED", detached=False,
                             strategy="PACK", bundles=[{"CPU": 1.0}, {"GPU": 1.0}],
                             bundle_nodes=["n1", ""], attempts=1, created_at=2.0)
    gcs = SimpleNamespace(all_placement_groups=lambda: {"ab": record})
    [row] = placement_group_rows(gcs)
    assert (row["placement_group_id"], row["state"], row["creator_job_id"]) == ("ab", "CREATED", "01")
    assert row["bundles"] == [{"bundle_id": "ab:0", "node_id": "n1", "unit_resources": {"CPU": 1.0}},
                              {"bundle_id": "ab:1", "node_id": None, "unit_resources": {"GPU": 1.0}}]
