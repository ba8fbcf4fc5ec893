"""Objects on a real local cluster: argument resolution, nested refs, large numpy
arrays through the shared-memory store (zero-copy, read-only)."""
from __future__ import annotations

import gc
import glob
import os
import time

import numpy as np
import pytest

import raylite as ray

TEN_MB = 10 * 1024 * 1024


@pytest.fixture(autouse=True)
def _cluster(ray_start):
    yield


def _object_files(ray_context, ref) -> list[str]:
    """Files of the session's /dev/shm store named after the object."""
    name = os.path.basename(ray_context["session_dir"].rstrip("/"))[2:]
    oid = ref if isinstance(ref, str) else ref.hex()
    return glob.glob(f"/dev/shm/raylite-{name}-*/{oid}")


# ---- arguments ------------------------------------------------------------------------

def test_top_level_ref_args_are_resolved():
    @ray.remote
    def describe(a, b, *, c):
        return type(a).__name__, a, b, type(c).__name__, c

    @ray.remote
    def make(x):
        return x

    a = ray.put([1, 2])
    b = make.remote("from task")
    c = ray.put({"k": 3})
    assert ray.get(describe.remote(a, b, c=c)) == ("list", [1, 2], "from task", "dict", {"k": 3})


def test_nested_refs_arrive_as_refs():
    @ray.remote
    def inspect_nested(items, mapping):
        kinds = [type(x).__name__ for x in items] + [type(v).__name__ for v in mapping.values()]
        values = ray.get(list(items)) + [ray.get(v) for v in mapping.values()]
        return kinds, values

    r1, r2 = ray.put("one"), ray.put("two")
    kinds, values = ray.get(inspect_nested.remote([r1, r2], {"x": r1}))
    assert kinds == ["ObjectRef", "ObjectRef", "ObjectRef"]
    assert values == ["one", "two", "one"]


def test_nested_ref_to_task_result_can_be_fetched_in_task():
    @ray.remote
    def produce():
        return 41

    @ray.remote
    def consume(wrapped):
        (ref,) = wrapped
        assert isinstance(ref, ray.ObjectRef)
        return ray.get(ref) + 1

    assert ray.get(consume.remote([produce.remote()])) == 42


def test_refs_inside_put_value_stay_refs():
    inner = ray.put("inner value")
    outer = ray.put({"ref": inner})
    got = ray.get(outer)
    assert isinstance(got["ref"], ray.ObjectRef)
    assert ray.get(got["ref"]) == "inner value"


def test_task_can_return_ref_it_put():
    @ray.remote
    def put_inside():
        return ray.put("made in a task")

    ref = ray.get(put_inside.remote())
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == "made in a task"


def test_chained_tasks_pass_results():
    @ray.remote
    def inc(x):
        return x + 1

    ref = ray.put(0)
    for _ in range(10):
        ref = inc.remote(ref)
    assert ray.get(ref) == 10


# ---- large objects ---------------------------------------------------------------------

def test_large_array_put_get_roundtrip_and_read_only():
    arr = np.arange(TEN_MB // 8, dtype=np.float64)
    ref = ray.put(arr)
    out = ray.get(ref)
    assert isinstance(out, np.ndarray)
    assert out.dtype == arr.dtype and out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0] = 1.0
    # The source array is untouched and still writable.
    arr[0] = -1.0
    assert ray.get(ref)[0] == 0.0


def test_large_array_lives_in_shared_memory(ray_start):
    ref = ray.put(np.ones(TEN_MB, dtype=np.uint8))
    files = _object_files(ray_start, ref)
    assert files, "a 10 MB object did not go to /dev/shm"
    assert os.path.getsize(files[0]) >= TEN_MB
    assert ray.get(ref).sum() == TEN_MB


def test_task_sees_same_large_array():
    rng = np.random.default_rng(0)
    arr = rng.standard_normal(TEN_MB // 8)
    ref = ray.put(arr)

    @ray.remote
    def summarize(a):
        import numpy as np_
        return (type(a).__name__, a.shape, str(a.dtype), float(np_.sum(a)), float(a[12345]),
                bool(a.flags.writeable))

    kind, shape, dtype, total, sample, writeable = ray.get(summarize.remote(ref))
    assert kind == "ndarray" and shape == arr.shape and dtype == "float64"
    assert total == pytest.approx(float(arr.sum()))
    assert sample == float(arr[12345])
    assert writeable is False  # workers read the store zero-copy, too


def test_large_array_passed_by_value_arrives_intact():
    arr = np.arange(TEN_MB // 4, dtype=np.int32)

    @ray.remote
    def checksum(a):
        return int(a.sum(dtype="int64")), a.shape

    total, shape = ray.get(checksum.remote(arr))
    assert total == int(arr.sum(dtype=np.int64)) and shape == arr.shape


def test_large_array_returned_from_task():
    @ray.remote
    def make(n):
        import numpy as np_
        return np_.full(n, 7, dtype=np_.int16)

    out = ray.get(make.remote(TEN_MB // 2))
    assert out.shape == (TEN_MB // 2,) and int(out[-1]) == 7
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0] = 1


def test_large_object_freed_when_refs_dropped(ray_start):
    ref = ray.put(np.zeros(TEN_MB, dtype=np.uint8))
    oid = ref.hex()
    assert _object_files(ray_start, ref)
    del ref
    gc.collect()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _object_files(ray_start, oid):
        time.sleep(0.05)
    assert not _object_files(ray_start, oid), "a dropped 10 MB object stayed in /dev/shm"


def test_wait_on_no_refs_returns_two_empty_lists(_cluster):
    # As Ray: ([], []) whatever num_returns asks for, not a ValueError.
    assert ray.wait([]) == ([], [])
    assert ray.wait([], num_returns=3, timeout=0) == ([], [])
