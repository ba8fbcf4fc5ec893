"""Many nodes on one machine: tasks/s on 1, 2, 3 and 20 CLI nodes, raylite beside Ray.

    python benchmarks/bench_many_nodes.py                        # 1,2,3,20 nodes; 100k tasks on 20
    python benchmarks/bench_many_nodes.py --nodes 1 2 3 --tasks 20000
    python benchmarks/bench_many_nodes.py --only raylite --nodes 20 --tasks 100000

raylite: a head and N-1 nodes started with the `raylite` CLI (`--num-cpus` fractional,
default 0.1 per node, so 20 nodes share this machine's cores) in a private
RAYLITE_TMPDIR, stopped with `raylite stop`; afterwards no process of the cluster and
no /dev/shm segment may remain (reported, not asserted). Ray: ray.cluster_utils.Cluster
with N raylets of one CPU each (Ray refuses fractional CPUs per node; one task
slot per node either way) (`ray stop` is never called: it would stop every Ray on
the machine); skipped above --ray-max-nodes.

For each N it prints: start-up time of the cluster, nodes `raylite status` shows
alive, tasks/s for --tasks no-op tasks (each asks for the node's whole CPU share, with
--strategy SPREAD by default, submitted at once, then one ray.get), how many nodes
ran at least one task, the memory of the cluster's processes once the tasks ran (PSS
sum and per node; RSS, which counts pages forked processes share once each, is in the
JSON lines), and the GCS (Redis) commands per second while the cluster sits idle
(heartbeats and table reads). Nothing asserts a timing.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RAY_PYTHON = "/work/rayvenv/bin/python"
RESULT = "@@RESULT "

DRIVER = r"""
import collections, json, os, sys, time
import raylite as ray
N, TASKS, CPU, STRATEGY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
ray.init(address="auto")
deadline = time.monotonic() + 60
while len([n for n in ray.nodes() if n["Alive"]]) < N:
    assert time.monotonic() < deadline, "nodes never all alive"
    time.sleep(0.1)

@ray.remote(num_cpus=CPU, scheduling_strategy=STRATEGY)
def where(i):
    return ray.get_runtime_context().get_node_id()

ray.get([where.remote(i) for i in range(min(TASKS, 50 * N))])   # warm-up
t0 = time.perf_counter()
nodes = ray.get([where.remote(i) for i in range(TASKS)])
dt = time.perf_counter() - t0
print("@@RESULT " + json.dumps({"seconds": dt, "rate": TASKS / dt,
                                "per_node": sorted(collections.Counter(nodes).values())}))
