"""raylite.serialization: pickle-5 layout with out-of-band buffers, cloudpickle for
code, zero-copy numpy reads, and clear errors for what cannot be pickled."""
from __future__ import annotations

import dataclasses
import pickle
import threading

import numpy as np
import pytest

from raylite import exceptions as rex
from raylite.core.object_ref import ObjectRef
from raylite.serialization import (
    ALIGN,
    deserialize,
    dumps_code,
    dumps_exception,
    loads_code,
    serialize,
)


@dataclasses.dataclass
class Record:
    name: str
    values: list


def roundtrip(value):
    return deserialize(serialize(value).to_bytes())


@pytest.mark.parametrize("value", [
    None, True, 0, -(2 ** 70), 3.5, float("inf"), "text", "ünïcode", b"", b"\x00\xff" * 100,
    [], [1, [2, [3]]], (1, "a", None), {"a": 1, 2: [3]}, {1, 2, 3}, frozenset({"x"}),
    bytearray(b"abc"), range(5), complex(1, 2), list(range(100_000)),
    Record("r", [1, 2]),
])
def test_roundtrip_plain_values(value):
    assert roundtrip(value) == value


def test_to_bytes_size_matches_total_size():
    ser = serialize({"a": np.arange(10), "b": "x"})
    assert len(ser.to_bytes()) == ser.total_size


# ---- numpy ------------------------------------------------------------------------------

def test_numpy_roundtrip_values_dtype_shape():
    arrays = [np.arange(12, dtype=np.int64).reshape(3, 4), np.zeros((2, 3, 4), np.float32),
              np.array([True, False]), np.array([], dtype=np.float64),
              np.arange(10.0)[::2], np.asfortranarray(np.arange(6).reshape(2, 3))]
    for arr in arrays:
        out = roundtrip(arr)
        assert out.dtype == arr.dtype and out.shape == arr.shape
        np.testing.assert_array_equal(out, arr)


def test_numpy_is_zero_copy_from_the_buffer():
    arr = np.arange(1 << 16, dtype=np.float64)
    ser = serialize(arr)
    assert ser.buffers, "a large array should travel out of band"
    buf = bytearray(ser.total_size)
    ser.write_into(memoryview(buf))
    out = deserialize(buf)
    np.testing.assert_array_equal(out, arr)
    base = np.frombuffer(buf, dtype=np.uint8)
    start = out.ctypes.data - base.ctypes.data
    assert 0 <= start < len(buf), "the array does not live inside the buffer"
    assert start % ALIGN == 0, "out-of-band buffers are 64-byte aligned in the layout"
    # Writing the buffer is visible through the array: no copy was made.
    base[start:start + 8] = np.frombuffer(np.float64(12345.0).tobytes(), dtype=np.uint8)
    assert out[0] == 12345.0


def test_numpy_from_read_only_bytes_is_read_only():
    arr = np.ones(10_000, dtype=np.int32)
    out = deserialize(serialize(arr).to_bytes())
    np.testing.assert_array_equal(out, arr)
    assert not out.flags.writeable
    with pytest.raises(ValueError):
        out[0] = 5


def test_several_arrays_in_one_value():
    value = {"a": np.arange(1000), "b": [np.ones((10, 10)), np.zeros(3, np.uint8)], "c": "meta"}
    ser = serialize(value)
    assert len(ser.buffers) >= 3
    out = deserialize(ser.to_bytes())
    np.testing.assert_array_equal(out["a"], value["a"])
    np.testing.assert_array_equal(out["b"][0], value["b"][0])
    np.testing.assert_array_equal(out["b"][1], value["b"][1])
    assert out["c"] == "meta"


def test_write_to_fd_matches_to_bytes(tmp_path):
    import os
    ser = serialize({"x": np.arange(5000, dtype=np.int16), "y": "s"})
    path = tmp_path / "obj"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        ser.write_to_fd(fd)
    finally:
        os.close(fd)
    assert path.read_bytes() == ser.to_bytes()


# ---- code and closures ---------------------------------------------------------------------

def test_lambda_and_closure_roundtrip_via_cloudpickle():
    offset = 7
    fn = roundtrip(lambda x: x + offset)
    assert fn(1) == 8

    def make_counter():
        count = [0]

        def inc():
            count[0] += 1
            return count[0]
        return inc
    inc = roundtrip(make_counter())
    assert (inc(), inc()) == (1, 2)


def test_local_class_instances_roundtrip():
    class Local:
        def __init__(self, v):
            self.v = v

        def double(self):
            return self.v * 2

    out = roundtrip(Local(21))
    assert out.double() == 42


def test_dumps_code_roundtrip():
    def add(a, b=2):
        return a + b
    fn = loads_code(dumps_code(add))
    assert fn(1) == 3 and fn.__name__ == "add"


# ---- errors --------------------------------------------------------------------------------

def test_unpicklable_value_raises_type_error_naming_it():
    with pytest.raises(TypeError) as info:
        serialize({"lock": threading.Lock()})
    assert "lock" in str(info.value).lower()


def test_unpicklable_code_raises_type_error():
    lock = threading.Lock()
    with pytest.raises(TypeError):
        dumps_code(lambda: lock)


def test_deserialize_rejects_foreign_bytes():
    with pytest.raises(ValueError):
        deserialize(b"NOPE" + b"\x00" * 32)


def test_dumps_exception_keeps_picklable_exception():
    err = pickle.loads(dumps_exception(KeyError("k")))
    assert isinstance(err, KeyError) and err.args == ("k",)


def test_dumps_exception_degrades_unrebuildable_exception():
    class NeedsTwo(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}-{b}")

    err = pickle.loads(dumps_exception(NeedsTwo(1, 2)))
    assert isinstance(err, rex.RayError)
    assert "1-2" in str(err)


def test_task_error_roundtrips_with_cause():
    err = rex.RayTaskError("f", "Traceback...\nValueError: x", ValueError("x"), 12, "127.0.0.1",
                           "file.py:3 in main")
    out = roundtrip(err)
    assert isinstance(out, rex.RayTaskError)
    assert isinstance(out.cause, ValueError)
    assert "file.py:3" in str(out) and "ray::f()" in str(out)
    dual = out.as_instanceof_cause()
    assert isinstance(dual, ValueError) and isinstance(dual, rex.RayTaskError)


# ---- object refs inside values --------------------------------------------------------------

def test_contained_object_refs_are_reported():
    r1 = ObjectRef(b"a" * 20, b"", _count=False)
    r2 = ObjectRef(b"b" * 20, b"", _count=False)
    ser = serialize({"refs": [r1, r2], "n": 1})
    assert sorted(r.binary() for r in ser.contained_refs) == [b"a" * 20, b"b" * 20]
    out = deserialize(ser.to_bytes())
    assert out["refs"] == [r1, r2]
    assert serialize([1, 2]).contained_refs == []
