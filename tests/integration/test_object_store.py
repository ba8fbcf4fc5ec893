"""The shared-memory object store end to end: zero-copy reads, sharing across workers,
reference counting, eviction and spilling under pressure, and the full-store error."""
from __future__ import annotations

import gc
import glob
import os
import time

import numpy as np
import pytest

import raylite as ray
from tests.conftest import backing_file

MiB = 1 << 20


@pytest.fixture(scope="module")
def small_store():
    ray.init(num_cpus=2, object_store_memory=64 * MiB)
    yield ray.api.connection()
    ray.shutdown()


def store_dir() -> str:
    return ray.api.connection().worker.io.store_dir


def live_objects() -> list[str]:
    return [f for f in os.listdir(store_dir()) if not f.startswith("free-")]


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_large_array_is_zero_copy_and_read_only(small_store):
    arr = np.arange(2 * MiB // 8, dtype=np.float64)
    ref = ray.put(arr)
    out = ray.get(ref)
    assert np.array_equal(out, arr)
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0] = 1.0
    # The array's memory is the mapped segment, not a private copy.
    base = out.base
    while base is not None and not isinstance(base, memoryview) and hasattr(base, "base"):
        base = base.base
    assert ref.hex() in live_objects()


def test_small_objects_stay_inline(small_store):
    ref = ray.put(list(range(100)))
    assert ray.get(ref) == list(range(100))
    assert ref.hex() not in live_objects()
    # ... while a large one of the same kind does go to shared memory.
    big = ray.put(list(range(100_000)))
    assert big.hex() in live_objects()


def test_del_ref_releases_memory(small_store):
    ref = ray.put(np.ones(4 * MiB // 8))
    name = ref.hex()
    assert name in live_objects()
    del ref
    gc.collect()
    assert wait_until(lambda: name not in live_objects())


def test_task_result_freed_when_ref_dropped(small_store):
    @ray.remote
    def big():
        return np.zeros(3 * MiB // 8)

    ref = big.remote()
    assert ray.get(ref).shape == (3 * MiB // 8,)
    name = ref.hex()
    assert name in live_objects()
    del ref
    gc.collect()
    assert wait_until(lambda: name not in live_objects())


def test_nested_ref_kept_alive_by_borrowing_actor(small_store):
    @ray.remote
    class Holder:
        def hold(self, box):
            self.ref = box[0]
            return True

        def total(self):
            return float(ray.get(self.ref).sum())

        def drop(self):
            del self.ref
            return True

    ref = ray.put(np.ones(MiB // 8 * 2))
    name = ref.hex()
    holder = Holder.remote()
    assert ray.get(holder.hold.remote([ref]))
    del ref
    gc.collect()
    time.sleep(0.3)
    assert name in live_objects(), "freed while an actor still holds a ref to it"
    assert ray.get(holder.total.remote()) == MiB // 8 * 2
    assert ray.get(holder.drop.remote())
    assert wait_until(lambda: name not in live_objects())


def test_four_times_capacity_spills_and_loses_nothing(small_store):
    chunk = 8 * MiB // 8
    refs = [ray.put(np.full(chunk, i, dtype=np.float64)) for i in range(32)]  # 256 MiB
    spilled = glob.glob(os.path.join(small_store.session.spill, "*", "*"))
    assert spilled, "nothing was spilled although 4x the capacity is referenced"
    for i, ref in enumerate(refs):
        value = ray.get(ref)
        assert value[0] == i and value[-1] == i
    # A task can read spilled objects as arguments too.

    @ray.remote
    def first(x):
        return float(x[0])

    assert ray.get([first.remote(refs[i]) for i in (0, 7, 31)]) == [0.0, 7.0, 31.0]


def test_object_larger_than_store_raises_full_error(small_store):
    with pytest.raises(ray.exceptions.ObjectStoreFullError) as info:
        ray.put(np.zeros(80 * MiB // 8))
    assert "object_store_memory" in str(info.value)


def test_many_readers_share_one_copy(small_store):
    @ray.remote
    def reader(x):
        return backing_file(x.ctypes.data), float(x.sum())

    arr = np.ones(16 * MiB // 8)
    ref = ray.put(arr)
    results = ray.get([reader.remote(ref) for _ in range(4)])
    expected = os.path.join(store_dir(), ref.hex())
    for path, total in results:
        assert total == arr.size
        # Every reader maps the one segment in /dev/shm instead of holding a copy.
        assert path == expected
    assert backing_file(ray.get(ref).ctypes.data) == expected
    free_before = os.statvfs("/dev/shm").f_bavail
    more = ray.get([reader.remote(ref) for _ in range(4)])
    assert all(p == expected for p, _ in more)
    assert os.statvfs("/dev/shm").f_bavail >= free_before - (2 * MiB) // os.statvfs("/dev/shm").f_frsize


def test_crashed_worker_leaves_no_orphan_segment(small_store, tmp_path):
    marker = tmp_path / "ref"

    @ray.remote(max_retries=0)
    def write_then_die(path):
        ref = ray.put(np.ones(2 * MiB // 8))
        with open(path, "w") as f:
            f.write(ref.hex())
        os._exit(1)

    with pytest.raises(ray.exceptions.WorkerCrashedError):
        ray.get(write_then_die.remote(str(marker)))
    name = marker.read_text()
    # The object's owner died with the worker: the store reclaims its segment.
    assert wait_until(lambda: name not in live_objects())
