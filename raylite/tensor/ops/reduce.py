"""Reductions: ``Sum`` and ``Max`` over all or some dimensions.

Mean, min, logsumexp and friends are composites of these (see functional.py and
Tensor methods). The backward of a reduction re-expands the gradient to the input
shape: with keepdim=False the reduced axes are first put back as size-1 axes.
"""

from __future__ import annotations

from raylite.tensor.backend import xp_of
from raylite.tensor.function import UnaryFunction


def normalize_dims(dim, ndim: int):
    """``dim`` (None, int or sequence) as a sorted tuple of non-negative axes.

    Raises ValueError for an axis out of range or repeated, TypeError for non-ints.
    """
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    out = []
    for d in dims:
        if not isinstance(d, int):
            raise TypeError(f"dimension must be an int, got {type(d).__name__}")
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"dimension {d} out of range for a {ndim}-D tensor")
        out.append(d % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated dimension in {dim}")
    return tuple(sorted(out))


def _expand_back(g, in_shape, dims, keepdim):
    if not keepdim:
        shape = list(g.shape)
        for d in dims:  # sorted ascending, so each insert lands at its final place
            shape.insert(d, 1)
        g = g.reshape(shape)
    return g


class Sum(UnaryFunction):
    def forward(self, a, dim=None, keepdim=False):
        self.in_shape = a.shape
        self.dims = normalize_dims(dim, a.ndim) if a.ndim else ()
        self.keepdim = keepdim
        return a.sum(axis=self.dims, keepdims=keepdim)

    def describe(self):
        return f"Sum(dim={self.dims})"

    def backward(self, g):
        g = _expand_back(g, self.in_shape, self.dims, self.keepdim)
        return (xp_of(g).broadcast_to(g, self.in_shape),)


class Max(UnaryFunction):
    """Maximum values; the gradient is shared equally between tied maxima."""

    def forward(self, a, dim=None, keepdim=False):
        if a.size == 0:
            raise ValueError("max of an empty tensor")
        self.a = a
        self.dims = normalize_dims(dim, a.ndim) if a.ndim else ()
        self.keepdim = keepdim
        self.out = a.max(axis=self.dims, keepdims=True)
        return self.out if keepdim else self.out.reshape(
            [n for i, n in enumerate(a.shape) if i not in self.dims]
        )

    def describe(self):
        return f"Max(dim={self.dims})"

    def backward(self, g):
        g = _expand_back(g, self.a.shape, self.dims, self.keepdim)
        mask = self.a == self.out
        count = mask.sum(axis=self.dims, keepdims=True)
        return (mask * (g / count).astype(g.dtype, copy=False),)
