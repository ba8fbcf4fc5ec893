"""Weight initialisers, in place, with PyTorch's formulas and defaults.

All draw from ``raylite.tensor.generator()`` (seeded by ``manual_seed``) on the host,
then copy into the tensor on its device.
"""

from __future__ import annotations

import math

import numpy as np

from raylite.tensor import backend, creation


def _fill(t, values):
    t.data[...] = backend.to_device(np.asarray(values), t.device, t.dtype)
    return t


def fans(t) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: dims 1 and 0 times the kernel size.

    Raises ValueError for tensors with fewer than 2 dimensions.
    """
    if t.ndim < 2:
        raise ValueError(f"fan in/out need a weight with at least 2 dimensions, got shape {t.shape}")
    receptive = int(np.prod(t.shape[2:])) if t.ndim > 2 else 1
    return t.shape[1] * receptive, t.shape[0] * receptive


def calculate_gain(nonlinearity: str, param=None) -> float:
    """Recommended gain for an activation (same table as PyTorch).

    Raises ValueError for an unknown nonlinearity.
    """
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def uniform_(t, a=0.0, b=1.0):
    return _fill(t, creation.generator().uniform(a, b, t.shape))


def normal_(t, mean=0.0, std=1.0):
    return _fill(t, creation.generator().normal(mean, std, t.shape))


def constant_(t, value):
    return _fill(t, np.full(t.shape, value))


def zeros_(t):
    return constant_(t, 0.0)


def ones_(t):
    return constant_(t, 1.0)


def xavier_uniform_(t, gain=1.0):
    """U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fan_in, fan_out = fans(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t, gain=1.0):
    fan_in, fan_out = fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """U(-b, b) with b = gain * sqrt(3 / fan) (He et al. 2015).

    With a=sqrt(5) this is PyTorch's default for Linear and Conv weights, which works
    out to U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    fan_in, fan_out = fans(t)
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(t, -bound, bound)


def kaiming_normal_(t, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    fan_in, fan_out = fans(t)
    fan = fan_in if mode == "fan_in" else fan_out
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))
