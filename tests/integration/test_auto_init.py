"""Auto-init: the first call that needs a cluster starts one, exactly where Ray does
(`.remote()`, get, put, wait, actor creation, get_actor, get_runtime_context), with
Ray's log line; cluster queries do not; RAY_ADDRESS / RAYLITE_ADDRESS are honoured;
RAY_ENABLE_AUTO_CONNECT=0 turns it off. Each case is a real driver process."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO_ROOT, start_driver

LOG_LINE = "Started a local Ray instance."


@pytest.mark.parametrize("first_call, expect", [
    ("print(ray.get(f.remote(20)))", "21"),
    ("print(ray.get(ray.put(5)))", "5"),
    ("print(ray.wait([ray.put(1)])[0] != [])", "True"),
    ("print(ray.get(A.remote().ping.remote()))", "pong"),
    ("print(ray.get_runtime_context().get_node_id() != '')", "True"),
])
def test_first_call_starts_a_local_cluster(run_driver, first_call, expect):
    result = run_driver(f"""
        import raylite as ray

        @ray.remote
        def f(x):
            return x + 1

        @ray.remote
        class A:
            def ping(self):
                return "pong"

        assert not ray.is_initialized()
        {first_call}
        print(ray.is_initialized())
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expect, "True"]
    assert sum(LOG_LINE in line for line in result.stderr.splitlines()) == 1, result.stderr


def test_get_actor_auto_inits_then_raises_value_error(run_driver):
    result = run_driver("""
        import raylite as ray
        try:
            ray.get_actor("nobody")
        except ValueError:
            print("ValueError", ray.is_initialized())
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ValueError", "True"]


def test_cluster_queries_do_not_auto_init(run_driver):
    result = run_driver("""
        import raylite as ray
        for query in (ray.cluster_resources, ray.available_resources, ray.nodes):
            try:
                query()
            except ray.exceptions.RaySystemError:
                print("raises")
        print(ray.is_initialized())
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["raises", "raises", "raises", "False"]
    assert LOG_LINE not in result.stderr


def test_auto_connect_can_be_turned_off():
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import raylite as ray
        try:
            ray.put(1)
        except ray.exceptions.RaySystemError as err:
            print("not initialized" in str(err), ray.is_initialized())
    """)], cwd=REPO_ROOT, env=dict(os.environ, RAY_ENABLE_AUTO_CONNECT="0", PYTHONPATH=REPO_ROOT),
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False"]


@pytest.mark.parametrize("variable", ["RAY_ADDRESS", "RAYLITE_ADDRESS"])
def test_address_variable_joins_a_running_cluster(variable):
    # A first driver keeps a cluster up; a second one, given only the address (and the
    # token, as for any join), auto-inits by connecting to it instead of starting one.
    host = start_driver("""
        import sys, raylite as ray
        ray.init(num_cpus=1)
        c = ray.api.connection()
        print(c.gcs_address, c.worker.token, c.gcs.password, ray.get_runtime_context().get_node_id(),
              flush=True)
        sys.stdin.readline()
    """, stdin=subprocess.PIPE)
    try:
        address, token, password, node_id = host.stdout.readline().split()
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, RAYLITE_TOKEN=token,
                   RAYLITE_GCS_PASSWORD=password)
        env[variable] = address
        joined = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import raylite as ray

            @ray.remote
            def where():
                return ray.get_runtime_context().get_node_id()

            print(ray.get(where.remote()))
        """)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert joined.returncode == 0, joined.stderr
        assert joined.stdout.split() == [node_id]
        assert f"Connecting to existing Ray cluster at address: {address}" in joined.stderr
        assert LOG_LINE not in joined.stderr
    finally:
        host.stdin.close()
        host.wait(timeout=30)
