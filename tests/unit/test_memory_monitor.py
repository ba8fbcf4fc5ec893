"""The memory monitor's decision (which worker to kill) and its /proc and cgroup
parsers, without a process or a file."""
from __future__ import annotations

import pytest

from raylite.scheduler.memory_monitor import (
    KILL_GRACE_S,
    GiB,
    MemoryConfig,
    MemoryMonitor,
    MemorySnapshot,
    WorkerRecord,
    choose_victim,
)
from raylite.scheduler.memory_reader import (
    cgroup_usage,
    choose,
    parse_cgroup_path,
    parse_meminfo,
)

TOTAL = 16 * GiB


def w(worker_id, owner="driver", seq=1, retriable=True, actor=b"", pid=None, rss=0):
    return WorkerRecord(worker_id, pid or 1000 + seq, owner, seq, retriable, actor, rss)


def used(fraction):
    return MemorySnapshot(used=int(TOTAL * fraction), total=TOTAL)


# ---- configuration ------------------------------------------------------------------------
def test_defaults_are_rays():
    cfg = MemoryConfig.from_env({})
    assert (cfg.threshold, cfg.refresh_ms, cfg.min_free_bytes, cfg.enabled) == (0.95, 250, -1, True)


def test_ray_names_are_read_and_raylite_names_win():
    env = {"RAY_memory_usage_threshold": "0.5", "RAY_memory_monitor_refresh_ms": "100",
           "RAYLITE_memory_usage_threshold": "0.7"}
    cfg = MemoryConfig.from_env(env)
    assert (cfg.threshold, cfg.refresh_ms) == (0.7, 100)


def test_refresh_zero_disables_the_monitor():
    assert not MemoryConfig.from_env({"RAY_memory_monitor_refresh_ms": "0"}).enabled


@pytest.mark.parametrize("value", ["1.5", "-0.1", "lots"])
def test_bad_threshold_raises(value):
    with pytest.raises(ValueError):
        MemoryConfig.from_env({"RAY_memory_usage_threshold": value})


def test_min_free_bytes_raises_the_bar_on_big_hosts():
    cfg = MemoryConfig(threshold=0.5, min_free_bytes=1 * GiB)
    assert cfg.threshold_bytes(TOTAL) == TOTAL - GiB          # max(8 GiB, 15 GiB)
    assert MemoryConfig(threshold=0.5).threshold_bytes(TOTAL) == TOTAL // 2


# ---- when to kill ------------------------------------------------------------------------------
def test_nothing_is_killed_below_the_threshold():
    monitor = MemoryMonitor(MemoryConfig(threshold=0.9))
    assert monitor.check(used(0.89), [w("a")], now=0.0) is None


def test_above_the_threshold_one_worker_is_killed_with_the_figures():
    monitor = MemoryMonitor(MemoryConfig(threshold=0.9), node="10.0.0.1, ID: n1")
    kill = monitor.check(used(0.95), [w("a", pid=4242, rss=3 * GiB)], now=0.0)
    assert kill is not None and kill.victim.worker_id == "a"
    for text in ("15.20GB / 16.00GB", "0.950000", "threshold of 0.900000", "pid 4242",
                 "RSS 3.00GB", "10.0.0.1", "RAY_memory_usage_threshold"):
        assert text in kill.message, text


def test_no_leased_worker_means_nothing_to_kill():
    monitor = MemoryMonitor(MemoryConfig(threshold=0.5))
    assert monitor.check(used(0.99), [], now=0.0) is None
    assert monitor.killing == ""


def test_one_kill_at_a_time_until_the_victim_is_gone():
    monitor = MemoryMonitor(MemoryConfig(threshold=0.5))
    workers = [w("a", seq=1), w("b", seq=2)]
    first = monitor.check(used(0.9), workers, now=0.0)
    assert first is not None and first.victim.worker_id == "b"
    assert monitor.check(used(0.9), workers, now=0.5) is None          # b still there
    second = monitor.check(used(0.9), [w("a", seq=1)], now=1.0)         # b is gone
    assert second is not None and second.victim.worker_id == "a"


