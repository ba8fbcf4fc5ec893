"""ES arithmetic: centered ranks, mirrored sampling, the gradient estimate and Adam."""

import sys
from pathlib import Path

# `examples` is not an installed package: make the repository root importable even
# when pytest is run without `python -m` (which would add the current directory).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pytest

from examples.es.es_math import Adam, centered_ranks, es_gradient, mirrored_pair
from examples.es.noise import NoiseTable, create_noise


def test_centered_ranks_span_and_order():
    x = np.array([10.0, -3.0, 7.0, 0.5, 100.0])
    r = centered_ranks(x)
    assert r.min() == -0.5 and r.max() == 0.5
    assert np.array_equal(np.argsort(r), np.argsort(x))
    assert abs(r.sum()) < 1e-12
    np.testing.assert_allclose(np.sort(r), np.linspace(-0.5, 0.5, 5))


def test_centered_ranks_keep_shape_and_share_ties():
    x = np.array([[500.0, 500.0], [20.0, 500.0], [9.0, 30.0]])
    r = centered_ranks(x)
    assert r.shape == x.shape
    # The three 500s are tied: one shared rank, so a tied pair contributes no signal.
    assert r[0, 0] == r[0, 1] == r[1, 1]
    assert r[0, 0] - r[0, 1] == 0.0
    assert abs(r.sum()) < 1e-12
    assert r[2, 0] == -0.5


def test_centered_ranks_invariant_to_monotone_transform():
    x = np.random.default_rng(0).normal(size=50)
    np.testing.assert_allclose(centered_ranks(x), centered_ranks(np.exp(3 * x) - 7))


def test_centered_ranks_degenerate():
    assert centered_ranks(np.array([3.0])).tolist() == [0.0]
    assert centered_ranks(np.full(4, 2.0)).tolist() == [0.0] * 4


def test_mirrored_pair_is_symmetric_about_theta():
    rng = np.random.default_rng(1)
    theta, eps = rng.normal(size=10), rng.normal(size=10)
    plus, minus = mirrored_pair(theta, eps, 0.1)
    np.testing.assert_allclose((plus + minus) / 2, theta)
    np.testing.assert_allclose(plus - minus, 0.2 * eps)


def test_noise_table_slices_are_views():
    table = NoiseTable(create_noise(1000, seed=3))
    idx = table.sample_indices(np.random.default_rng(0), dim=100, count=50)
    assert idx.min() >= 0 and idx.max() <= 900
    s = table.get(int(idx[0]), 100)
    assert s.shape == (100,) and np.shares_memory(s, table.noise)
    with pytest.raises(ValueError):
        table.sample_indices(np.random.default_rng(0), dim=2000, count=1)


def _quadratic(dim, rng):
    a = rng.normal(size=(dim, dim))
    hessian = a @ a.T / dim + np.eye(dim)       # positive definite
    optimum = rng.normal(size=dim)

    def fitness(theta):                          # to be maximised
        d = theta - optimum
        return -0.5 * d @ hessian @ d

    def true_grad(theta):
        return -hessian @ (theta - optimum)
    return fitness, true_grad, optimum


def _mirrored_returns(fitness, theta, table, dim, sigma, n, seed):
    idx = table.sample_indices(np.random.default_rng(seed), dim, n)
    pos = np.array([fitness(theta + sigma * table.get(int(i), dim)) for i in idx])
    neg = np.array([fitness(theta - sigma * table.get(int(i), dim)) for i in idx])
    return idx, pos, neg


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_gradient_estimate_matches_quadratic_gradient():
    dim, sigma, n = 30, 0.05, 3000
    rng = np.random.default_rng(42)
    fitness, true_grad, _ = _quadratic(dim, rng)
    theta = rng.normal(size=dim)
    table = NoiseTable(create_noise(1_000_000, seed=7))
    idx, pos, neg = _mirrored_returns(fitness, theta, table, dim, sigma, n, seed=5)

    est = es_gradient(pos, neg, idx, table, dim, sigma, batch_size=256)
    g = true_grad(theta)
    assert _cosine(est, g) > 0.95
    # With raw fitness the estimator is unbiased, so the scale matches too.
    assert 0.8 < np.linalg.norm(est) / np.linalg.norm(g) < 1.2

    # Rank shaping changes the scale but keeps the direction.
    shaped = centered_ranks(np.stack([pos, neg], axis=1))
    est_ranked = es_gradient(shaped[:, 0], shaped[:, 1], idx, table, dim, sigma)
    assert _cosine(est_ranked, g) > 0.85


def test_es_with_adam_climbs_a_quadratic():
    dim, sigma = 20, 0.05
    rng = np.random.default_rng(0)
    fitness, _, optimum = _quadratic(dim, rng)
    table = NoiseTable(create_noise(200_000, seed=1))
    theta = np.zeros(dim, dtype=np.float32)
    opt = Adam(dim, lr=0.05, weight_decay=0.0)
    start = np.linalg.norm(theta - optimum)
    for it in range(200):
        idx, pos, neg = _mirrored_returns(fitness, theta, table, dim, sigma, 50, seed=it)
        shaped = centered_ranks(np.stack([pos, neg], axis=1))
        grad = es_gradient(shaped[:, 0], shaped[:, 1], idx, table, dim, sigma)
        theta, ratio = opt.step(theta, grad)
        assert theta.dtype == np.float32 and ratio >= 0
    assert np.linalg.norm(theta - optimum) < 0.1 * start


def test_adam_weight_decay_and_state_roundtrip():
    opt = Adam(3, lr=0.1, weight_decay=0.5)
    theta = np.array([1.0, -2.0, 0.0], dtype=np.float32)
    new, _ = opt.step(theta, np.zeros(3, dtype=np.float32))
    # With no fitness signal the L2 term shrinks parameters toward zero.
    assert abs(new[0]) < 1.0 and abs(new[1]) < 2.0 and new[2] == 0.0
    other = Adam(3, lr=0.1, weight_decay=0.5)
    other.load_state_dict(opt.state_dict())
    a, _ = opt.step(new, np.ones(3, dtype=np.float32))
    b, _ = other.step(new, np.ones(3, dtype=np.float32))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError):
        Adam(4).load_state_dict(opt.state_dict())
