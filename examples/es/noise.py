"""The shared noise table.

Salimans et al. avoid shipping perturbation vectors between machines: every worker holds
the same large block of Gaussian noise, so a perturbation is named by one integer (its
offset into the table) and the driver can rebuild any worker's perturbation locally.

The driver creates the table once and ``ray.put``s it; each worker actor receives the
ObjectRef as a top-level constructor argument, which the runtime resolves to a read-only
numpy view of the object store's shared memory.  Workers on one node therefore share a
single copy, however many there are.
"""

from __future__ import annotations

import numpy as np

# 25M float32 = 100 MB: far more distinct slices than any population here draws, yet
# created in about half a second.  The paper used 250M for its 1,440-CPU runs.
DEFAULT_NOISE_SIZE = 25_000_000


def create_noise(size: int = DEFAULT_NOISE_SIZE, seed: int = 123) -> np.ndarray:
    """Return ``size`` i.i.d. standard normal float32 samples drawn from ``seed``."""
    if size <= 0:
        raise ValueError(f"noise table size must be positive, got {size}")
    return np.random.default_rng(seed).standard_normal(size, dtype=np.float32)


class NoiseTable:
    """Read-only view of the noise; a perturbation of dimension ``dim`` is a slice.

    Overlapping slices are correlated, which the paper accepts: with a table much
    larger than ``dim`` two random slices rarely overlap much.
    """

    def __init__(self, noise: np.ndarray):
        if noise.ndim != 1:
            raise ValueError("noise table must be 1-D")
        self.noise = noise

    def __len__(self) -> int:
        return len(self.noise)

    def get(self, index: int, dim: int) -> np.ndarray:
        """The perturbation at ``index``: a zero-copy view of ``dim`` floats."""
        return self.noise[index:index + dim]

    def sample_indices(self, rng: np.random.Generator, dim: int, count: int) -> np.ndarray:
        """Draw ``count`` offsets whose slices of length ``dim`` fit in the table.

        Raises ValueError if the table is shorter than ``dim``.
        """
        if dim > len(self.noise):
            raise ValueError(
                f"noise table ({len(self.noise)} floats) is smaller than the policy "
                f"({dim} parameters); raise --noise-size")
        return rng.integers(0, len(self.noise) - dim + 1, size=count, dtype=np.int64)
