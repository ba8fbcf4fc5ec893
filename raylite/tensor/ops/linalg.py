"""Matrix products: batched ``MatMul`` and the fused ``Linear`` (x @ W.T + b).

``Linear`` is a primitive rather than a composite of transpose, matmul and add
because it is the hot op of every MLP: one recorded node instead of three, and its
backward skips the input gradient when the input is data (the first layer).
"""

from __future__ import annotations

from raylite.tensor.autograd import grad_mode
from raylite.tensor.function import Function
from raylite.tensor.ops.elementwise import unbroadcast
from raylite.tensor.tensor import Tensor


def _swap(x):
    return x.swapaxes(-1, -2)


class MatMul(Function):
    """numpy ``matmul`` semantics: 1-D operands are promoted, batch dims broadcast."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul needs operands with at least one dimension; use * for scalars")
        if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
            raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        # Promote 1-D operands to matrices so one formula covers every case, then
        # undo the promotion on the way out.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        # The output lost b's column axis (last) and/or a's row axis (second to last):
        # restore the last one first so the row axis lands in the right place.
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        ga = gb = None
        if self.needs[0]:
            ga = unbroadcast(g @ _swap(b2), a2.shape)
            ga = ga.reshape(a.shape)
        if self.needs[1]:
            gb = unbroadcast(_swap(a2) @ g, b2.shape)
            gb = gb.reshape(b.shape)
        return ga, gb


class Linear(Function):
    """``x @ weight.T + bias`` with x of shape (..., in), weight (out, in), bias (out,)."""

    @classmethod
    def apply(cls, x, weight, bias=None):
        """``Function.apply`` specialised to (x, weight, bias), the MLP hot path.

        Raises TypeError for non-Tensor inputs, ValueError for mixed devices or shapes.
        """
        if not (isinstance(x, Tensor) and isinstance(weight, Tensor)):
            raise TypeError("linear expects Tensors for the input and the weight")
        device = x.device
        if weight.device != device or (bias is not None and bias.device != device):
            raise ValueError(f"linear: input, weight and bias must be on one device, got {device} and {weight.device}")
        fn = cls()
        result = Tensor._wrap(fn.forward(x.data, weight.data, None if bias is None else bias.data), device)
        if grad_mode.enabled and (x.requires_grad or weight.requires_grad
                                  or (bias is not None and bias.requires_grad)):
            fn._record(result, (x, weight, bias))
        return result

    def forward(self, x, weight, bias=None):
        if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
            raise ValueError(
                f"linear: input with last dimension {x.shape[-1:]} does not match "
                f"weight of shape {weight.shape} (out_features, in_features)"
            )
        self.x, self.weight = x, weight
        out = x @ weight.T
        if bias is not None:
            out += bias  # ``out`` is a fresh array, so adding in place is safe
        return out

    def backward(self, g):
        x, w = self.x, self.weight
        need_x, need_w, need_b = self.needs
        gx = g @ w if need_x else None
        # Weight and bias gradients sum over every leading (batch, time, ...) axis.
        g2 = g.reshape(-1, g.shape[-1])
        gw = g2.T @ x.reshape(-1, x.shape[-1]) if need_w else None
        gb = g2.sum(axis=0) if need_b else None
        return gx, gw, gb
