"""ES keeps training when a worker actor dies mid-run.

Two failure paths: a worker process SIGKILLed while it is running a batch (the runtime
restarts the actor, max_restarts, and retries the call, max_task_retries), and an actor
killed for good with ``ray.kill`` (the driver replaces it and re-queues its batches).
Batches are pure functions of their seeds, so either way the run must end with exactly
the parameters of an undisturbed run.
"""

import sys
from pathlib import Path

# `examples` is not an installed package: make the repository root importable even
# when pytest is run without `python -m` (which would add the current directory).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import importlib
import os
import signal
import threading

import numpy as np
import pytest

pytest.importorskip("gymnasium")

from examples.es.config import ESConfig
from examples.es.trainer import ESTrainer

BACKEND = os.environ.get("ES_TEST_BACKEND", "raylite")
ITERATIONS = 5
KILL_AT = 2


def start_runtime():
    """Import and start the backend, skipping (with the reason) while it is unfinished."""
    try:
        ray = importlib.import_module(BACKEND)
    except ImportError as exc:
        pytest.skip(f"{BACKEND} is not importable: {exc}")
    if not callable(getattr(ray, "init", None)):
        pytest.skip(f"{BACKEND}.init is not implemented yet")
    if ray.is_initialized():
        ray.shutdown()
    try:
        ray.init(num_cpus=2)
    except NotImplementedError as exc:
        pytest.skip(f"{BACKEND}.init is not implemented yet: {exc}")
    return ray


@pytest.fixture(scope="module")
def ray():
    ray = start_runtime()
    yield ray
    ray.shutdown()


def config() -> ESConfig:
    # Batches of 4 pairs: each iteration makes several calls per actor, so a kill
    # lands while calls are queued and running.
    return ESConfig(backend=BACKEND, workers=2, seed=1, noise_size=1_000_000,
                    iterations=ITERATIONS, population=40, pairs_per_task=4,
                    eval_every=100, progress=False)


@pytest.fixture(scope="module")
def undisturbed(ray):
    trainer = ESTrainer(config(), ray=ray)
    try:
        trainer.train()
    finally:
        trainer.close()
    return trainer.theta


def test_sigkill_of_worker_process_mid_iteration(ray, undisturbed):
    trainer = ESTrainer(config(), ray=ray)
    killed = []

    def kill_soon(t, metrics):
        if metrics["iteration"] == KILL_AT - 1:
            pid = t.worker_pids()[0]
            killed.append(pid)
            # The next iteration starts as soon as this callback returns; the timer
            # fires while its batches are running.
            threading.Timer(0.05, os.kill, (pid, signal.SIGKILL)).start()

    try:
        history = trainer.train(callback=kill_soon)
        pids_after = trainer.worker_pids()
    finally:
        trainer.close()
    assert killed and killed[0] not in pids_after     # the worker really was replaced
    assert len(history) == ITERATIONS and trainer.iteration == ITERATIONS
    np.testing.assert_array_equal(trainer.theta, undisturbed)


def test_actor_killed_for_good_is_replaced(ray, undisturbed):
    trainer = ESTrainer(config(), ray=ray)
    old = []

    def kill_actor(t, metrics):
        if metrics["iteration"] == KILL_AT - 1:
            old.append(t.actors[1])
            ray.kill(t.actors[1], no_restart=True)

    try:
        history = trainer.train(callback=kill_actor)
    finally:
        trainer.close()
    assert old and trainer.replacements >= 1
    assert len(history) == ITERATIONS
    np.testing.assert_array_equal(trainer.theta, undisturbed)
