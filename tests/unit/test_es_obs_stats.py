"""Observation statistics: worker summaries merged on the driver equal the whole."""

import sys
from pathlib import Path

# `examples` is not an installed package: make the repository root importable even
# when pytest is run without `python -m` (which would add the current directory).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

from examples.es.obs_stats import CLIP, MIN_STD, ObsAccumulator, RunningStat, normalize


def _data(n=3000, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(loc=[0, 10, -3, 1e3, 0], scale=[1, 0.1, 5, 50, 1e-4], size=(n, dim))


def test_merge_of_worker_summaries_equals_stats_of_all_data():
    x = _data()
    stat = RunningStat((5,))
    # Three "workers" of uneven size, merged in two separate rounds.
    for part in (x[:100], x[100:1700], x[1700:]):
        acc = ObsAccumulator((5,))
        for row in part:
            acc.add(row)
        stat.merge(*acc.summary())
    assert stat.count == len(x)
    np.testing.assert_allclose(stat.mean, x.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(stat.var, x.var(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stat.std, np.maximum(x.std(axis=0), MIN_STD), rtol=1e-6)


def test_merge_is_order_independent_and_matches_push_batch():
    x = _data(seed=1)
    a, b = RunningStat((5,)), RunningStat((5,))
    a.push_batch(x[:1000])
    a.push_batch(x[1000:])
    b.push_batch(x[2000:])
    b.push_batch(x[:2000])
    np.testing.assert_allclose(a.mean, b.mean)
    np.testing.assert_allclose(a.m2, b.m2, rtol=1e-9)
    c = RunningStat((5,))
    c.merge(*a.summary())
    np.testing.assert_allclose(c.mean, a.mean)


def test_empty_stat_is_identity_and_empty_merge_is_noop():
    stat = RunningStat((3,))
    np.testing.assert_array_equal(stat.mean, 0)
    np.testing.assert_array_equal(stat.std, 1)
    stat.merge(*ObsAccumulator((3,)).summary())
    assert stat.count == 0


def test_normalize_clips_and_returns_float32():
    out = normalize(np.array([0.0, 100.0, -100.0]), np.zeros(3), np.ones(3))
    assert out.dtype == np.float32
    assert out.tolist() == [0.0, CLIP, -CLIP]


def test_state_dict_roundtrip():
    stat = RunningStat((5,))
    stat.push_batch(_data(n=10))
    other = RunningStat((5,))
    other.load_state_dict(stat.state_dict())
    np.testing.assert_array_equal(other.m2, stat.m2)
    assert other.count == stat.count
