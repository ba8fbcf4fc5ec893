"""SharedMemoryStore bookkeeping on a temporary directory: capacity, LRU spilling and
restore, recycled segments, owner reclaim, and the sweep of stores nobody owns."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from raylite.exceptions import ObjectStoreFullError
from raylite.object_store.store import OWNER_FILE, SharedMemoryStore, sweep_stale_stores

MiB = 1 << 20


@pytest.fixture
def store(tmp_path):
    s = SharedMemoryStore(str(tmp_path / "shm"), 10 * MiB, str(tmp_path / "spill"))
    yield s
    s.cleanup()


def put(store, name: str, size: int, owner: str = "") -> str:
    path, _ = store.create(name, size, owner=owner)
    with open(path, "wb") as f:
        f.write(name[:1].encode() * size)
    store.seal(name, size)
    return path


def test_capacity_accounting_and_delete(store):
    put(store, "a", 2 * MiB)
    put(store, "b", 3 * MiB)
    assert store.used == 5 * MiB
    store.delete("a")
    assert "a" not in store.objects
    # a freed segment of 1 MiB or more is kept for reuse (up to a quarter of the
    # capacity) and still counted; a larger one is released
    assert store.used == 5 * MiB and len(store.pool) == 1
    store.delete("b")
    assert store.used == 2 * MiB and len(store.pool) == 1


def test_recycled_segment_serves_a_similar_size(store):
    put(store, "a", 2 * MiB)
    store.delete("a")
    path, reused = store.create("b", 3 * MiB // 2)
    assert reused and os.path.exists(path)
    assert store.pool == []
    _, reused_again = store.create("c", 3 * MiB // 2)
    assert not reused_again


def test_full_store_spills_least_recently_used_and_restores(store):
    for name in "abc":
        put(store, name, 3 * MiB)
    store.locate("a")  # a is now the most recently used
    put(store, "d", 3 * MiB)
    spilled = [n for n, o in store.objects.items() if o.spilled]
    assert spilled == ["b"]
    assert store.used <= store.capacity
    path = store.locate("b")  # restore: makes room by spilling another
    assert path and open(path, "rb").read(1) == b"b"
    assert not store.objects["b"].spilled
    assert store.num_spilled >= 2 and store.num_restored == 1


def test_too_large_or_unspillable_raises(store):
    with pytest.raises(ObjectStoreFullError, match="object_store_memory"):
        store.create("huge", 11 * MiB)
    store.create("w1", 6 * MiB)          # reserved but not sealed: cannot be spilled
    with pytest.raises(ObjectStoreFullError):
        store.create("w2", 6 * MiB)


def test_objects_of_a_dead_owner_are_reclaimed(store):
    put(store, "x", MiB // 2, owner="w1")
    put(store, "y", MiB // 2, owner="w2")
    assert store.delete_owned_by("w1") == 1
    assert set(store.objects) == {"y"}


def test_sweep_removes_only_stores_without_a_live_owner(tmp_path):
    live = SharedMemoryStore(str(tmp_path / "raylite-live"), MiB, str(tmp_path / "s1"))
    dead_dir = tmp_path / "raylite-dead"
    # A store whose owner process died: its owner lock is free.
    code = ("import sys; from raylite.object_store.store import SharedMemoryStore;"
            f"SharedMemoryStore({str(dead_dir)!r}, 1 << 20, {str(tmp_path / 's2')!r})")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert (dead_dir / OWNER_FILE).exists()
    removed = sweep_stale_stores(str(tmp_path), "raylite-")
    assert removed == [str(dead_dir)]
    assert os.path.isdir(live.directory)
    live.cleanup()
