"""`raylite start/status/list/stop` as real processes, and a two-node cluster on one
machine: spill-over of tasks to the node that has the resources, and objects pulled
between the nodes' stores."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest


def run(args, env, timeout=60, check=True):
    proc = subprocess.run([sys.executable, "-m", "raylite.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"raylite {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def driver(code: str, env, timeout=90):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def session_processes(root: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().split(")")[-1].split()[0] == "Z"
        except OSError:
            continue
        if root in cmd and not zombie:
            found.append(cmd)
    return found


def read_token(join_line: str) -> str:
    """The head prints where its 0600 token file is, never the token itself."""
    with open(join_line.split("--token-file=")[1].split()[0]) as f:
        return f.read().strip()


@pytest.fixture
def cli_env(tmp_path):
    env = dict(os.environ)
    env["RAYLITE_TMPDIR"] = str(tmp_path / "run")
    env.pop("RAYLITE_ADDRESS", None)
    yield env
    run(["stop", "--force"], env, check=False) if False else run(["stop"], env, check=False)


def test_head_start_connect_status_stop(cli_env, tmp_path):
    out = run(["start", "--head", "--port", "0", "--num-cpus", "2", "--resources", '{"special": 2}'],
              cli_env).stdout
    assert "raylite head started" in out
    result = driver("""
        import raylite as ray
        ray.init(address="auto")
        @ray.remote(resources={"special": 1})
        def f(x):
            return x * 3
        print(sum(ray.get([f.remote(i) for i in range(10)])))
        print(ray.cluster_resources()["special"])
        ray.shutdown()
    """, cli_env)
    assert result.split() == ["135", "2.0"]
    status = run(["status"], cli_env).stdout
    assert "ALIVE" in status and "CPU" in status
    root = str(tmp_path / "run")
    assert session_processes(root), "expected the head's processes to run"
    run(["stop"], cli_env)
    assert session_processes(root) == []
    assert not [p for p in os.listdir("/dev/shm") if p.startswith("raylite-") and
                any(p.startswith(f"raylite-{s[2:]}") for s in os.listdir(root) if s.startswith("s-"))]


def test_two_nodes_spill_tasks_and_pull_objects(cli_env, tmp_path):
    head = run(["start", "--head", "--port", "0", "--num-cpus", "1"], cli_env).stdout
    join_line = next(line for line in head.splitlines() if "--token-file=" in line)
    address = join_line.split("--address=")[1].split()[0]
    env2 = dict(cli_env, RAYLITE_TOKEN=read_token(join_line))
    run(["start", "--address", address, "--num-cpus", "1", "--resources", '{"gpu_like": 1}'], env2)
    result = driver("""
        import numpy as np
        import raylite as ray
        ray.init(address="auto")
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        @ray.remote(resources={"gpu_like": 1})
        def where_and_big():
            return ray.get_runtime_context().get_node_id(), np.arange(300_000, dtype=np.float64)
        @ray.remote
        def node_and_sum(arr):
            return ray.get_runtime_context().get_node_id(), float(arr.sum())
        remote_node, arr = ray.get(where_and_big.remote())
        me = ray.get_runtime_context().get_node_id()
        assert remote_node != me, "task did not spill to the node with the resource"
        # A large object produced on the other node, read here and by a local task.
        ref = where_and_big.remote()
        node, total = ray.get(node_and_sum.remote(ray.get(ref)[1]))
        print(float(arr.sum()) == total, node == me)
        ray.shutdown()
    """, cli_env)
    assert result.split() == ["True", "True"]


def test_scheduling_strategies_across_two_nodes(cli_env, tmp_path):
    head = run(["start", "--head", "--port", "0", "--num-cpus", "2"], cli_env).stdout
    join_line = next(line for line in head.splitlines() if "--token-file=" in line)
    token_file = join_line.split("--token-file=")[1].split()[0]
    run(["start", "--address", join_line.split("--address=")[1].split()[0], "--num-cpus", "2",
         "--token-file", token_file], cli_env)
    result = driver("""
        import time
        import raylite as ray
        from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Affinity
        ray.init(address="auto")
        deadline = time.time() + 15
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.time() < deadline:
            time.sleep(0.1)
        me = ray.get_runtime_context().get_node_id()
        other = next(n["NodeID"] for n in ray.nodes() if n["NodeID"] != me)

        @ray.remote
        def node():
            time.sleep(0.2)
            return ray.get_runtime_context().get_node_id()

        pinned = ray.get([node.options(scheduling_strategy=Affinity(other)).remote()
                          for _ in range(3)])
        spread = ray.get([node.options(scheduling_strategy="SPREAD").remote() for _ in range(4)])

        @ray.remote(scheduling_strategy=Affinity(other))
        class Where:
            def node(self):
                return ray.get_runtime_context().get_node_id()

        actor_node = ray.get(Where.remote().node.remote())
        soft = ray.get(node.options(scheduling_strategy=Affinity("ff" * 16, soft=True)).remote())
        try:
            ray.get(node.options(scheduling_strategy=Affinity("ff" * 16)).remote(), timeout=30)
            hard = "ran"
        except ray.exceptions.TaskUnschedulableError:
            hard = "unschedulable"
        print(set(pinned) == {other}, set(spread) == {me, other}, actor_node == other,
              soft in (me, other), hard)
        ray.shutdown()
    """, cli_env)
    assert result.split() == ["True", "True", "True", "True", "unschedulable"]


def test_unknown_strategy_is_rejected_at_decoration():
    import raylite as ray
    with pytest.raises(ValueError):
        ray.remote(scheduling_strategy="NEAREST")(lambda: 1)
