"""Window primitives for convolution and pooling: ``Pad2d`` and ``Unfold`` (im2col).

``Unfold`` copies every (kh, kw) window of an (N, C, H, W) input into an array of
shape (N, OH, OW, C, kh, kw), so that a convolution becomes one matrix product and a
max-pool a max over the last axes. It loops over the kh*kw kernel offsets (a handful)
and copies strided slices, which is fast in numpy and runs unchanged on cupy.
"""

from __future__ import annotations

from raylite.tensor.backend import xp_of
from raylite.tensor.function import UnaryFunction


class Pad2d(UnaryFunction):
    """Constant padding of the last two dimensions by (ph, pw) on each side."""

    def forward(self, a, padding, value=0.0):
        if a.ndim < 2:
            raise ValueError(f"pad2d needs at least 2 dimensions, got shape {a.shape}")
        ph, pw = padding
        self.padding = padding
        widths = [(0, 0)] * (a.ndim - 2) + [(ph, ph), (pw, pw)]
        return xp_of(a).pad(a, widths, mode="constant", constant_values=value)

    def backward(self, g):
        ph, pw = self.padding
        h, w = g.shape[-2], g.shape[-1]
        return (g[..., ph : h - ph, pw : w - pw],)


def _window_slices(i, j, oh, ow, sh, sw):
    """Rows/cols of the input that kernel offset (i, j) sees, for every output position."""
    return slice(i, i + sh * (oh - 1) + 1, sh), slice(j, j + sw * (ow - 1) + 1, sw)


class Unfold(UnaryFunction):
    """im2col: (N, C, H, W) -> (N, OH, OW, C, kh, kw) with the given stride."""

    def forward(self, a, kernel, stride):
        if a.ndim != 4:
            raise ValueError(f"unfold expects (N, C, H, W), got shape {a.shape}")
        n, c, h, w = a.shape
        kh, kw = kernel
        sh, sw = stride
        if kh > h or kw > w:
            raise ValueError(f"kernel {kernel} is larger than the (padded) input {(h, w)}")
        oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
        self.in_shape, self.kernel, self.stride, self.out_hw = a.shape, kernel, stride, (oh, ow)
        cols = xp_of(a).empty((n, oh, ow, c, kh, kw), dtype=a.dtype)
        # A (N, OH, OW, C) view of the input per offset; written into the column array.
        view = a.transpose(0, 2, 3, 1)
        for i in range(kh):
            for j in range(kw):
                rows, cols_ = _window_slices(i, j, oh, ow, sh, sw)
                cols[..., i, j] = view[:, rows, cols_, :]
        return cols

    def describe(self):
        return f"Unfold(kernel={self.kernel}, stride={self.stride})"

    def backward(self, g):
        kh, kw = self.kernel
        sh, sw = self.stride
        oh, ow = self.out_hw
        n, c, h, w = self.in_shape
        grad = xp_of(g).zeros((n, h, w, c), dtype=g.dtype)
        # Overlapping windows (stride < kernel) add up, hence += per offset.
        for i in range(kh):
            for j in range(kw):
                rows, cols_ = _window_slices(i, j, oh, ow, sh, sw)
                grad[:, rows, cols_, :] += g[..., i, j]
        return (grad.transpose(0, 3, 1, 2),)
