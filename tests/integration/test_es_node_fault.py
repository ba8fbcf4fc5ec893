"""The flagship survives a node dying (issue 10 point 8): evolution strategies on a
3-node CLI cluster, one non-head node SIGKILLed mid-training while it hosts an ES
worker actor. The actor restarts on a surviving node, its calls are retried, and the
run ends with exactly the parameters of an undisturbed run on the same cluster
(batches are pure functions of their seeds)."""
from __future__ import annotations

import json
import os
import textwrap

import pytest

pytest.importorskip("gymnasium")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DRIVER = textwrap.dedent(f"""\
    import json, sys, time
    sys.path.insert(0, {REPO!r})
    import numpy as np
    import raylite as ray
    from examples.es.config import ESConfig
    from examples.es.trainer import ESTrainer

    ray.init(address="auto")
    deadline = time.monotonic() + 30
    while len([n for n in ray.nodes() if n["Alive"]]) < 3:
        if time.monotonic() > deadline:      # a bounded wait, not a timing check
            raise AssertionError(ray.nodes())
        time.sleep(0.05)

    def config():
        return ESConfig(backend="raylite", workers=3, seed=3, noise_size=1_000_000,
                        iterations=5, population=30, pairs_per_task=3, eval_every=100,
                        progress=False)

    def run(callback=None):
        trainer = ESTrainer(config(), ray=ray)
        try:
            trainer.train(callback=callback)
            return trainer.theta.copy(), trainer.iteration
        finally:
            trainer.close(shutdown=False)

    reference, _ = run()
    print("REFERENCE_DONE", flush=True)

    def pause_for_the_kill(t, metrics):
        if metrics["iteration"] == 1:
            print("PIDS", json.dumps(t.worker_pids()), flush=True)
            sys.stdin.readline()          # the test kills a node hosting one of them

    theta, iterations = run(pause_for_the_kill)
    print("SAME", iterations == 5 and bool(np.array_equal(theta, reference)), flush=True)
""")


def test_es_finishes_with_the_right_result_when_a_node_dies_mid_training(local_cluster):
    from faults import Driver, descendants
    cluster = local_cluster()
    cluster.start_head(num_cpus=2)
    nodes = [cluster.add_node("node_b", num_cpus=2), cluster.add_node("node_c", num_cpus=2)]
    env = dict(cluster.env, PYTHONPATH=REPO)
    driver = Driver(DRIVER, env, "es driver")
    try:
        driver.expect("REFERENCE_DONE", timeout=120)
        pids = set(json.loads(driver.expect("PIDS", timeout=60).split(" ", 1)[1]))
        hosting = [n for n in nodes if pids & set(descendants(n.scheduler_pid))]
        assert hosting, "no ES worker ran on a non-head node: nothing to kill"
        cluster.kill_node(hosting[0])
        driver.send()
        assert driver.expect("SAME", timeout=120) == "SAME True", driver.output()
        driver.finish_ok(timeout=30)
    finally:
        driver.kill()
