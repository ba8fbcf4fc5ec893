"""The worker and policy in-process (no runtime): determinism, shapes, valid actions."""

import sys
from pathlib import Path

# `examples` is not an installed package: make the repository root importable even
# when pytest is run without `python -m` (which would add the current directory).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from examples.es.config import ESConfig, resolve
from examples.es.noise import create_noise
from examples.es.policy import MLPPolicy
from examples.es.rollout import make_env, space_spec
from examples.es.worker import ESWorker, WorkerSpec


@pytest.fixture(scope="module")
def worker():
    noise = create_noise(100_000, seed=0)
    noise.flags.writeable = False  # as the object store hands it over
    return ESWorker(noise, WorkerSpec("CartPole-v1", hidden=(8, 8)))


def test_batches_are_a_function_of_their_seed(worker):
    theta = np.zeros(worker.dim, dtype=np.float32) + 0.01
    mean, std = np.zeros(4), np.ones(4)
    a = worker.run_perturbations(theta, mean, std, 0.1, num_pairs=3, seed=11)
    b = worker.run_perturbations(theta, mean, std, 0.1, num_pairs=3, seed=11)
    c = worker.run_perturbations(theta, mean, std, 0.1, num_pairs=3, seed=12)
    assert a["returns"].shape == a["lengths"].shape == (3, 2)
    np.testing.assert_array_equal(a["indices"], b["indices"])
    np.testing.assert_array_equal(a["returns"], b["returns"])
    assert not np.array_equal(a["indices"], c["indices"])
    count, obs_mean, m2 = a["obs"]
    assert count == a["lengths"].sum() and obs_mean.shape == (4,) and (m2 >= 0).all()


def test_evaluate_runs_unperturbed_episodes(worker):
    theta = np.zeros(worker.dim, dtype=np.float32)
    out = worker.evaluate(theta, np.zeros(4), np.ones(4), env_seeds=[1, 2])
    assert out["returns"].shape == (2,)
    assert (out["returns"] == out["lengths"]).all()  # CartPole: +1 per step


def test_box_policy_actions_stay_in_bounds():
    env = make_env("Pendulum-v1")
    spec = space_spec(env)
    assert not spec.discrete and spec.act_dim == 1
    policy = MLPPolicy(spec, hidden=(16,), seed=0)
    policy.set_flat_parameters(np.random.default_rng(0).normal(
        scale=5.0, size=policy.num_parameters()).astype(np.float32))
    for obs in np.random.default_rng(1).normal(scale=3, size=(20, spec.obs_dim)):
        action = policy.act(obs.astype(np.float32))
        assert action.shape == env.action_space.shape and env.action_space.contains(action)


def test_policy_init_depends_on_seed_only():
    spec = space_spec(make_env("CartPole-v1"))
    a = MLPPolicy(spec, seed=3).get_flat_parameters()
    b = MLPPolicy(spec, seed=3).get_flat_parameters()
    c = MLPPolicy(spec, seed=4).get_flat_parameters()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and len(a) == 4 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2


def test_config_defaults_and_validation():
    cfg = resolve(ESConfig())
    assert cfg.population == 40 and cfg.hidden == (32, 32) and cfg.pairs_per_task >= 1
    assert resolve(ESConfig(env="Foo-v0", lr=0.5)).lr == 0.5
    with pytest.raises(ValueError):
        resolve(ESConfig(population=1))
    with pytest.raises(ValueError):
        resolve(ESConfig(device="tpu"))


def test_mujoco_defaults_are_a_linear_policy_with_a_fixed_budget():
    cfg = resolve(ESConfig(env="HalfCheetah-v5"))
    assert cfg.hidden == () and cfg.population == 64 and cfg.iterations == 150
    # An explicit target replaces the fixed budget with the safety cap.
    chasing = resolve(ESConfig(env="HalfCheetah-v5", target_return=1000))
    assert chasing.iterations is None and chasing.max_iterations == 300
    assert resolve(ESConfig(env="HalfCheetah-v5", hidden=(16,))).hidden == (16,)


def test_linear_policy_has_one_weight_per_input_output_pair():
    from examples.es.rollout import SpaceSpec
    space = SpaceSpec(obs_dim=5, discrete=False, act_dim=2, act_low=(-1.0, -1.0),
                      act_high=(1.0, 1.0), act_shape=(2,))
    policy = MLPPolicy(space, hidden=(), seed=0)
    assert policy.num_parameters() == 5 * 2 + 2
    action = policy.act(np.ones(5))
    assert action.shape == (2,) and np.all(np.abs(action) <= 1.0)
