"""ES throughput: env steps/s with 1 and 2 workers on raylite and Ray, or on 1..N nodes.

Usage::

    python benchmarks/bench_es.py                                   # raylite, and Ray if found
    python benchmarks/bench_es.py --ray-python /path/to/venv-with-ray/bin/python --repeats 3
    python benchmarks/bench_es.py --cluster 3                       # raylite CLI nodes, 1..3

The Ray interpreter is ``--ray-python``, else ``$RAYLITE_BENCH_RAY_PYTHON``, else this
interpreter if it can import ray.  It runs this checkout's ES example, so besides ray it
needs the example's dependencies (``pip install ray -e ".[examples]"`` in that venv).

Every configuration runs the same fixed workload in a fresh process (so start-up is
measured too): ``--iterations`` ES iterations on CartPole-v1 from seed 0 with a fixed
batch split, so the episodes, and hence the env steps, are identical across backends
and worker counts (ES batches are pure functions of their seeds).  With ``--repeats``
the backends alternate run by run (raylite, Ray, raylite, ...) so both see the same
machine load, and medians are reported.  Besides wall-clock figures each run reports
``rollout CPU``, the CPU seconds the workers' threads spent in episodes, and ``overhead
CPU``, the CPU seconds every other thread and process of the run used meanwhile (the
runtime's cost).  On a busy machine wall time swings with other processes while CPU
time barely does, so these tell runtime overhead from contention.  Figures are printed, never asserted.

``--cluster N`` starts a head and up to N-1 more nodes with the CLI (``raylite start``,
one CPU each, in a private RAYLITE_TMPDIR), runs the workload with ``--address`` and one
worker per node, and stops exactly those nodes afterwards (``raylite stop`` on that
RAYLITE_TMPDIR only).
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
sys.path.insert(0, HERE)
from run import find_ray_python  # noqa: E402  (benchmarks/run.py: --ray-python discovery)


def tree_cpu_seconds(marker: str | None = None) -> float | None:
    """CPU seconds (user + system) used so far by this process and all its descendants
    that are alive now: the driver, the runtime's daemons and the workers.  With
    ``marker``, also by every process whose command line contains it and their
    descendants (the nodes of a CLI cluster, found by their RAYLITE_TMPDIR).  Linux
    /proc only; None elsewhere."""
    roots = [os.getpid()]
    try:
        tick = os.sysconf("SC_CLK_TCK")
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
                if marker:
                    try:
                        with open(f"/proc/{entry}/cmdline", "rb") as f:
                            if marker.encode() in f.read():
                                roots.append(int(entry))
                    except OSError:
                        pass
    except (OSError, ValueError, AttributeError):
        return None
    children: dict = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo, seen = 0.0, roots, set()
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            total += stats.get(pid, (0, 0.0))[1]
            todo.extend(children.get(pid, ()))
    return total


def child(args) -> None:
    """Run one configuration in this process and print its figures as one JSON line."""
    sys.path.insert(0, REPO)
    started = time.perf_counter()
    from examples.es.config import ESConfig
    from examples.es.trainer import ESTrainer

    cfg = ESConfig(env=args.env, backend=args.backend, workers=args.workers, seed=0,
                   address=args.address, iterations=args.iterations,
                   population=args.population, pairs_per_task=args.pairs_per_task,
                   eval_every=10**9, noise_size=args.noise_size, progress=False)
    trainer = ESTrainer(cfg)
    setup = time.perf_counter() - started
    marker = os.environ.get("RAYLITE_TMPDIR") if args.address else None
    cpu_before = tree_cpu_seconds(marker)
    history = trainer.train()
    cpu_after = tree_cpu_seconds(marker)
    train = sum(m["iter_time"] for m in history)
    rollout_cpu = sum(m["rollout_cpu"] for m in history)
    # Everything but the episodes themselves: the runtime's CPU on the driver, in the
    # workers and in its daemons, plus the driver's (tiny) ES update.
    overhead = (cpu_after - cpu_before - rollout_cpu
                if cpu_before is not None and cpu_after is not None else float("nan"))
    nodes = len(set(trainer.worker_nodes()))
    trainer.close()
    print(json.dumps({"backend": args.backend, "workers": args.workers, "setup_s": setup,
                      "train_s": train, "total_s": time.perf_counter() - started,
                      "steps": trainer.total_steps, "steps_per_s": trainer.total_steps / train,
                      "iter_ms": 1000 * train / len(history),
                      "rollout_cpu_s": rollout_cpu, "overhead_cpu_s": overhead,
                      "busy": sum(m["worker_busy"] * m["iter_time"] for m in history) / train,
                      "nodes": nodes}),
          flush=True)


def run_config(python: str, backend: str, workers: int, args, address: str | None = None,
               env: dict | None = None) -> dict | None:
    cmd = [python, os.path.abspath(__file__), "--child", "--backend", backend,
           "--workers", str(workers), "--env", args.env, "--iterations", str(args.iterations),
           "--population", str(args.population), "--pairs-per-task", str(args.pairs_per_task),
           "--noise-size", str(args.noise_size)]
    if address:
        cmd += ["--address", address]
    env = dict(env or os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    print(f"  {backend} x{workers} failed (exit {proc.returncode}):\n"
          + "\n".join(proc.stderr.splitlines()[-15:]), flush=True)
    return None


def median_run(runs: list) -> dict:
    """Per-figure medians of several runs of one configuration."""
    keys = ("setup_s", "train_s", "total_s", "steps_per_s", "iter_ms", "rollout_cpu_s",
            "overhead_cpu_s", "busy")
    out = dict(runs[0])
    out.update({k: statistics.median(r[k] for r in runs) for k in keys})
    out["runs"] = len(runs)
    out["train_range"] = f"{min(r['train_s'] for r in runs):.1f}-{max(r['train_s'] for r in runs):.1f}"
    return out


HEADER = (f"{'backend':8} {'workers':>7} {'setup s':>8} {'train s':>8} {'steps':>8} "
          f"{'steps/s':>9} {'ms/iter':>8} {'rollout CPU s':>13} {'overhead CPU s':>14} {'busy':>5} "
          f"{'nodes':>5}  train s range")


def row(label: str, workers: int, r: dict) -> str:
    return (f"{label:8} {workers:>7} {r['setup_s']:>8.2f} {r['train_s']:>8.2f} {r['steps']:>8} "
            f"{r['steps_per_s']:>9.0f} {r['iter_ms']:>8.1f} {r['rollout_cpu_s']:>13.2f} "
            f"{r['overhead_cpu_s']:>14.2f} "
            f"{r['busy']:>5.2f} {r['nodes']:>5}  {r.get('train_range', '')}")


def compare_backends(args) -> None:
    backends = [("raylite", sys.executable)]
    if not args.no_ray:
        ray_python, why = find_ray_python(args.ray_python)
        print(f"ray: {ray_python} ({why})" if ray_python else f"ray: skipped: {why}")
        if ray_python:
            backends.append(("ray", ray_python))
    print(f"ES workload: {args.env}, {args.iterations} iterations x {args.population} "
          f"episodes, {args.pairs_per_task} pairs per call, seed 0, {os.cpu_count()} CPUs, "
          f"{args.repeats} run(s) per configuration (medians)")
    runs: dict = {(b, w): [] for b, _ in backends for w in (1, 2)}
    for _ in range(args.repeats):          # alternate backends so both see the same load
        for workers in (1, 2):
            for backend, python in backends:
                r = run_config(python, backend, workers, args)
                if r:
                    runs[backend, workers].append(r)
    results = {key: median_run(rs) for key, rs in runs.items() if rs}
    print(HEADER)
    for (backend, workers), r in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(row(backend, workers, r))
    for backend, _ in backends:
        one, two = results.get((backend, 1)), results.get((backend, 2))
        if one and two:
            print(f"{backend}: 2 workers vs 1: {two['steps_per_s'] / one['steps_per_s']:.2f}x steps/s")
    print("rollout CPU = CPU seconds of the workers' threads in episodes; overhead CPU = CPU "
          "seconds of every other thread and process of the run (driver, runtime daemons, "
          "worker threads outside episodes) during training; busy = fraction of worker "
          "wall time spent in episodes")
    for workers in (1, 2):
        lite, ray = results.get(("raylite", workers)), results.get(("ray", workers))
        if lite and ray:
            print(f"{workers} worker(s): raylite/ray steady-state steps/s "
                  f"{lite['steps_per_s'] / ray['steps_per_s']:.2f}x (target >= 1.1x); "
                  f"training time {lite['train_s'] / ray['train_s']:.2f}x; total incl. "
                  f"start-up {lite['total_s'] / ray['total_s']:.2f}x")
            # CPU spent per training step, all processes of the run: what the runtime
            # costs, independent of how much CPU other jobs left the run.
            cpu = {k: (r["rollout_cpu_s"] + r["overhead_cpu_s"]) / r["steps"]
                   for k, r in (("lite", lite), ("ray", ray))}
            print(f"{workers} worker(s): CPU per env step raylite/ray "
                  f"{cpu['lite'] / cpu['ray']:.2f}x (overhead CPU "
                  f"{lite['overhead_cpu_s']:.2f} s vs {ray['overhead_cpu_s']:.2f} s)")


class CLICluster:
    """Nodes started with ``raylite start`` in a private RAYLITE_TMPDIR; ``stop`` stops
    exactly those (``raylite stop`` only reads that directory's started_sessions)."""

    def __init__(self):
        self.tmpdir = tempfile.mkdtemp(prefix="raylite-bench-es-")   # mode 0700
        self.env = dict(os.environ, RAYLITE_TMPDIR=self.tmpdir)
        for name in ("RAY_ADDRESS", "RAYLITE_ADDRESS", "RAYLITE_TOKEN"):
            self.env.pop(name, None)
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p)
        self.address = None
        self.nodes = 0

    def _cli(self, *args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "raylite.cli.main", *args], env=self.env,
                              capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"raylite {' '.join(args)} failed ({proc.returncode}):\n"
                               f"{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def add_node(self) -> None:
        """Start the head (first call) or one more node with one CPU."""
        if self.address is None:
            out = self._cli("start", "--head", "--port", "0", "--num-cpus", "1")
            join = next(line for line in out.splitlines() if "--address=" in line)
            self.address = join.split("--address=")[1].split()[0]
            with open(join.split("--token-file=")[1].split()[0]) as f:
                self.env["RAYLITE_TOKEN"] = f.read().strip()
        else:
            self._cli("start", "--address", self.address, "--num-cpus", "1")
        self.nodes += 1

    def stop(self) -> None:
        try:
            if self.nodes:
                self._cli("stop")
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)


