"""The arithmetic of ES, free of processes and environments so it can be unit-tested.

- ``mirrored_pair``: antithetic sampling, theta + sigma*eps and theta - sigma*eps.
  For a smooth objective the even (curvature) terms of the Taylor expansion cancel in
  F(theta + sigma*eps) - F(theta - sigma*eps), which lowers the estimator's variance.
- ``centered_ranks``: fitness shaping.  Replacing returns by their ranks scaled into
  [-0.5, 0.5] makes the update invariant to the scale of the reward and keeps a few
  outlier episodes from dominating a step.
- ``es_gradient``: the search-gradient estimate, rebuilt from noise-table offsets.
- ``Adam``: the optimizer, over flat float32 vectors, with L2 weight decay.
"""

from __future__ import annotations

import numpy as np

from .noise import NoiseTable


def mirrored_pair(theta: np.ndarray, eps: np.ndarray, noise_std: float):
    """Return the antithetic parameter pair ``(theta + s*eps, theta - s*eps)``."""
    delta = noise_std * eps
    return theta + delta, theta - delta


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` (any shape) mapped linearly onto [-0.5, 0.5]; ties share a rank.

    Tied values get the mean of their ranks.  The paper's code breaks ties arbitrarily,
    but on CartPole many episodes hit the same cap (500): arbitrary ranks would then
    turn identical returns into a spurious, noisy gradient signal.
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.ravel()
    n = flat.size
    if n < 2:
        return np.zeros_like(x)
    order = np.argsort(flat, kind="stable")
    sorted_vals = flat[order]
    # Boundaries of runs of equal values in sorted order.
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], n]
    mean_rank = (starts + ends - 1) / 2.0  # average 0-based rank of each run
    ranks = np.empty(n, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return (ranks / (n - 1) - 0.5).reshape(x.shape)


def es_gradient(pos: np.ndarray, neg: np.ndarray, indices: np.ndarray,
                noise: NoiseTable, dim: int, noise_std: float,
                batch_size: int = 512) -> np.ndarray:
    """Estimate the gradient of E[F(theta + noise_std * eps)] from mirrored pairs.

    ``pos[i]``/``neg[i]`` are the (possibly shaped) fitnesses of the pair drawn at noise
    offset ``indices[i]``.  Returns ``sum_i (pos_i - neg_i) eps_i / (2 n noise_std)``,
    an unbiased estimate for raw fitness.  Noise slices are stacked ``batch_size`` at a
    time so the sum is a BLAS matrix-vector product rather than a Python loop.
    """
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.asarray(neg, dtype=np.float64)
    if not (pos.shape == neg.shape == np.shape(indices)):
        raise ValueError("pos, neg and indices must have the same length")
    weights = (pos - neg).astype(np.float32)
    grad = np.zeros(dim, dtype=np.float64)
    for start in range(0, len(weights), batch_size):
        idx = indices[start:start + batch_size]
        block = np.stack([noise.get(int(i), dim) for i in idx])
        grad += weights[start:start + batch_size] @ block
    return (grad / (2.0 * max(len(weights), 1) * noise_std)).astype(np.float32)


class Adam:
    """Adam (Kingma & Ba 2015) that *ascends* a flat parameter vector.

    ``weight_decay`` is the paper's L2 coefficient: it pulls parameters toward zero,
    which keeps tanh units out of saturation, where perturbations stop changing
    behaviour and the search gradient vanishes.
    """

    def __init__(self, dim: int, lr: float = 0.01, beta1: float = 0.9,
                 beta2: float = 0.999, eps: float = 1e-8, weight_decay: float = 0.005):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.weight_decay = weight_decay
        self.m = np.zeros(dim, dtype=np.float32)
        self.v = np.zeros(dim, dtype=np.float32)
        self.t = 0

    def step(self, theta: np.ndarray, grad: np.ndarray):
        """Return ``(new_theta, update_ratio)`` after one ascent step along ``grad``.

        ``update_ratio`` is ||step|| / ||theta||, a health signal worth logging: values
        far above ~0.01 usually mean the learning rate is too high.
        """
        # Minimise -F + (wd/2)||theta||^2, the same convention as the paper's code.
        g = -grad + self.weight_decay * theta
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * (g * g)
        lr_t = self.lr * np.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        step = -lr_t * self.m / (np.sqrt(self.v) + self.eps)
        ratio = float(np.linalg.norm(step) / (np.linalg.norm(theta) + 1e-12))
        return (theta + step).astype(np.float32), ratio

    def state_dict(self) -> dict:
        """The optimizer's state, for checkpoints."""
        return {"m": self.m.copy(), "v": self.v.copy(), "t": self.t}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()`` output; raises ValueError on a size mismatch."""
        if np.shape(state["m"]) != self.m.shape:
            raise ValueError("optimizer state does not match the policy size")
        self.m = np.asarray(state["m"], dtype=np.float32).copy()
        self.v = np.asarray(state["v"], dtype=np.float32).copy()
        self.t = int(state["t"])
