"""Observation normalization with running statistics.

Policies see ``clip((obs - mean) / std)``.  Without it, an environment whose
observation components differ by orders of magnitude (MuJoCo velocities versus joint
angles) makes one fixed noise std far too large for some inputs and too small for
others.  Workers summarise the raw observations of the episodes they ran; the driver
merges the summaries once per iteration and broadcasts the new mean/std with the next
batch, so all perturbations in one iteration see the same normalization.
"""

from __future__ import annotations

import numpy as np

# A floor on the std keeps near-constant components (e.g. CartPole's early states)
# from being blown up into huge inputs; the clip bounds whatever gets through.
MIN_STD = 1e-2
CLIP = 5.0


class RunningStat:
    """Count, mean and sum of squared deviations (M2) of vectors seen so far.

    ``merge`` uses Chan et al.'s parallel update, so statistics merged from any
    partition of the data equal those of the whole, up to rounding.
    """

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.count = 0.0
        self.mean = np.zeros(self.shape, dtype=np.float64)
        self.m2 = np.zeros(self.shape, dtype=np.float64)

    @property
    def var(self) -> np.ndarray:
        if self.count < 2:
            return np.ones(self.shape)
        return self.m2 / self.count

    @property
    def std(self) -> np.ndarray:
        if self.count < 2:
            return np.ones(self.shape)
        return np.maximum(np.sqrt(self.var), MIN_STD)

    def push_batch(self, x: np.ndarray) -> None:
        """Add the rows of ``x`` (shape ``(n, *shape)``)."""
        x = np.asarray(x, dtype=np.float64).reshape((-1,) + self.shape)
        if len(x):
            mean = x.mean(axis=0)
            self.merge(len(x), mean, ((x - mean) ** 2).sum(axis=0))

    def merge(self, count: float, mean: np.ndarray, m2: np.ndarray) -> None:
        """Fold in another summary ``(count, mean, m2)``."""
        if count <= 0:
            return
        total = self.count + count
        delta = np.asarray(mean, dtype=np.float64) - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * count / total)
        self.count = total

    def summary(self):
        """``(count, mean, m2)``: what workers send and ``merge`` accepts."""
        return self.count, self.mean.copy(), self.m2.copy()

    def state_dict(self) -> dict:
        return {"count": self.count, "mean": self.mean.copy(), "m2": self.m2.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.count = float(state["count"])
        self.mean = np.asarray(state["mean"], dtype=np.float64).reshape(self.shape)
        self.m2 = np.asarray(state["m2"], dtype=np.float64).reshape(self.shape)


class ObsAccumulator:
    """Worker-side sums of raw observations, cheap enough to update every step."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.count = 0
        self.total = np.zeros(self.shape, dtype=np.float64)
        self.total_sq = np.zeros(self.shape, dtype=np.float64)

    def add(self, obs: np.ndarray) -> None:
        self.count += 1
        self.total += obs
        self.total_sq += np.square(obs, dtype=np.float64)

    def summary(self):
        """``(count, mean, m2)`` of the observations added so far."""
        if self.count == 0:
            return 0, np.zeros(self.shape), np.zeros(self.shape)
        mean = self.total / self.count
        m2 = np.maximum(self.total_sq - self.count * mean ** 2, 0.0)
        return self.count, mean, m2


def normalize(obs: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """The policy's view of ``obs``: standardised, clipped, float32."""
    return np.clip((obs - mean) / std, -CLIP, CLIP).astype(np.float32)
