"""Fixtures for the real-process fault-injection tests (see faults.py).

``local_cluster``: factory ``local_cluster(name="c")`` -> LocalCluster, an empty
cluster bound to its own RAYLITE_TMPDIR under the test's tmp_path; start nodes with
``start_head`` / ``add_node``. At teardown every driver is killed, `raylite stop` runs,
and the test fails when a process of the cluster or one of its /dev/shm entries is
left.

``embedded_env``: (env, Leftovers) for drivers that start their own cluster with
``ray.init()`` inside an isolated RAYLITE_TMPDIR; at teardown every process of it must
be gone.
"""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faults import Leftovers, LocalCluster, base_env


@pytest.fixture
def local_cluster(tmp_path):
    clusters: list[LocalCluster] = []

    def make(name: str = "c") -> LocalCluster:
        cluster = LocalCluster(str(tmp_path / f"run-{name}"))
        clusters.append(cluster)
        return cluster
    yield make
    errors = []
    for cluster in clusters:
        try:
            cluster.stop(check=True)
        except BaseException as err:  # noqa: BLE001  (pytest.fail is one): stop every cluster first
            errors.append(err)
    if errors:
        raise errors[0]


@pytest.fixture
def embedded_env(tmp_path):
    run_dir = str(tmp_path / "emb")
    os.makedirs(run_dir, mode=0o700, exist_ok=True)  # raylite refuses a root others can read
    leftovers = Leftovers(run_dir)
    yield base_env(run_dir), leftovers
    procs = leftovers.processes()
    for line in procs:  # never leave a stray process to the next test
        try:
            os.kill(int(line.split()[0]), 9)
        except OSError:
            pass
