"""The policy: a tanh MLP from ``raylite.tensor``, driven through a flat parameter vector.

ES never backpropagates, so the network is only ever evaluated: gradients are switched
off once, and the optimizer works on ``get_flat_parameters()`` vectors.  With
``device="cuda"`` the parameters live on the GPU (cupy) and each observation is copied
there; a policy this small is faster on the CPU, but large networks (or many workers
sharing one GPU) are what the option is for.

Actions: discrete spaces take the argmax of the outputs; box spaces put the outputs
through tanh and scale [-1, 1] onto the box, so every action is valid by construction.
"""

from __future__ import annotations

import itertools

import numpy as np

import raylite.tensor as rt
from raylite.tensor import nn

from .rollout import SpaceSpec

# Small initial output weights make the first policies nearly indifferent between
# actions, so the first perturbations already change behaviour (the paper's code
# initialises the output layer with std 0.01 for the same reason).
OUTPUT_SCALE = 0.1


class MLPPolicy:
    """``obs -> [Linear, Tanh] * len(hidden) -> Linear (-> Tanh for boxes) -> action``."""

    def __init__(self, space: SpaceSpec, hidden=(32, 32), device: str = "cpu", seed=None):
        if seed is not None:
            rt.manual_seed(seed)  # the initial parameters are a function of the run's seed
        self.space = space
        self.device = device
        sizes = (space.obs_dim, *hidden)
        layers = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), nn.Tanh()]
        out = nn.Linear(sizes[-1], space.act_dim)
        out.weight.data[...] *= OUTPUT_SCALE
        out.bias.data[...] = 0.0
        layers.append(out)
        if not space.discrete:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.net.requires_grad_(False)
        if device != "cpu":
            self.net.to(device)  # raises RuntimeError when cupy or the GPU is missing
        if not space.discrete:
            low = np.asarray(space.act_low, dtype=np.float64)
            high = np.asarray(space.act_high, dtype=np.float64)
            # Unbounded boxes keep the raw [-1, 1] output.
            finite = np.isfinite(low) & np.isfinite(high)
            self._low = np.where(finite, low, -1.0)
            self._high = np.where(finite, high, 1.0)

    def num_parameters(self) -> int:
        return self.net.num_parameters()

    def get_flat_parameters(self) -> np.ndarray:
        return self.net.get_flat_parameters().astype(np.float32)

    def set_flat_parameters(self, vec: np.ndarray) -> None:
        self.net.set_flat_parameters(vec)

    def act(self, obs: np.ndarray):
        """The action for one normalized observation (an int or a float32 array)."""
        with rt.no_grad():
            out = self.net(rt.tensor(obs, device=self.device)).numpy()
        if self.space.discrete:
            return int(np.argmax(out))
        action = self._low + (out + 1.0) * 0.5 * (self._high - self._low)
        return action.astype(np.float32).reshape(self.space.act_shape)
