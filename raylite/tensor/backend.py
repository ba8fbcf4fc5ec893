"""Array backends: numpy on "cpu", cupy on "cuda".

This is the only module that knows cupy exists. Everything else asks it for the
array module of a device (``get_xp``) or of an array (``xp_of``), and uses the few
helpers here for the operations whose spelling differs between the two libraries
(scatter-add, host copies, device transfers).

cupy is imported lazily, the first time a "cuda" device is asked for, so importing
raylite.tensor never touches the GPU stack.
"""

from __future__ import annotations

import numpy as np

CPU = "cpu"

# Filled lazily by _load_cupy(); None means "not tried yet", False "tried and failed".
_cupy = None
_cupy_error: str | None = None


def _load_cupy():
    """Import cupy once and check that a GPU is actually visible."""
    global _cupy, _cupy_error
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415 - lazy on purpose: keep the CPU import light

            count = cupy.cuda.runtime.getDeviceCount()
            if count < 1:
                raise RuntimeError("cupy found no CUDA device")
            _cupy = cupy
        except Exception as exc:  # ImportError, CUDARuntimeError, driver errors, ...
            _cupy = False
            _cupy_error = f"{type(exc).__name__}: {exc}"
    return _cupy


def cuda_available() -> bool:
    """True when cupy imports and at least one CUDA device is visible."""
    return bool(_load_cupy())


def normalize_device(device) -> str:
    """Canonical device string: "cpu" or "cuda:N" ("cuda" means "cuda:0").

    Raises ValueError for anything else.
    """
    if device is None:
        return CPU
    if not isinstance(device, str):
        device = str(device)
    if device == CPU:
        return CPU
    if device == "cuda":
        return "cuda:0"
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise ValueError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def get_xp(device: str):
    """The array module (numpy or cupy) for a canonical device string.

    Raises RuntimeError with the import/driver error when cupy or a GPU is missing.
    """
    if device == CPU:
        return np
    cupy = _load_cupy()
    if not cupy:
        raise RuntimeError(
            f"device {device!r} needs cupy and a CUDA GPU, which are not available "
            f"({_cupy_error}); use device='cpu' or install cupy (e.g. cupy-cuda12x)"
        )
    return cupy


def xp_of(array):
    """The array module that owns ``array`` (numpy for numpy arrays and scalars)."""
    if type(array) is np.ndarray or _cupy is None or _cupy is False:
        return np
    if isinstance(array, _cupy.ndarray):
        return _cupy
    return np


def device_of(array) -> str:
    """Canonical device string of a backend array."""
    if type(array) is np.ndarray or not _cupy:
        return CPU
    if isinstance(array, _cupy.ndarray):
        return f"cuda:{array.device.id}"
    return CPU


def is_backend_array(obj) -> bool:
    """True for numpy arrays and (when cupy is loaded) cupy arrays."""
    if isinstance(obj, np.ndarray):
        return True
    return bool(_cupy) and isinstance(obj, _cupy.ndarray)  # type: ignore[union-attr]


def to_numpy(array) -> np.ndarray:
    """Host copy of a cupy array; numpy arrays are returned as they are."""
    if isinstance(array, np.ndarray):
        return array
    return array.get()


def to_device(array, device: str, dtype=None):
    """``array`` (numpy, cupy, list, scalar) as an array on ``device`` with ``dtype``.

    Does not copy when the array already lives there with that dtype.
    Raises RuntimeError if the device is "cuda:N" and no GPU is usable.
    """
    if device == CPU:
        if not isinstance(array, np.ndarray) and _cupy and isinstance(array, _cupy.ndarray):
            array = array.get()
        return np.asarray(array, dtype=dtype)
    cupy = get_xp(device)
    with cupy.cuda.Device(int(device[5:])):
        return cupy.asarray(array, dtype=dtype)


def scatter_add(target, index, values) -> None:
    """In place ``target[index] += values``, summing repeated indices.

    Plain ``target[index] += values`` would add only once per repeated index; both
    numpy and cupy (>= 13) spell the accumulating version ``xp.add.at``.
    """
    xp_of(target).add.at(target, index, values)
