"""GPU workers: num_gpus tasks and actors get CUDA_VISIBLE_DEVICES and run cupy
tensors; CUDA tensors travel through the object store and land back on the GPU.
Skipped where cupy or an NVIDIA GPU is missing (CI); run on a GPU machine."""
from __future__ import annotations

import numpy as np
import pytest

import raylite as ray
from raylite.cluster import detect_gpus
from raylite.tensor import backend

pytestmark = pytest.mark.skipif(not backend.cuda_available() or detect_gpus() == 0,
                                reason="needs cupy and a CUDA GPU")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2)
    yield
    ray.shutdown()


def test_gpus_detected(cluster):
    assert ray.cluster_resources().get("GPU", 0) >= 1


def test_num_gpus_task_sees_its_gpu_and_computes(cluster):
    @ray.remote(num_gpus=1)
    def on_gpu(n):
        import os

        import raylite.tensor as rt
        x = rt.ones(n, n, device="cuda")
        total = float((x @ x).sum().item())
        return os.environ.get("CUDA_VISIBLE_DEVICES"), ray.get_gpu_ids(), total

    visible, ids, total = ray.get(on_gpu.remote(64))
    assert visible == "0" and ids == [0]
    assert total == 64.0 ** 3


def test_fractional_gpu_actors_share_one_gpu(cluster):
    @ray.remote(num_gpus=0.5)
    class GpuWorker:
        def ids(self):
            return ray.get_gpu_ids()

        def forward(self, arr):
            import raylite.tensor as rt
            from raylite.tensor import nn
            rt.manual_seed(0)
            net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2)).to("cuda")
            with rt.no_grad():
                return net(rt.Tensor(arr, device="cuda")).numpy()

    a, b = GpuWorker.remote(), GpuWorker.remote()
    assert ray.get([a.ids.remote(), b.ids.remote()]) == [[0], [0]]
    x = np.random.rand(8, 4).astype(np.float32)
    out_a, out_b = ray.get([a.forward.remote(x), b.forward.remote(x)])
    np.testing.assert_allclose(out_a, out_b, rtol=1e-5)


def test_cuda_tensor_round_trips_through_the_store(cluster):
    import raylite.tensor as rt

    @ray.remote(num_gpus=1)
    def make():
        return rt.Tensor(np.arange(1000, dtype=np.float32) * 2, device="cuda")

    out = ray.get(make.remote())
    assert out.device.startswith("cuda")
    np.testing.assert_array_equal(out.numpy(), np.arange(1000, dtype=np.float32) * 2)
