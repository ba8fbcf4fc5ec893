"""Environments and episodes.

Any gymnasium environment with a Box observation space and a Discrete or Box action
space works: ``make_env("CartPole-v1")``, ``make_env("Pendulum-v1")``, and after
``pip install "gymnasium[mujoco]"`` the MuJoCo tasks (``HalfCheetah-v5``,
``Humanoid-v5``, ...).  ``env_kwargs`` go straight to ``gymnasium.make``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .obs_stats import ObsAccumulator, normalize


@dataclass(frozen=True)
class SpaceSpec:
    """What the policy needs to know about an environment, without gymnasium types.

    Plain data so it pickles cheaply to workers and into checkpoints.
    """

    obs_dim: int
    discrete: bool
    act_dim: int                      # number of actions (discrete) or action size (box)
    act_low: tuple | None = None      # box bounds, flattened
    act_high: tuple | None = None
    act_shape: tuple = ()


def make_env(env_id: str, env_kwargs: dict | None = None, max_episode_steps: int | None = None):
    """Build a gymnasium environment; raises gymnasium's errors for unknown ids.

    ``max_episode_steps`` overrides the registered time limit (None keeps it).
    """
    import gymnasium as gym  # imported here so the pure modules never need it

    kwargs = dict(env_kwargs or {})
    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make(env_id, **kwargs)


def space_spec(env) -> SpaceSpec:
    """Describe ``env``'s spaces; raises TypeError for spaces this example can't drive."""
    from gymnasium import spaces

    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, spaces.Box):
        raise TypeError(f"need a Box observation space, got {obs_space}")
    obs_dim = int(np.prod(obs_space.shape))
    if isinstance(act_space, spaces.Discrete):
        return SpaceSpec(obs_dim, True, int(act_space.n))
    if isinstance(act_space, spaces.Box):
        return SpaceSpec(obs_dim, False, int(np.prod(act_space.shape)),
                         tuple(act_space.low.ravel().tolist()),
                         tuple(act_space.high.ravel().tolist()),
                         tuple(act_space.shape))
    raise TypeError(f"need a Discrete or Box action space, got {act_space}")


def env_reward_threshold(env_id: str):
    """The registry's "solved" return for ``env_id`` (475 for CartPole-v1), or None."""
    import gymnasium as gym

    return gym.spec(env_id).reward_threshold


def run_episode(env, policy, obs_mean, obs_std, *, seed=None, max_steps=None,
                accumulator: ObsAccumulator | None = None):
    """Play one episode with ``policy``; return ``(total_reward, steps)``.

    Raw observations are added to ``accumulator`` (when given) before normalization,
    so the driver's statistics describe what the environment emits.
    """
    obs, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        obs = np.asarray(obs, dtype=np.float64).ravel()
        if accumulator is not None:
            accumulator.add(obs)
        action = policy.act(normalize(obs, obs_mean, obs_std))
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        steps += 1
        if terminated or truncated or (max_steps is not None and steps >= max_steps):
            return total, steps
