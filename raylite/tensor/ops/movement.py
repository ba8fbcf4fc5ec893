"""Movement primitives: they rearrange or select values without arithmetic.

Reshape, permute, expand (broadcast_to), indexing, concatenation, stacking and
device/dtype moves. Their backward passes route the gradient back to where each
value came from; indexing with arrays uses scatter-add so repeated indices (an
embedding lookup of the same token twice) accumulate.
"""

from __future__ import annotations

import numpy as np

from raylite.tensor import backend
from raylite.tensor.backend import xp_of
from raylite.tensor.function import Function, UnaryFunction


class Reshape(UnaryFunction):
    def forward(self, a, shape):
        self.in_shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {a.shape} into {tuple(shape)}") from None

    def describe(self):
        return "Reshape"

    def backward(self, g):
        return (g.reshape(self.in_shape),)


class Permute(UnaryFunction):
    def forward(self, a, dims):
        if sorted(dims) != list(range(a.ndim)):
            raise ValueError(f"permute dims {tuple(dims)} are not a permutation of {a.ndim} axes")
        self.dims = tuple(dims)
        return a.transpose(self.dims)

    def describe(self):
        return f"Permute{self.dims}"

    def backward(self, g):
        return (g.transpose(tuple(int(d) for d in np.argsort(self.dims))),)


class Expand(UnaryFunction):
    """Broadcast to a larger shape (a read-only view); backward sums back."""

    def forward(self, a, shape):
        self.in_shape = a.shape
        try:
            return xp_of(a).broadcast_to(a, shape)
        except ValueError:
            raise ValueError(f"cannot expand shape {a.shape} to {tuple(shape)}") from None

    def backward(self, g):
        from raylite.tensor.ops.elementwise import unbroadcast  # noqa: PLC0415

        return (unbroadcast(g, self.in_shape),)


def _gathers(index) -> bool:
    """True if the index selects with integer arrays, which may repeat elements.

    Ints, slices, None, Ellipsis and boolean masks never pick an element twice, so
    their backward can assign instead of scatter-add.
    """
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "dtype") and p.dtype.kind in "iu" and p.ndim > 0 for p in parts)


class GetItem(UnaryFunction):
    """``a[index]`` with ints, slices, None, Ellipsis, and integer/boolean arrays."""

    def forward(self, a, index):
        self.in_shape, self.dtype, self.index = a.shape, a.dtype, index
        try:
            return a[index]
        except IndexError as exc:
            raise ValueError(f"index {index!r} is invalid for shape {a.shape}: {exc}") from None

    def describe(self):
        return "GetItem"

    def backward(self, g):
        xp = xp_of(g)
        full = xp.zeros(self.in_shape, dtype=g.dtype)
        if _gathers(self.index):
            backend.scatter_add(full, self.index, g)
        else:
            full[self.index] = g
        return (full,)


class Cat(Function):
    def forward(self, *arrays, dim=0):
        if not arrays:
            raise ValueError("cat needs at least one tensor")
        try:
            out = xp_of(arrays[0]).concatenate(arrays, axis=dim)
        except ValueError as exc:
            raise ValueError(f"cat: {exc}") from None
        self.dim = dim % out.ndim
        self.sizes = [x.shape[self.dim] for x in arrays]
        return out

    def backward(self, g):
        bounds = np.cumsum(self.sizes)[:-1].tolist()
        return tuple(xp_of(g).split(g, bounds, axis=self.dim))


class Stack(Function):
    def forward(self, *arrays, dim=0):
        if not arrays:
            raise ValueError("stack needs at least one tensor")
        try:
            out = xp_of(arrays[0]).stack(arrays, axis=dim)
        except ValueError as exc:
            raise ValueError(f"stack: {exc}") from None
        self.dim = dim % out.ndim
        return out

    def backward(self, g):
        return tuple(g.take(i, axis=self.dim) for i in range(g.shape[self.dim]))


class ToDevice(UnaryFunction):
    """Copy to another device and/or dtype; the gradient goes back the same way."""

    def forward(self, a, device, dtype=None):
        self.src_device, self.src_dtype = backend.device_of(a), a.dtype
        return backend.to_device(a, device, dtype)

    def describe(self):
        return "ToDevice"

    def backward(self, g):
        return (backend.to_device(g, self.src_device, self.src_dtype),)
