"""Cross-node object transfer on a two-node cluster of this machine, raylite against Ray.

    python benchmarks/bench_cluster.py                     # both backends, 160 MB, 5 samples
    python benchmarks/bench_cluster.py --size-mb 400 --repeat 3
    python benchmarks/bench_cluster.py --only raylite      # or --only ray

raylite: a head (node A) and a second node (B) started with the `raylite` CLI in a
private RAYLITE_TMPDIR (so no other cluster on the machine is touched), stopped with
`raylite stop` at the end. Ray: `ray.cluster_utils.Cluster` with two raylets (its own
head and worker node processes, shut down at the end; `ray stop` is never called, it
would stop every Ray on the machine). Each node has 2 CPUs; node A has resource "A",
node B resource "B".

Rows (median of --repeat samples after a warm-up; each sample puts a fresh array on A,
the put is not timed):
- one task on B taking the array: from submit to ray.get of its (tiny) result;
- 4 tasks on B taking the same fresh array at once (readers should share one transfer).

GB/s is the array's size (1e9 bytes) over the time. Nothing asserts a timing.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RAY_PYTHON = "/work/rayvenv/bin/python"
RESULT = "@@RESULT "
READERS = 4


def workload(ray, size_mb: int, repeat: int) -> dict:
    """Time cross-node tasks; ``ray`` is an initialised raylite or Ray module."""
    import numpy as np

    @ray.remote(num_cpus=0.5, resources={"B": 0.01})
    def consume(x):
        return float(x[-1]), ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=0.01, resources={"A": 0.01})
    def where():
        return ray.get_runtime_context().get_node_id()

    node_a = ray.get(where.remote())
    ray.get([consume.remote(np.zeros(4)) for _ in range(READERS)])  # warm workers on B
    n = size_mb * 1_000_000 // 8
    one, many = [], []
    for i in range(repeat + 1):
        ref = ray.put(np.full(n, float(i)))
        t0 = time.perf_counter()
        value, node_b = ray.get(consume.remote(ref))
        dt = time.perf_counter() - t0
        assert value == float(i) and node_b != node_a, (value, node_b, node_a)
        if i:
            one.append(dt)
        del ref
        ref = ray.put(np.full(n, float(i) + 0.5))
        t0 = time.perf_counter()
        values = ray.get([consume.remote(ref) for _ in range(READERS)])
        dt = time.perf_counter() - t0
        assert all(v == float(i) + 0.5 and nb != node_a for v, nb in values), values
        if i:
            many.append(dt)
        del ref
    return {"one": one, "many": many, "bytes": n * 8}


def child_raylite(size_mb: int, repeat: int) -> dict:
    run_dir = tempfile.mkdtemp(prefix="rl-bench-cluster-")
    env = dict(os.environ, RAYLITE_TMPDIR=run_dir, PYTHONPATH=REPO)
    env.pop("RAYLITE_TOKEN", None)
    os.environ.update(RAYLITE_TMPDIR=run_dir)

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "raylite.cli.main", *args], env=env,
                             capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"raylite {' '.join(args)}: {out.stdout}{out.stderr}")
        return out.stdout

    try:
        head = cli("start", "--head", "--port", "0", "--num-cpus", "2", "--resources", '{"A": 1}')
        join = next(line for line in head.splitlines() if "--token-file=" in line)
        token_file = join.split("--token-file=")[1].split()[0]
        address = join.split("--address=")[1].split()[0]
        cli("start", "--address", address, "--token-file", token_file, "--num-cpus", "2",
            "--resources", '{"B": 1}')
        sys.path.insert(0, REPO)
        import raylite as ray
        ray.init(address="auto")
        try:
            return workload(ray, size_mb, repeat)
        finally:
            ray.shutdown()
    finally:
        cli("stop")
        if os.environ.get("BENCH_KEEP_LOGS"):
            print(f"logs kept in {run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def child_ray(size_mb: int, repeat: int) -> dict:
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "resources": {"A": 1}})
    cluster.add_node(num_cpus=2, resources={"B": 1})
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        try:
            return workload(ray, size_mb, repeat)
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()


def run_child(backend: str, size_mb: int, repeat: int) -> dict:
    python = sys.executable if backend == "raylite" else RAY_PYTHON
    if backend == "ray" and not os.path.exists(python):
        return {"error": "Ray not installed at " + RAY_PYTHON}
    cmd = [python, os.path.abspath(__file__), "--child", backend, "--size-mb", str(size_mb),
           "--repeat", str(repeat)]
    # Ray runs from a directory without a `ray` folder, under its own interpreter.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tempfile.gettempdir())
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    return {"error": (proc.stdout + proc.stderr)[-2000:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=160)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["raylite", "ray"], default=None)
    parser.add_argument("--child", choices=["raylite", "ray"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run = child_raylite if args.child == "raylite" else child_ray
        print(RESULT + json.dumps(run(args.size_mb, args.repeat)), flush=True)
        return 0
    backends = [args.only] if args.only else ["raylite", "ray"]
    results = {b: run_child(b, args.size_mb, args.repeat) for b in backends}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.size_mb} MB, median of {args.repeat}")
    print(f"{'workload':<36}" + "".join(f"{b:>22}" for b in backends) + "   ratio")
    for key, label in (("one", "1 task on node B, array from A"),
                       ("many", f"{READERS} tasks on B, same array from A")):
        cells, secs = [], []
        for b in backends:
            r = results[b]
            if "error" in r:
                cells.append("ERROR")
                secs.append(None)
                continue
            s = statistics.median(r[key])
            secs.append(s)
            cells.append(f"{s:.3f} s {r['bytes'] / s / 1e9:5.2f} GB/s")
        ratio = (f"{secs[1] / secs[0]:.2f}x" if len(secs) == 2 and None not in secs else "")
        print(f"{label:<36}" + "".join(f"{c:>22}" for c in cells) + f"   {ratio}")
    for b in backends:
        if "error" in results[b]:
            print(f"{b} error:\n{results[b]['error']}")
        else:
            print(f"{b} samples: one={[round(x, 3) for x in results[b]['one']]} "
                  f"many={[round(x, 3) for x in results[b]['many']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
