"""Functions that make new tensors: from data, constant-filled, random, ranges.

Every function takes ``dtype=``, ``device=`` and ``requires_grad=``. Random values
are drawn on the host from one seeded numpy Generator and then moved to the device,
so ``manual_seed(s)`` gives the same numbers on "cpu" and "cuda" (at the price of a
host-to-device copy, which only matters for initialisation).
"""

from __future__ import annotations

import numpy as np

from raylite.tensor import backend
from raylite.tensor.tensor import DEFAULT_FLOAT, Tensor

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Reseed the generator used by randn/rand/randint and the nn initialisers."""
    global _rng
    _rng = np.random.default_rng(seed)


def generator() -> np.random.Generator:
    """The numpy Generator behind the random creation functions."""
    return _rng


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"shape must be non-negative ints, got {shape}")
    return tuple(int(n) for n in shape)


def _make(array, dtype, device, requires_grad) -> Tensor:
    device = backend.normalize_device(device)
    dtype = DEFAULT_FLOAT if dtype is None else np.dtype(dtype)
    return Tensor(backend.to_device(array, device, dtype), requires_grad=requires_grad)


def tensor(data, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """A new tensor holding a copy of ``data`` (list, scalar, array or Tensor).

    Python floats become float32, ints int64, bools bool; arrays keep their dtype.
    Raises ValueError for ragged nested lists or an unknown device.
    """
    if isinstance(data, Tensor):
        data = data.numpy()
    try:
        arr = np.array(backend.to_numpy(data) if backend.is_backend_array(data) else data)
    except ValueError as exc:
        raise ValueError(f"tensor(): cannot make an array from the data ({exc})") from None
    if dtype is None and not isinstance(data, np.ndarray) and arr.dtype.kind == "f":
        dtype = DEFAULT_FLOAT
    return Tensor(arr, dtype=dtype or arr.dtype, device=device, requires_grad=requires_grad)


def from_numpy(array: np.ndarray, device="cpu", requires_grad=False) -> Tensor:
    """Wrap a numpy array without copying (on "cpu"); keeps its dtype.

    Raises TypeError when ``array`` is not a numpy array.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy array, got {type(array).__name__}")
    return Tensor(array, device=device, requires_grad=requires_grad)


def zeros(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Tensor of zeros. Raises ValueError for a negative or non-int shape."""
    device = backend.normalize_device(device)
    xp = backend.get_xp(device)
    data = xp.zeros(_shape(shape), dtype=DEFAULT_FLOAT if dtype is None else dtype)
    return Tensor(data, device=device, requires_grad=requires_grad)


def ones(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Tensor of ones. Raises ValueError for a negative or non-int shape."""
    return full(_shape(shape), 1, dtype=dtype, device=device, requires_grad=requires_grad)


def full(shape, value, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Tensor filled with ``value``."""
    device = backend.normalize_device(device)
    xp = backend.get_xp(device)
    data = xp.full(_shape((shape,)), value, dtype=DEFAULT_FLOAT if dtype is None else dtype)
    return Tensor(data, device=device, requires_grad=requires_grad)


def zeros_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t: Tensor, dtype=None, device=None, requires_grad=False) -> Tensor:
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randn(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Standard normal samples."""
    return _make(_rng.standard_normal(_shape(shape)), dtype, device, requires_grad)


def rand(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1)."""
    return _make(_rng.random(_shape(shape)), dtype, device, requires_grad)


def randint(low, high, shape, dtype=np.int64, device="cpu") -> Tensor:
    """Integers uniform in [low, high)."""
    return _make(_rng.integers(low, high, _shape((shape,))), dtype, device, False)


def arange(start, stop=None, step=1, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Like numpy.arange; integer arguments give int64, otherwise float32."""
    if stop is None:
        start, stop = 0, start
    arr = np.arange(start, stop, step)
    if dtype is None:
        dtype = np.int64 if arr.dtype.kind in "iu" else DEFAULT_FLOAT
    return _make(arr, dtype, device, requires_grad)


def linspace(start, stop, num, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _make(np.linspace(start, stop, num), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Identity matrix (n x m)."""
    return _make(np.eye(n, m), dtype, device, requires_grad)
