"""Optimizers: SGD (momentum, weight decay) and Adam (L2 weight decay).

They update parameter arrays in place (so the Parameter objects, and any module
holding them, stay the same) and never record a graph.
"""

from __future__ import annotations

import math

from raylite.tensor.backend import xp_of


class Optimizer:
    """Base class: keeps the parameter list and clears gradients.

    Raises ValueError for an empty parameter list or a negative learning rate.
    """

    def __init__(self, params, lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        self.lr = lr
        self.state: dict[int, dict] = {}

    def zero_grad(self) -> None:
        """Drop every parameter's gradient (set to None)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * v with v = momentum * v + (grad + weight_decay * p) (PyTorch's form)."""

    def __init__(self, params, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(params, lr)
        if momentum < 0 or weight_decay < 0:
            raise ValueError("momentum and weight_decay must be >= 0")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def step(self) -> None:
        for p in self.params:
            if p.grad is None:
                continue
            g = p.grad.data
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                st = self.state.setdefault(id(p), {})
                buf = st.get("momentum")
                if buf is None:
                    buf = st["momentum"] = g.copy()
                else:
                    buf *= self.momentum
                    buf += g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction, as PyTorch computes it.

    ``weight_decay`` is L2 style: it is added to the gradient before the moments.
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay
        self.t = 0

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        bias1 = 1 - b1**self.t
        bias2_sqrt = math.sqrt(1 - b2**self.t)
        for p in self.params:
            if p.grad is None:
                continue
            g = p.grad.data
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            st = self.state.get(id(p))
            if st is None:
                xp = xp_of(p.data)
                st = self.state[id(p)] = {"m": xp.zeros_like(p.data), "v": xp.zeros_like(p.data)}
            m, v = st["m"], st["v"]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            denom = xp_of(v).sqrt(v)
            denom /= bias2_sqrt
            denom += self.eps
            p.data -= (self.lr / bias1) * (m / denom)
