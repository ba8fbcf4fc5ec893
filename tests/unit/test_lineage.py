"""LineageTable: which specs an owner keeps so lost objects can be rebuilt (no processes)."""
from __future__ import annotations

from raylite.core.lineage import LineageTable, Trimmed, producer


def tid(n: int) -> bytes:
    return bytes([n]) * 16


def oid(task: int, index: int = 1) -> bytes:
    return tid(task) + index.to_bytes(4, "little")


def test_only_tasks_with_stored_results_are_kept():
    table = LineageTable()
    assert table.record(tid(1), [], []) is False
    assert tid(1) not in table
    assert table.record(tid(2), [oid(2)], []) is True
    assert tid(2) in table and producer(oid(2)) == tid(2)


def test_spec_is_trimmed_when_its_last_stored_result_is_freed():
    table = LineageTable()
    table.record(tid(1), [oid(1, 1), oid(1, 2)], [], args_id=b"args")
    assert table.object_freed(oid(1, 1)) == []
    assert table.object_freed(oid(1, 2)) == [Trimmed(tid(1), b"args")]
    assert len(table) == 0
    assert table.object_freed(oid(1, 2)) == []        # freed twice: nothing more


def test_a_kept_downstream_spec_keeps_its_argument_producers():
    # B = f(A): once A's ref is dropped, A's spec is still needed to rebuild B.
    table = LineageTable()
    table.record(tid(1), [oid(1)], [])
    table.record(tid(2), [oid(2)], [oid(1)])
    assert table.object_freed(oid(1)) == []
    assert tid(1) in table
    trimmed = table.object_freed(oid(2))
    assert [t.task_id for t in trimmed] == [tid(2), tid(1)]
    assert len(table) == 0


def test_long_chains_trim_without_recursion():
    table = LineageTable()
    table.record(tid(0), [oid(0)], [])
    for n in range(1, 3000):
        table.record(n.to_bytes(16, "big"), [n.to_bytes(16, "big") + b"\1\0\0\0"],
                     [(n - 1).to_bytes(16, "big") + b"\1\0\0\0" if n > 1 else oid(0)])
    for n in range(1, 2999):
        assert table.object_freed(n.to_bytes(16, "big") + b"\1\0\0\0") == []
    assert table.object_freed(oid(0)) == []
    trimmed = table.object_freed((2999).to_bytes(16, "big") + b"\1\0\0\0")
    assert len(trimmed) == 3000 and len(table) == 0


def test_arguments_not_in_the_table_are_not_tracked():
    table = LineageTable()
    table.record(tid(2), [oid(2)], [oid(9)])            # oid(9): a put, or inline
    assert table.entries[tid(2)].deps == []
    assert [t.task_id for t in table.object_freed(oid(2))] == [tid(2)]


def test_retries_are_spent_per_task_and_minus_one_is_unlimited():
    table = LineageTable()
    table.record(tid(1), [oid(1)], [], max_retries=2)
    table.record(tid(2), [oid(2)], [], max_retries=-1)
    table.record(tid(3), [oid(3)], [], max_retries=0)
    assert [table.take_retry(tid(1)) for _ in range(3)] == [True, True, False]
    assert all(table.take_retry(tid(2)) for _ in range(100))
    assert table.take_retry(tid(3)) is False
    assert table.take_retry(tid(4)) is False            # never kept


def test_recording_a_rerun_keeps_the_remaining_retries():
    table = LineageTable()
    table.record(tid(1), [oid(1)], [], max_retries=1)
    assert table.take_retry(tid(1))
    table.record(tid(1), [oid(1)], [], max_retries=1)   # the re-run finished
    assert table.take_retry(tid(1)) is False


def test_self_reference_does_not_hold_itself():
    table = LineageTable()
    table.record(tid(1), [oid(1, 1)], [])
    table.record(tid(1), [oid(1, 2)], [oid(1, 1)])
    assert table.object_freed(oid(1, 1)) == []
    assert [t.task_id for t in table.object_freed(oid(1, 2))] == [tid(1)]
