"""docker-compose.yml, checked without Docker: its structure is validated, and the exact
commands of its head and worker services run as real processes on two hosts made of
Linux network namespaces joined by a veth pair (root only; skipped otherwise)."""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
import yaml  # in the `test` extra: a missing pyyaml fails loudly instead of skipping

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAD_IP, WORKER_IP = "10.77.0.1", "10.77.0.2"


def compose() -> dict:
    with open(os.path.join(ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)


def test_compose_file_structure():
    services = compose()["services"]
    assert {"head", "worker"} <= set(services)
    head, worker = services["head"], services["worker"]
    assert head["command"].startswith("raylite start --head")
    assert "--port 6379" in head["command"]
    assert worker["command"].startswith("raylite start --address head:6379")
    for service in (head, worker):
        assert service["build"] == "."
        # The token must be supplied; compose refuses to start without it.
        assert service["environment"]["RAYLITE_TOKEN"].startswith("${RAYLITE_TOKEN:?")
    # Published only on the host's loopback.
    assert all(p.startswith("127.0.0.1:") for p in head.get("ports", []))
    assert os.path.exists(os.path.join(ROOT, "Dockerfile"))


def _can_make_namespaces() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def two_hosts(tmp_path):
    if not _can_make_namespaces():
        pytest.skip("needs root and iproute2 to make network namespaces")
    tag = uuid.uuid4().hex[:6]
    head_ns, worker_ns = f"rlh{tag}", f"rlw{tag}"
    hostname = socket.gethostname()
    try:
        sh("ip", "netns", "add", head_ns)
        sh("ip", "netns", "add", worker_ns)
        sh("ip", "link", "add", f"vh{tag}", "type", "veth", "peer", "name", f"vw{tag}")
        sh("ip", "link", "set", f"vh{tag}", "netns", head_ns)
        sh("ip", "link", "set", f"vw{tag}", "netns", worker_ns)
        for ns, dev, ip in ((head_ns, f"vh{tag}", HEAD_IP), (worker_ns, f"vw{tag}", WORKER_IP)):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            # Inside a namespace, /etc/netns/<ns>/hosts replaces /etc/hosts: the host's
            # own name and "head" resolve as they would in the compose network.
            os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
            with open(f"/etc/netns/{ns}/hosts", "w") as f:
                f.write(f"127.0.0.1 localhost\n{ip} {hostname}\n{HEAD_IP} head\n")
    except (subprocess.CalledProcessError, OSError) as err:
        pytest.skip(f"cannot make network namespaces here: {err}")
    env = dict(os.environ, RAYLITE_TOKEN=uuid.uuid4().hex, PYTHONPATH=ROOT)
    hosts = {"head": (head_ns, dict(env, RAYLITE_TMPDIR=str(tmp_path / "head"))),
             "worker": (worker_ns, dict(env, RAYLITE_TMPDIR=str(tmp_path / "worker")))}
    yield hosts
    for ns, host_env in hosts.values():
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "raylite.cli.main", "stop"],
                       env=host_env, capture_output=True, timeout=60)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


def start_service(hosts, name: str) -> subprocess.Popen:
    ns, env = hosts[name]
    argv = shlex.split(compose()["services"][name]["command"])
    assert argv[0] == "raylite"
    # The exact compose command; `raylite` resolved to this interpreter's entry point.
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "raylite.cli.main",
                             *argv[1:]], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def first_line_with(proc: subprocess.Popen, text: str) -> str:
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"{text!r} never printed:\n{''.join(seen)}")


def test_compose_commands_form_a_two_host_cluster(two_hosts):
    head = start_service(two_hosts, "head")
    line = first_line_with(head, "raylite head started")
    assert f"GCS at {HEAD_IP}:6379" in line
    worker = start_service(two_hosts, "worker")
    first_line_with(worker, "joined")
    ns, env = two_hosts["head"]
    driver = textwrap.dedent("""
        import numpy as np
        import raylite as ray
        ray.init(address="auto")
        nodes = [n for n in ray.nodes() if n["Alive"]]
        print(sorted(n["NodeManagerAddress"] for n in nodes))

        @ray.remote(num_cpus=2)
        def where(i):
            import time
            time.sleep(0.3)
            return ray.get_runtime_context().get_node_id(), np.full(200_000, i, dtype=np.float64)

        results = ray.get([where.remote(i) for i in range(4)])
        print(len({node for node, _ in results}), [float(a[0]) for _, a in results])
        ray.shutdown()
    """)
    deadline = time.monotonic() + 20
    while True:  # the worker registers with the GCS a moment after it prints
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", driver], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-3000:]
        if f"'{WORKER_IP}'" in out.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    first, second = out.stdout.strip().splitlines()[-2:]
    assert first == str(sorted([HEAD_IP, WORKER_IP]))
    # 2-CPU tasks on two 2-CPU nodes: the second one spills to the worker host, and
    # its large result is pulled back across the veth link.
    assert second == "2 [0.0, 1.0, 2.0, 3.0]"
    # The flagship job as the compose file's header says (`python -m examples.es
    # --address head:6379`), shortened: four 1-CPU workers fill both 2-CPU hosts.
    es = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "examples.es",
                         "--address", "head:6379", "--workers", "4", "--iterations", "2",
                         "--population", "8", "--noise-size", "1000000", "--eval-every", "1",
                         "--eval-episodes", "2", "--no-progress",
                         "--output-dir", str(two_hosts["head"][1]["RAYLITE_TMPDIR"] + "-es")],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert es.returncode == 0, es.stdout[-3000:] + es.stderr[-3000:]
    assert "workers on 2 nodes" in es.stdout and "after 2 iterations" in es.stdout, es.stdout
    for proc in (head, worker):
        proc.terminate()
        proc.wait(10)
