"""The worker actor: evaluates batches of mirrored perturbations.

One call runs many episodes (``num_pairs`` pairs) so the per-call cost of the runtime
is paid once per batch rather than once per episode.  Only small things cross the
wire: the driver sends the parameter vector, the observation mean/std and a seed; the
worker answers with noise offsets, returns, episode lengths and an observation
summary.  The noise itself never travels after the one ``ray.put``.

The class is plain Python; ``trainer.py`` wraps it with ``ray.remote``, so the same
class runs on raylite and on Ray (and can be unit-tested in-process).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from .noise import NoiseTable
from .obs_stats import ObsAccumulator
from .policy import MLPPolicy
from .rollout import make_env, run_episode, space_spec


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to build its environment and policy."""

    env_id: str
    hidden: tuple = (32, 32)
    device: str = "cpu"
    env_kwargs: dict = field(default_factory=dict)
    max_episode_steps: int | None = None    # training episodes only; evaluation uses the env's limit


class ESWorker:
    """Holds one environment, one policy and a view of the shared noise table."""

    def __init__(self, noise: np.ndarray, spec: WorkerSpec):
        # ``noise`` is the resolved ObjectRef: a read-only view of shared memory.
        self.noise = NoiseTable(noise)
        self.spec = spec
        self.env = make_env(spec.env_id, spec.env_kwargs)
        self.space = space_spec(self.env)
        self.policy = MLPPolicy(self.space, spec.hidden, device=spec.device)
        self.dim = self.policy.num_parameters()

    def pid(self) -> int:
        """The worker's process id (tests kill it to exercise fault tolerance)."""
        return os.getpid()

    def node(self) -> str:
        """The id of the node this worker runs on (benchmarks count the nodes in use)."""
        import sys
        # Both may be imported (a Ray worker imports raylite for its tensors): ask the
        # one this process is connected to.
        for runtime in ("ray", "raylite"):
            module = sys.modules.get(runtime)
            if module is not None and getattr(module, "is_initialized", lambda: False)():
                return str(module.get_runtime_context().get_node_id())
        return os.uname().nodename

    def policy_device(self) -> str:
        """Where the policy's parameters live: "cpu" or "cuda:N"."""
        return next(iter(self.policy.net.parameters())).device

    def noise_info(self) -> dict:
        """How the noise table arrived: a read-only view that owns no memory means the
        runtime handed over shared memory rather than a private copy."""
        arr = self.noise.noise
        return {"size": len(arr), "writeable": bool(arr.flags.writeable),
                "owns_data": bool(arr.flags.owndata)}

    def ready(self) -> bool:
        """Returns once the constructor has run; the driver waits on it at start-up."""
        return True

    def run_perturbations(self, theta, obs_mean, obs_std, noise_std: float,
                          num_pairs: int, seed: int, collect_obs: bool = True) -> dict:
        """Evaluate ``num_pairs`` mirrored pairs around ``theta``.

        Offsets and environment seeds come from ``seed`` alone, so a retried task (after
        a crash or an actor restart) reproduces exactly the same result.  Both members
        of a pair start from the same environment seed, which cancels start-state luck
        out of their difference.
        """
        start, cpu = time.perf_counter(), time.thread_time()
        theta = np.asarray(theta, dtype=np.float32)
        rng = np.random.default_rng(seed)
        indices = self.noise.sample_indices(rng, self.dim, num_pairs)
        env_seeds = rng.integers(0, 2**31 - 1, size=num_pairs)
        returns = np.zeros((num_pairs, 2), dtype=np.float64)
        lengths = np.zeros((num_pairs, 2), dtype=np.int64)
        acc = ObsAccumulator((self.space.obs_dim,)) if collect_obs else None
        for i in range(num_pairs):
            delta = noise_std * self.noise.get(int(indices[i]), self.dim)
            for j, params in enumerate((theta + delta, theta - delta)):
                self.policy.set_flat_parameters(params)
                returns[i, j], lengths[i, j] = run_episode(
                    self.env, self.policy, obs_mean, obs_std, seed=int(env_seeds[i]),
                    max_steps=self.spec.max_episode_steps, accumulator=acc)
        return {"indices": indices, "returns": returns, "lengths": lengths,
                "obs": acc.summary() if acc is not None else None,
                "busy": time.perf_counter() - start, "cpu": time.thread_time() - cpu}

    def evaluate(self, theta, obs_mean, obs_std, env_seeds) -> dict:
        """Run one episode per seed with the unperturbed policy; observations are not recorded."""
        start, cpu = time.perf_counter(), time.thread_time()
        self.policy.set_flat_parameters(np.asarray(theta, dtype=np.float32))
        returns, lengths = [], []
        for env_seed in env_seeds:
            ret, steps = run_episode(self.env, self.policy, obs_mean, obs_std, seed=int(env_seed))
            returns.append(ret)
            lengths.append(steps)
        return {"returns": np.asarray(returns), "lengths": np.asarray(lengths, dtype=np.int64),
                "busy": time.perf_counter() - start, "cpu": time.thread_time() - cpu}