"""


def memory_of(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) summed over ``pids``, in bytes. RSS counts pages that forked
    processes share once per process; PSS splits them, so it sums to real use."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


def processes_of(run_dir: str) -> list[int]:
    """Schedulers and redis of clusters started under ``run_dir`` (their command lines
    name it), and all their descendants (zygotes, workers)."""
    roots, parent = set(), {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if run_dir in cmd:
            roots.add(int(entry))
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, ppid in parent.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return sorted(found)


class RayliteCluster:
    def __init__(self, cpus: float):
        self.cpus = cpus
        self.run_dir = tempfile.mkdtemp(prefix="rl-many-")
        self.env = dict(os.environ, RAYLITE_TMPDIR=self.run_dir, PYTHONPATH=REPO)
        for name in ("RAYLITE_TOKEN", "RAY_ADDRESS", "RAYLITE_ADDRESS"):
            self.env.pop(name, None)
        self.redis_pid = 0

    def cli(self, *args: str, check: bool = True) -> str:
        out = subprocess.run([sys.executable, "-m", "raylite.cli.main", *args], env=self.env,
                             capture_output=True, text=True, timeout=180)
        if check and out.returncode:
            raise RuntimeError(f"raylite {' '.join(args)}: {out.stdout}{out.stderr}")
        return out.stdout

    def start(self, n: int) -> float:
        t0 = time.perf_counter()
        head = self.cli("start", "--head", "--port", "0", "--num-cpus", str(self.cpus))
        join = next(line for line in head.splitlines() if "--token-file=" in line)
        token_file = join.split("--token-file=")[1].split()[0]
        address = join.split("--address=")[1].split()[0]
        with open(os.path.join(self.run_dir, "current_cluster")) as f:
            info = json.load(f)
        self.redis_pid = info["redis_pid"]
        self.gcs = (address, info["password"])
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: self.cli("start", "--address", address, "--token-file",
                                             token_file, "--num-cpus", str(self.cpus)),
                          range(n - 1)))
        return time.perf_counter() - t0

    def alive_in_status(self) -> int:
        return sum(1 for line in self.cli("status").splitlines()
                   if line.startswith("node ") and "ALIVE" in line)

    def redis_ops_per_s(self, seconds: float = 5.0) -> float:
        import redis

        from raylite.security.tokens import REDIS_USER
        host, port = self.gcs[0].rsplit(":", 1)
        client = redis.Redis(host=host, port=int(port), username=REDIS_USER, password=self.gcs[1])
        try:
            before = client.info("stats")["total_commands_processed"]
            time.sleep(seconds)
            after = client.info("stats")["total_commands_processed"]
        finally:
            client.close()
        return (after - before - 1) / seconds

    def run(self, n: int, tasks: int, strategy: str) -> dict:
        out = subprocess.run([sys.executable, "-c", DRIVER, str(n), str(tasks), str(self.cpus),
                              strategy],
                             env=self.env, capture_output=True, text=True, timeout=1800)
        for line in out.stdout.splitlines():
            if line.startswith(RESULT):
                return json.loads(line[len(RESULT):])
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-3000:])

    def stop(self) -> dict:
        t0 = time.perf_counter()
        self.cli("stop", check=False)
        seconds = time.perf_counter() - t0
        time.sleep(0.5)
        left = processes_of(self.run_dir)
        shm = [p for p in glob.glob("/dev/shm/raylite-*") if self._ours(p)]
        shutil.rmtree(self.run_dir, ignore_errors=True)
        return {"stop_s": seconds, "left_processes": len(left), "left_shm": len(shm)}

    def _ours(self, path: str) -> bool:
        sessions = {os.path.basename(s) for s in glob.glob(os.path.join(self.run_dir, "s-*"))}
        return any(os.path.basename(path).startswith(f"raylite-{s}-") for s in sessions)


def bench_raylite(n: int, tasks: int, cpus: float, strategy: str) -> dict:
    sys.path.insert(0, REPO)
    cluster = RayliteCluster(cpus)
    out: dict = {}
    try:
        out["start_s"] = cluster.start(n)
        time.sleep(1.0)   # let every node's first beats land
        out["status_alive"] = cluster.alive_in_status()
        out["idle_gcs_ops_s"] = cluster.redis_ops_per_s()
        pids = processes_of(cluster.run_dir)
        out.update(cluster.run(n, tasks, strategy))
        pids = sorted(set(pids) | set(processes_of(cluster.run_dir)))
        rss, pss = memory_of(pids)
        out["rss_mib"], out["pss_mib"] = rss / 2**20, pss / 2**20
        out["processes"] = len(pids)
    except Exception as err:  # noqa: BLE001  reported in the table
        out["error"] = str(err)[-1500:]
    finally:
        out.update(cluster.stop())
    return out


RAY_CHILD = r"""
import collections, json, sys, time
import ray
from ray.cluster_utils import Cluster
N, TASKS, CPU, STRATEGY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
CPU = max(1, round(CPU))   # Ray wants whole CPUs per node: one task slot per node, as raylite
STORE = 100 * 2**20        # plasma per raylet (its default, 30% of RAM each, times N)
t0 = time.perf_counter()
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": CPU, "object_store_memory": STORE})
for _ in range(N - 1):
    cluster.add_node(num_cpus=CPU, object_store_memory=STORE)
ray.init(address=cluster.address, log_to_driver=False)
cluster.wait_for_nodes()
start_s = time.perf_counter() - t0

