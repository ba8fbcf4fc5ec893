"""Many actors on one node: no hidden worker cap for actors (num_cpus=0), and actors
whose handles are dropped before they are placed are never created."""
from __future__ import annotations

import os
import time

import pytest

import raylite as ray
from raylite.core import global_state

RAY_INIT_KWARGS = {"num_cpus": 2}


@pytest.fixture(autouse=True)
def _cluster(ray_start):
    yield


def _wait(predicate, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_more_actors_than_the_task_worker_cap_all_answer():
    # The node runs at most max(64, 8 * CPUs) task workers; actors do not count.
    @ray.remote(num_cpus=0)
    class Counter:
        def __init__(self):
            self.pid = os.getpid()

        def ping(self):
            return self.pid

    actors = [Counter.remote() for _ in range(150)]
    pids = ray.get([a.ping.remote() for a in actors], timeout=300)
    assert len(set(pids)) == 150


def test_actor_dropped_before_placement_is_never_created(tmp_path):
    release, started = str(tmp_path / "release"), str(tmp_path / "started")

    @ray.remote(num_cpus=2)
    def hold(release_path, started_path):
        open(started_path, "w").close()
        while not os.path.exists(release_path):
            time.sleep(0.01)

    @ray.remote(num_cpus=2)
    class Marked:
        def __init__(self, path):
            open(path, "w").close()

        def ok(self):
            return True

    blocker = hold.remote(release, started)
    assert _wait(lambda: os.path.exists(started))
    # Both CPUs are held: these wait for placement; their handles go at once.
    actors = [Marked.remote(str(tmp_path / f"created-{i}")) for i in range(3)]
    ids = [a._actor_id_hex() for a in actors]
    del actors
    gcs = global_state.get_worker().gcs
    assert _wait(lambda: all(gcs.get_actor(i).state == "DEAD" for i in ids))
    time.sleep(0.3)   # let the withdrawn lease requests reach the node scheduler
    open(release, "w").close()
    ray.get(blocker, timeout=60)
    probe = Marked.remote(str(tmp_path / "probe"))
    assert ray.get(probe.ok.remote(), timeout=120) is True
    assert sorted(os.listdir(tmp_path)) == ["probe", "release", "started"]


def test_owner_reads_back_the_actor_records_it_buffered():
    # Actor records go through the GCS client's background pipeline (no Redis round
    # trip on the owner's event loop); the owner's own reads flush first.
    @ray.remote(num_cpus=0)
    class Echo:
        def ping(self):
            return os.getpid()

    actors = [Echo.remote() for _ in range(20)]
    pids = ray.get([a.ping.remote() for a in actors], timeout=120)
    gcs = global_state.get_worker().gcs
    records = [gcs.get_actor(a._actor_id_hex()) for a in actors]
    assert [r.state for r in records] == ["ALIVE"] * 20
    assert [r.pid for r in records] == pids
    table = gcs.all_actors()
    assert all(table[a._actor_id_hex()].state == "ALIVE" for a in actors)