def cluster_mode(args) -> None:
    print(f"ES workload on a raylite CLI cluster (1 CPU per node, one worker per node): "
          f"{args.env}, {args.iterations} iterations x {args.population} episodes, "
          f"{args.pairs_per_task} pairs per call, {os.cpu_count()} CPUs on this machine")
    cluster = CLICluster()
    results = {}
    try:
        for nodes in range(1, args.cluster + 1):
            cluster.add_node()
            time.sleep(1.0)   # let the new node's heartbeat reach the head's view
            runs = [r for r in (run_config(sys.executable, "raylite", nodes, args,
                                           address=cluster.address, env=cluster.env)
                                for _ in range(args.repeats)) if r]
            if runs:
                results[nodes] = median_run(runs)
    finally:
        cluster.stop()
    print(HEADER.replace("backend ", "cluster "))
    for nodes, r in results.items():
        print(row(f"{nodes} node" + "s" * (nodes > 1), nodes, r))
    if 1 in results:
        for nodes, r in results.items():
            if nodes > 1:
                print(f"{nodes} nodes vs 1: {r['steps_per_s'] / results[1]['steps_per_s']:.2f}x steps/s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--population", type=int, default=40)
    p.add_argument("--pairs-per-task", type=int, default=2)
    p.add_argument("--noise-size", type=int, default=25_000_000)
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration (median kept)")
    p.add_argument("--ray-python", default=None,
                   help="interpreter with Ray (and this repo's dependencies) installed; "
                        "default: $RAYLITE_BENCH_RAY_PYTHON, else this one if it has ray")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--cluster", type=int, default=0, metavar="N",
                   help="instead: raylite on a CLI cluster of 1..N nodes (one worker each)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="raylite", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--address", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.cluster:
        return cluster_mode(args)
    return compare_backends(args)


if __name__ == "__main__":
    main()