@ray.remote(num_cpus=CPU, scheduling_strategy=STRATEGY)
def where(i):
    return ray.get_runtime_context().get_node_id()

try:
    ray.get([where.remote(i) for i in range(min(TASKS, 50 * N))])
    t0 = time.perf_counter()
    nodes = ray.get([where.remote(i) for i in range(TASKS)])
    dt = time.perf_counter() - t0
    print("@@RESULT " + json.dumps({"start_s": start_s, "seconds": dt, "rate": TASKS / dt,
                                    "per_node": sorted(collections.Counter(nodes).values())}),
          flush=True)
finally:
    ray.shutdown()
    cluster.shutdown()
"""


def bench_ray(n: int, tasks: int, cpus: float, strategy: str) -> dict:
    if not os.path.exists(RAY_PYTHON):
        return {"error": "Ray not installed at " + RAY_PYTHON}
    out = subprocess.run([RAY_PYTHON, "-c", RAY_CHILD, str(n), str(tasks), str(cpus), strategy],
                         capture_output=True, text=True, timeout=1800, cwd=tempfile.gettempdir())
    for line in out.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    return {"error": (out.stdout + out.stderr)[-1500:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3, 20])
    parser.add_argument("--tasks", type=int, default=20_000, help="tasks for runs under 20 nodes")
    parser.add_argument("--tasks-20", type=int, default=100_000, help="tasks for 20+ nodes")
    parser.add_argument("--num-cpus", type=float, default=0.1, help="CPUs of each node")
    parser.add_argument("--only", choices=["raylite", "ray"], default=None)
    parser.add_argument("--ray-max-nodes", type=int, default=20)
    parser.add_argument("--strategy", default="SPREAD", choices=["SPREAD", "DEFAULT"],
                        help="scheduling strategy of the tasks")
    args = parser.parse_args(argv)
    rows = []
    for n in args.nodes:
        tasks = args.tasks_20 if n >= 20 else args.tasks
        row = {"nodes": n, "tasks": tasks}
        if args.only != "ray":
            row["raylite"] = bench_raylite(n, tasks, args.num_cpus, args.strategy)
        if args.only != "raylite" and n <= args.ray_max_nodes:
            row["ray"] = bench_ray(n, tasks, args.num_cpus, args.strategy)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}; {args.num_cpus:g} CPU per node; "
          f"strategy {args.strategy}")
    print(f"{'nodes':>5} {'tasks':>7} | {'raylite tasks/s':>15} {'start s':>7} {'status':>6} "
          f"{'used':>4} {'PSS MiB':>8} {'MiB/node':>8} {'idle GCS ops/s':>14} {'stop s':>6} "
          f"{'left':>5} | {'ray tasks/s':>11} {'start s':>7} {'used':>4} | ratio")
    for row in rows:
        r, y = row.get("raylite", {}), row.get("ray", {})
        cells = [f"{row['nodes']:>5} {row['tasks']:>7} |"]
        if "rate" in r:
            cells.append(f"{r['rate']:>15,.0f} {r['start_s']:>7.1f} {r['status_alive']:>6} "
                         f"{len(r['per_node']):>4} {r['pss_mib']:>8.0f} "
                         f"{r['pss_mib'] / row['nodes']:>8.0f} {r['idle_gcs_ops_s']:>14,.0f} "
                         f"{r['stop_s']:>6.1f} {r['left_processes'] + r['left_shm']:>5} |")
        else:
            cells.append(f"{'ERROR' if r else '-':>15} {'':>58} |")
        if "rate" in y:
            cells.append(f"{y['rate']:>11,.0f} {y['start_s']:>7.1f} {len(y['per_node']):>4} |")
        else:
            cells.append(f"{'ERROR' if y else '-':>11} {'':>12} |")
        if "rate" in r and "rate" in y:
            cells.append(f" {r['rate'] / y['rate']:.2f}x")
        print(" ".join(cells))
    for row in rows:
        for backend in ("raylite", "ray"):
            if "error" in row.get(backend, {}):
                print(f"{backend} {row['nodes']} nodes error: {row[backend]['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
