"""Numerical gradient checking: autograd against central finite differences.

Used by the test-suite for every differentiable op, and handy when writing a new
primitive: ``gradcheck(lambda a, b: a * b, a, b)`` with float64 inputs.
"""

from __future__ import annotations

import numpy as np

from raylite.tensor import backend
from raylite.tensor.autograd import no_grad
from raylite.tensor.tensor import Tensor


def numerical_grad(fn, inputs, weights, index, eps):
    """d sum(fn(*inputs) * weights) / d inputs[index], by central differences."""
    x = inputs[index].data
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)  # a view: writing it perturbs the input in place
    with no_grad():
        for i in range(flat.size):
            orig = flat[i].item()
            flat[i] = orig + eps
            plus = float((backend.to_numpy(fn(*inputs).data) * weights).sum())
            flat[i] = orig - eps
            minus = float((backend.to_numpy(fn(*inputs).data) * weights).sum())
            flat[i] = orig
            grad.reshape(-1)[i] = (plus - minus) / (2 * eps)
    return grad


def gradcheck(fn, *inputs, eps=1e-6, atol=1e-6, rtol=1e-4, seed=0) -> float:
    """Compare autograd and finite-difference gradients of ``fn`` at ``inputs``.

    ``inputs`` are Tensors; those with requires_grad are checked and should be
    float64 (float32 is too coarse for finite differences). The output is reduced
    with fixed random weights so every output element matters. Returns the largest
    absolute difference. Raises AssertionError naming the input that disagrees, and
    ValueError if no input requires grad.
    """
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for t in inputs:
        if isinstance(t, Tensor):
            t.grad = None
    out = fn(*inputs)
    weights = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(Tensor(weights, dtype=out.dtype, device=out.device))
    worst = 0.0
    for i in checked:
        analytic = inputs[i].grad
        analytic = np.zeros(inputs[i].shape) if analytic is None else analytic.numpy()
        numeric = numerical_grad(fn, inputs, weights, i, eps)
        err = np.abs(analytic - numeric)
        worst = max(worst, float(err.max(initial=0.0)))
        if not np.all(err <= atol + rtol * np.abs(numeric)):
            raise AssertionError(
                f"gradcheck: input {i} (shape {inputs[i].shape}) max abs error {err.max():.3g}\n"
                f"analytic:\n{analytic}\nnumeric:\n{numeric}"
            )
    return worst
