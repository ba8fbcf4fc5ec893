"""raylite.tensor tensors travel through the runtime zero-copy: a CPU tensor's buffer
goes into shared memory once and is mapped, not copied, by every reader."""
from __future__ import annotations

import os

import numpy as np
import pytest

import raylite as ray
import raylite.tensor as rt
from tests.conftest import backing_file


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2)
    yield ray.api.connection()
    ray.shutdown()


@ray.remote
def describe(t):
    arr = t.numpy()
    return type(t).__name__, t.shape, t.device, float(arr.sum()), backing_file(arr.ctypes.data)


def test_tensor_put_get_is_zero_copy(cluster):
    t = rt.tensor(np.arange(1_000_000, dtype=np.float32))
    ref = ray.put(t)
    out = ray.get(ref)
    assert isinstance(out, rt.Tensor)
    assert out.shape == (1_000_000,) and out.device == "cpu"
    np.testing.assert_array_equal(out.numpy(), t.numpy())
    expected = os.path.join(cluster.worker.io.store_dir, ref.hex())
    assert backing_file(out.numpy().ctypes.data) == expected


def test_tensor_argument_mapped_by_the_worker(cluster):
    t = rt.ones(500, 500)
    ref = ray.put(t)
    name, shape, device, total, path = ray.get(describe.remote(ref))
    assert (name, shape, device, total) == ("Tensor", (500, 500), "cpu", 250000.0)
    assert path == os.path.join(cluster.worker.io.store_dir, ref.hex())


def test_tensor_math_on_a_received_tensor_and_back(cluster):
    @ray.remote
    def step(w, x):
        with rt.no_grad():
            return (x @ w).tanh()

    w = rt.randn(64, 8)
    x = rt.randn(32, 64)
    out = ray.get(step.remote(ray.put(w), x))
    expected = np.tanh(x.numpy() @ w.numpy())
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_requires_grad_survives_the_trip(cluster):
    t = rt.randn(3, 3, requires_grad=True)
    back = ray.get(ray.put(t))
    assert back.requires_grad
    loss = (back * back).sum()
    loss.backward()
    np.testing.assert_allclose(back.grad.numpy(), 2 * t.numpy(), rtol=1e-6)
