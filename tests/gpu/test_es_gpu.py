"""ES with ``--device cuda``: worker actors ask for a share of a GPU and run their policy
on it through raylite.tensor's cupy backend.  Skipped where cupy or an NVIDIA GPU is
missing (CI); run on a GPU machine."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from raylite.cluster import detect_gpus
from raylite.tensor import backend

pytestmark = pytest.mark.skipif(not backend.cuda_available() or detect_gpus() == 0,
                                reason="needs cupy and a CUDA GPU")
pytest.importorskip("gymnasium")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def test_es_trains_with_policies_on_the_gpu():
    import raylite as ray
    from examples.es.config import ESConfig
    from examples.es.trainer import ESTrainer

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2)
    try:
        trainer = ESTrainer(ESConfig(device="cuda", workers=2, seed=0, iterations=3,
                                     population=16, noise_size=1_000_000, eval_every=1,
                                     eval_episodes=2, progress=False), ray=ray)
        try:
            devices = ray.get([a.policy_device.remote() for a in trainer.actors])
            history = trainer.train()
        finally:
            trainer.close(shutdown=False)
    finally:
        ray.shutdown()
    assert all(d.startswith("cuda") for d in devices), devices
    assert [m["iteration"] for m in history] == [0, 1, 2]
    assert all(np.isfinite(m["train_return_mean"]) for m in history)


def test_es_gpu_and_cpu_workers_play_the_same_episodes():
    # Batches are pure functions of their seeds and the policy is the same function on
    # either device; float rounding can flip a rare argmax, so most, not all, episodes
    # must match exactly.
    from examples.es.noise import create_noise
    from examples.es.worker import ESWorker, WorkerSpec

    noise = create_noise(100_000, seed=1)
    cpu = ESWorker(noise, WorkerSpec("CartPole-v1", device="cpu"))
    gpu = ESWorker(noise, WorkerSpec("CartPole-v1", device="cuda"))
    assert gpu.policy_device().startswith("cuda")
    theta = cpu.policy.get_flat_parameters()
    mean, std = np.zeros(4, np.float32), np.ones(4, np.float32)
    a = cpu.run_perturbations(theta, mean, std, 0.05, 3, seed=7)
    b = gpu.run_perturbations(theta, mean, std, 0.05, 3, seed=7)
    np.testing.assert_array_equal(a["indices"], b["indices"])
    assert np.mean(a["returns"] == b["returns"]) >= 0.5, (a["returns"], b["returns"])
