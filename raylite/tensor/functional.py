"""Functional API: thin wrappers over primitives plus composite ops.

Everything below the "composites" line is written only in terms of primitives, so it
needs no backward of its own and its gradient is checked for free by the primitives'
tests (the composites are gradient-checked too).
"""

from __future__ import annotations

import numpy as np

from raylite.tensor import backend
from raylite.tensor.ops import elementwise as _ew
from raylite.tensor.ops import linalg as _la
from raylite.tensor.ops import movement as _mv
from raylite.tensor.ops import window as _win
from raylite.tensor.tensor import Tensor


def _pair(value, name):
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


# ------------------------------------------------------------ primitive wrappers
def cat(tensors, dim=0) -> Tensor:
    """Concatenate along an existing dimension. Raises ValueError on shape mismatch."""
    return _mv.Cat.apply(*tensors, dim=dim)


concat = cat


def stack(tensors, dim=0) -> Tensor:
    """Stack along a new dimension. Raises ValueError unless all shapes are equal."""
    return _mv.Stack.apply(*tensors, dim=dim)


def where(cond, a, b) -> Tensor:
    """Elementwise ``a if cond else b``; ``cond`` is a bool tensor/array (no gradient)."""
    cond_data = cond.data if isinstance(cond, Tensor) else cond
    device = next((t.device for t in (cond, a, b) if isinstance(t, Tensor)), "cpu")
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        a = Tensor(a, device=device)
    return _ew.Where.apply(cond_data, a, b)


def linear(x, weight, bias=None) -> Tensor:
    """``x @ weight.T + bias``; weight has shape (out_features, in_features).

    Raises ValueError when x's last dimension is not in_features.
    """
    return _la.Linear.apply(x, weight, bias)


def matmul(a, b) -> Tensor:
    return a @ b


def relu(x) -> Tensor:
    return _ew.Relu.apply(x)


def tanh(x) -> Tensor:
    return _ew.Tanh.apply(x)


def sigmoid(x) -> Tensor:
    return _ew.Sigmoid.apply(x)


def exp(x) -> Tensor:
    return _ew.Exp.apply(x)


def log(x) -> Tensor:
    return _ew.Log.apply(x)


def pad2d(x, padding, value=0.0) -> Tensor:
    """Pad the last two dimensions by ``padding`` (int or (ph, pw)) on both sides."""
    return _win.Pad2d.apply(x, padding=_pair(padding, "padding"), value=value)


# -------------------------------------------------------------------- composites
def logsumexp(x, dim=-1, keepdim=False) -> Tensor:
    """log(sum(exp(x))) over ``dim``, shifted by the max so exp never overflows."""
    # The shift is a constant (detached): its gradient contributions cancel exactly.
    shift = x.detach().max(dim, keepdim=True)
    out = (x - shift).exp().sum(dim, keepdim=True).log() + shift
    return out if keepdim else out.squeeze(dim)


def log_softmax(x, dim=-1) -> Tensor:
    """log(softmax(x)) computed stably as x - logsumexp(x)."""
    return x - logsumexp(x, dim, keepdim=True)


def softmax(x, dim=-1) -> Tensor:
    """exp(x) / sum(exp(x)) over ``dim``, shifted by the max for stability."""
    e = (x - x.detach().max(dim, keepdim=True)).exp()
    return e / e.sum(dim, keepdim=True)


def mse_loss(pred, target, reduction="mean") -> Tensor:
    """Mean (or summed, or per-element) squared error.

    Raises ValueError when shapes differ or ``reduction`` is unknown.
    """
    target_t = target if isinstance(target, Tensor) else Tensor(target, dtype=pred.dtype, device=pred.device)
    if pred.shape != target_t.shape:
        raise ValueError(f"mse_loss: prediction shape {pred.shape} != target shape {target_t.shape}")
    diff = pred - target_t
    sq = diff * diff
    return _reduce(sq, reduction, "mse_loss")


def cross_entropy(logits, target, reduction="mean") -> Tensor:
    """Softmax cross-entropy of (N, C) logits against (N,) integer class targets.

    Raises ValueError for other shapes or an unknown reduction, TypeError when the
    targets are not integers.
    """
    if logits.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, C), got {logits.shape}")
    if isinstance(target, Tensor):
        target_data = target.data
    else:
        target_data = target if backend.is_backend_array(target) else np.asarray(target)
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy targets must be integer class indices, got {target_data.dtype}")
    if target_data.shape != (logits.shape[0],):
        raise ValueError(f"cross_entropy: targets of shape {target_data.shape} for logits {logits.shape}")
    # Gather row i, column target[i] of the log-probabilities with two index arrays.
    target_data = backend.to_device(target_data, logits.device)
    rows = backend.get_xp(logits.device).arange(logits.shape[0])
    picked = _mv.GetItem.apply(log_softmax(logits, dim=1), index=(rows, target_data))
    return _reduce(-picked, reduction, "cross_entropy")


def _reduce(x, reduction, who):
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    if reduction == "none":
        return x
    raise ValueError(f"{who}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def conv2d(x, weight, bias=None, stride=1, padding=0) -> Tensor:
    """2-D convolution (cross-correlation, like PyTorch) via im2col and one matmul.

    x: (N, C, H, W); weight: (O, C, kh, kw); bias: (O,). Raises ValueError when the
    channel counts disagree or the kernel is larger than the padded input.
    """
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(f"conv2d expects 4-D input and weight, got {x.shape} and {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: input has {x.shape[1]} channels, weight expects {weight.shape[1]}")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    if ph or pw:
        x = _win.Pad2d.apply(x, padding=(ph, pw), value=0.0)
    out_c, in_c, kh, kw = weight.shape
    n = x.shape[0]
    cols = _win.Unfold.apply(x, kernel=(kh, kw), stride=(sh, sw))  # (N, OH, OW, C, kh, kw)
    _, oh, ow = cols.shape[:3]
    flat = cols.reshape(n * oh * ow, in_c * kh * kw)
    out = linear(flat, weight.reshape(out_c, in_c * kh * kw), bias)  # (N*OH*OW, O)
    return out.reshape(n, oh, ow, out_c).permute(0, 3, 1, 2)


def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Max over (kh, kw) windows of an (N, C, H, W) input; stride defaults to kernel."""
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects a 4-D (N, C, H, W) input, got {x.shape}")
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(stride if stride is not None else (kh, kw), "stride")
    ph, pw = _pair(padding, "padding")
    if ph or pw:
        x = _win.Pad2d.apply(x, padding=(ph, pw), value=-np.inf)
    cols = _win.Unfold.apply(x, kernel=(kh, kw), stride=(sh, sw))  # (N, OH, OW, C, kh, kw)
    n, oh, ow, c = cols.shape[:4]
    pooled = cols.reshape(n, oh, ow, c, kh * kw).max(dim=-1)
    return pooled.permute(0, 3, 1, 2)
