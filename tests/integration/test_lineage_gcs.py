"""Lineage in the GCS (issue 10 point 2), on a real cluster: a task whose result lives
in the shared-memory store has its spec recorded in Redis; small results (inline)
record nothing; the entry is trimmed once no live object can need it -- including the
entries of arguments kept only because a downstream entry named them."""
from __future__ import annotations

import gc
import time

import numpy as np
import pytest

import raylite as ray
from tests.conftest import wait_until

RAY_INIT_KWARGS = {"num_cpus": 2}


@pytest.fixture(scope="module")
def gcs(ray_start):
    return ray.api.connection().gcs


def _lineage(gcs, ref):
    return gcs.get_lineage(ref.task_id().hex())


@ray.remote
def big(n):
    return np.ones(n)


@ray.remote
def small(x):
    return x + 1


@ray.remote
def plus_one(a):
    return a + 1


def test_stored_results_record_lineage_and_inline_ones_do_not(gcs):
    stored, inline = big.remote(200_000), small.remote(1)
    ray.get([stored, inline])
    record = _lineage(gcs, stored)
    assert record is not None and record.spec          # the spec, to re-run it
    assert _lineage(gcs, inline) is None


def test_lineage_is_trimmed_when_no_live_object_needs_it(gcs):
    a = big.remote(200_000)
    b = plus_one.remote(a)
    ray.get(b)
    a_task, b_task = a.task_id().hex(), b.task_id().hex()
    assert gcs.get_lineage(a_task) is not None and gcs.get_lineage(b_task) is not None
    del a
    gc.collect()
    time.sleep(0.3)
    # b's entry names a's result as an argument: rebuilding b may need a, so a stays.
    assert gcs.get_lineage(a_task) is not None
    del b
    gc.collect()
    assert wait_until(lambda: gcs.get_lineage(b_task) is None and gcs.get_lineage(a_task) is None)


def test_many_tasks_leave_no_lineage_behind(gcs):
    refs = [big.remote(50_000) for _ in range(200)]
    ray.get(refs)
    tasks = [r.task_id().hex() for r in refs]
    assert all(gcs.get_lineage(t) is not None for t in tasks[:5])
    del refs
    gc.collect()
    assert wait_until(lambda: all(gcs.get_lineage(t) is None for t in tasks))