def test_a_victim_that_does_not_die_stops_blocking_after_a_grace_period():
    monitor = MemoryMonitor(MemoryConfig(threshold=0.5))
    workers = [w("a", seq=1), w("b", seq=2)]
    monitor.check(used(0.9), workers, now=0.0)
    kill = monitor.check(used(0.9), workers, now=KILL_GRACE_S + 0.1)
    assert kill is not None


def test_a_kill_in_progress_is_forgotten_once_memory_is_back_below():
    monitor = MemoryMonitor(MemoryConfig(threshold=0.5))
    monitor.check(used(0.9), [w("a")], now=0.0)
    assert monitor.check(used(0.1), [], now=0.1) is None
    assert monitor.killing == ""


# ---- whom to kill ----------------------------------------------------------------------------
def test_retriable_workers_go_before_non_retriable_ones_even_if_older():
    victim = choose_victim([w("old-retriable", seq=1), w("new-final", seq=9, retriable=False)])
    assert victim is not None and victim.worker_id == "old-retriable"


def test_non_retriable_workers_are_killed_when_nothing_else_runs():
    victim = choose_victim([w("x", seq=1, retriable=False), w("y", seq=2, retriable=False)])
    assert victim is not None and victim.worker_id == "y"


def test_the_owner_with_the_most_workers_loses_its_newest_one():
    workers = [w("a1", owner="A", seq=1), w("a2", owner="A", seq=5), w("b1", owner="B", seq=9)]
    victim = choose_victim(workers)
    assert victim is not None and victim.worker_id == "a2"


def test_equal_groups_the_owner_whose_first_lease_is_latest_loses():
    workers = [w("a1", owner="A", seq=1), w("a2", owner="A", seq=8),
               w("b1", owner="B", seq=3), w("b2", owner="B", seq=4)]
    victim = choose_victim(workers)
    assert victim is not None and victim.worker_id == "b2"


def test_actor_victims_are_named_as_actors():
    monitor = MemoryMonitor(MemoryConfig(threshold=0.5))
    kill = monitor.check(used(0.9), [w("a", actor=b"\x01" * 16)], now=0.0)
    assert kill is not None and "actor's worker" in kill.message


# ---- reading ---------------------------------------------------------------------------------
MEMINFO = """MemTotal:       16384000 kB
MemFree:         1000000 kB
MemAvailable:    4096000 kB
Buffers:          100000 kB
"""


def test_meminfo_used_is_total_minus_available():
    total, available = parse_meminfo(MEMINFO)
    assert (total, available) == (16384000 * 1024, 4096000 * 1024)
    snap = choose(total, available, None)
    assert snap.used == (16384000 - 4096000) * 1024 and snap.source == "system"


def test_meminfo_without_available_raises():
    with pytest.raises(ValueError):
        parse_meminfo("MemTotal: 1 kB\n")


def test_cgroup_path_of_a_process():
    assert parse_cgroup_path("0::/user.slice/session-1.scope\n") == "/user.slice/session-1.scope"
    assert parse_cgroup_path("12:memory:/docker/abc\n") == ""


def test_cgroup_limit_below_the_machine_wins_and_inactive_file_is_not_used():
    cg = cgroup_usage("4294967296\n", "3221225472\n", "anon 1\ninactive_file 1073741824\nx 2\n")
    assert cg == (2 * GiB, 4 * GiB)
    snap = choose(TOTAL, TOTAL // 2, cg)
    assert (snap.used, snap.total, snap.source) == (2 * GiB, 4 * GiB, "cgroup")


def test_unlimited_cgroup_falls_back_to_the_machine():
    assert cgroup_usage("max\n", "123\n", "") is None
    assert choose(TOTAL, TOTAL // 4, None).total == TOTAL
    # a limit above the machine's memory says nothing
    assert choose(TOTAL, TOTAL // 4, (GiB, 2 * TOTAL)).source == "system"
