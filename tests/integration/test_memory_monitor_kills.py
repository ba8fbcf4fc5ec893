"""The node's memory monitor with real processes: a task that allocates past the
threshold is killed, retried within max_retries, and finally fails with
OutOfMemoryError carrying the node's figures; an actor killed that way dies with an
ActorDiedError naming it; the cluster serves on.

The threshold is set relative to what the machine uses when the module starts (about
1.75 GiB above it), so the tests allocate at most ~3 GiB whatever the machine's size.
"""
from __future__ import annotations

import os
import time

import pytest

import raylite as ray
from raylite import exceptions as exc
from raylite.scheduler.memory_reader import parse_meminfo

GiB = 1 << 30
HEADROOM = int(1.75 * GiB)      # the threshold sits this far above the usage at start
CHUNK = 64 << 20
MAX_ALLOC = 3 * GiB


def _threshold() -> float:
    with open("/proc/meminfo") as f:
        total, available = parse_meminfo(f.read())
    return min(0.99, (total - available + HEADROOM) / total)


@pytest.fixture(scope="module", autouse=True)
def cluster():
    saved = {k: os.environ.get(k) for k in ("RAY_memory_usage_threshold", "RAY_memory_monitor_refresh_ms")}
    os.environ["RAY_memory_usage_threshold"] = f"{_threshold():.4f}"
    os.environ["RAY_memory_monitor_refresh_ms"] = "50"
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2)
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def hog(limit: int = MAX_ALLOC) -> int:
    """Allocate (and touch) memory gradually up to ``limit``; returns what it held if it
    was not killed first."""
    chunks = []
    while len(chunks) * CHUNK < limit:
        chunks.append(b"\x01" * CHUNK)
        time.sleep(0.03)
    return len(chunks) * CHUNK


def attempts(path: str) -> int:
    return len(open(path).read()) if os.path.exists(path) else 0


@ray.remote(max_retries=1)
def always_hogs(log):
    with open(log, "a") as f:
        f.write("x")
    return hog()


@ray.remote(max_retries=2)
def hogs_on_first_attempt(log):
    with open(log, "a") as f:
        f.write("x")
    if attempts(log) == 1:
        hog()
        return "survived the first attempt"
    return "ok"


@ray.remote(max_retries=0)
def sleeper(seconds):
    time.sleep(seconds)
    return os.getpid()


@ray.remote
def ping():
    return "pong"


def test_task_killed_until_retries_run_out_gets_out_of_memory_error(tmp_path):
    log = str(tmp_path / "attempts")
    with pytest.raises(exc.OutOfMemoryError) as info:
        ray.get(always_hogs.remote(log), timeout=120)
    assert isinstance(info.value, exc.RayError)
    message = str(info.value)
    for text in ("always_hogs", "low on memory", "GB / ", "memory usage threshold of",
                 "pid ", "RSS ", "RAY_memory_usage_threshold"):
        assert text in message, (text, message)
    assert attempts(log) == 2       # the first run and its one retry (max_retries=1)
    assert ray.get(ping.remote(), timeout=60) == "pong"


def test_retriable_task_is_retried_and_a_non_retriable_one_is_spared(tmp_path):
    log = str(tmp_path / "attempts")
    bystander = sleeper.remote(4.0)    # max_retries=0: the monitor prefers the other one
    assert ray.get(hogs_on_first_attempt.remote(log), timeout=120) == "ok"
    assert attempts(log) == 2
    assert isinstance(ray.get(bystander, timeout=60), int)
    assert ray.get(ping.remote(), timeout=60) == "pong"


def test_actor_killed_for_memory_dies_with_an_error_naming_it():
    @ray.remote
    class Hog:
        def grow(self):
            return hog()

        def ok(self):
            return True

    actor = Hog.remote()
    assert ray.get(actor.ok.remote(), timeout=60)
    with pytest.raises(exc.ActorDiedError) as info:
        ray.get(actor.grow.remote(), timeout=120)
    message = str(info.value)
    assert "OutOfMemoryError" in message and "low on memory" in message, message
    with pytest.raises(exc.ActorDiedError):
        ray.get(actor.ok.remote(), timeout=60)
    assert ray.get(ping.remote(), timeout=60) == "pong"
