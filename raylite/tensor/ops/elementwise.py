"""Elementwise primitives: broadcasting arithmetic and unary math.

Binary ops broadcast like numpy; their backward sums the gradient back down to each
input's shape (``unbroadcast``). Either input may be a Python scalar, which is a
constant and gets no gradient. Backward code only uses array methods and ``xp_of``,
so the same op runs on numpy and cupy.
"""

from __future__ import annotations

import numpy as np

from raylite.tensor.backend import xp_of
from raylite.tensor.function import Function, UnaryFunction

_shape = np.shape  # works for numpy arrays, cupy arrays and Python scalars


def unbroadcast(grad, shape):
    """Sum ``grad`` over the dimensions that broadcasting added or stretched."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


# ------------------------------------------------------------------ binary
class Add(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.a_shape), unbroadcast(g, self.b_shape)


class Sub(Function):
    def forward(self, a, b):
        self.a_shape, self.b_shape = _shape(a), _shape(b)
        return a - b

    def backward(self, g):
        gb = -unbroadcast(g, self.b_shape) if self.needs[1] else None
        return unbroadcast(g, self.a_shape), gb


class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        ga = unbroadcast(g * self.b, _shape(self.a)) if self.needs[0] else None
        gb = unbroadcast(g * self.a, _shape(self.b)) if self.needs[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = unbroadcast(g / b, _shape(a)) if self.needs[0] else None
        gb = unbroadcast(-g * a / (b * b), _shape(b)) if self.needs[1] else None
        return ga, gb


class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        if self.needs[0]:
            ga = unbroadcast(g * b * a ** (b - 1), _shape(a))
        if self.needs[1]:
            gb = unbroadcast(g * self.out * xp_of(a).log(a), _shape(b))
        return ga, gb


class Where(Function):
    """``where(cond, a, b)``: cond is a boolean constant, a and b get gradients."""

    def forward(self, cond, a, b):
        self.cond, self.a_shape, self.b_shape = cond, _shape(a), _shape(b)
        return xp_of(cond).where(cond, a, b)

    def backward(self, g):
        xp = xp_of(g)
        zero = xp.zeros((), dtype=g.dtype)
        ga = unbroadcast(xp.where(self.cond, g, zero), self.a_shape) if self.needs[1] else None
        gb = unbroadcast(xp.where(self.cond, zero, g), self.b_shape) if self.needs[2] else None
        return None, ga, gb


# ------------------------------------------------------------------- unary
class Neg(UnaryFunction):
    def forward(self, a):
        return -a

    def backward(self, g):
        return (-g,)


class Exp(UnaryFunction):
    def forward(self, a):
        self.out = xp_of(a).exp(a)
        return self.out

    def backward(self, g):
        return (g * self.out,)


class Log(UnaryFunction):
    def forward(self, a):
        self.a = a
        return xp_of(a).log(a)

    def backward(self, g):
        return (g / self.a,)


class Sqrt(UnaryFunction):
    def forward(self, a):
        self.out = xp_of(a).sqrt(a)
        return self.out

    def backward(self, g):
        return (g / (2 * self.out),)


class Abs(UnaryFunction):
    def forward(self, a):
        self.a = a
        return abs(a)

    def backward(self, g):
        return (g * xp_of(g).sign(self.a),)


class Tanh(UnaryFunction):
    def forward(self, a):
        self.out = xp_of(a).tanh(a)
        return self.out

    def backward(self, g):
        out = self.out
        return (g * (1 - out * out),)


class Sigmoid(UnaryFunction):
    def forward(self, a):
        # 0.5 * (1 + tanh(x / 2)) equals 1 / (1 + exp(-x)) but never overflows.
        self.out = 0.5 * (1 + xp_of(a).tanh(0.5 * a))
        return self.out

    def backward(self, g):
        out = self.out
        return (g * out * (1 - out),)


class Relu(UnaryFunction):
    def forward(self, a):
        self.mask = a > 0
        return a * self.mask

    def backward(self, g):
        return (g * self.mask,)


class Clamp(UnaryFunction):
    """Clip into [low, high] (either may be None); gradient flows inside the range."""

    def forward(self, a, low=None, high=None):
        self.inside = None
        if low is not None:
            self.inside = a >= low
        if high is not None:
            upper = a <= high
            self.inside = upper if self.inside is None else self.inside & upper
        return xp_of(a).clip(a, low, high)

    def backward(self, g):
        return (g if self.inside is None else g * self.inside,)
