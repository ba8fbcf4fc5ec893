"""Many actors on one node: time to create N actors (num_cpus=0) and call each once,
and the memory all processes of the backend use then (sum of PSS), raylite vs Ray.

Usage::

    python benchmarks/bench_many_actors.py --n 200                  # raylite only
    python benchmarks/bench_many_actors.py --n 100 --ray-python /work/rayvenv/bin/python

Each backend runs in a fresh process. Figures are printed (one JSON line per backend
and a short table), never asserted. PSS comes from /proc/<pid>/smaps_rollup, so pages
that forked workers still share with their zygote count once in the sum.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _descendants(root: int) -> list[int]:
    """``root`` and every process below it (from /proc, no psutil needed)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _rollup(pid: int) -> dict:
    """Rss/Pss/Private fields of /proc/<pid>/smaps_rollup in KiB ({} when gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def memory(root: int) -> dict:
    """Sum of PSS/RSS (MiB) over the driver and its descendants (both runtimes start
    their daemons and workers below the driver) and how many there are."""
    pids = set(_descendants(root))
    pss = rss = private = 0
    count = 0
    per_worker = []
    for pid in pids:
        r = _rollup(pid)
        if not r:
            continue
        count += 1
        pss += r.get("Pss", 0)
        rss += r.get("Rss", 0)
        private += r.get("Private_Dirty", 0) + r.get("Private_Clean", 0)
        per_worker.append(r.get("Pss", 0))
    per_worker.sort()
    return {"processes": count, "pss_mib": round(pss / 1024, 1), "rss_mib": round(rss / 1024, 1),
            "private_mib": round(private / 1024, 1),
            "median_pss_mib": round(per_worker[len(per_worker) // 2] / 1024, 2) if per_worker else 0}


def child(backend: str, n: int) -> None:
    if backend == "ray":
        import ray
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    else:
        sys.path.insert(0, REPO)
        import raylite as ray
        ray.init(num_cpus=2, logging_level="ERROR")

    @ray.remote(num_cpus=0)
    class Pinger:
        def ping(self):
            return os.getpid()

    @ray.remote
    def warm():
        return 1

    ray.get(warm.remote())
    started = time.perf_counter()
    actors = [Pinger.remote() for _ in range(n)]
    created = time.perf_counter() - started
    pids = ray.get([a.ping.remote() for a in actors], timeout=1800)
    elapsed = time.perf_counter() - started
    assert len(set(pids)) == n
    time.sleep(1.0)   # let lazily started threads settle before measuring
    mem = memory(os.getpid())
    print(json.dumps({"backend": backend, "n": n, "seconds": round(elapsed, 2),
                      "submit_seconds": round(created, 2), "ms_per_actor": round(1000 * elapsed / n, 1),
                      **mem}), flush=True)
    ray.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--ray-python", default="", help="also run Ray with this interpreter")
    p.add_argument("--child", choices=["raylite", "ray"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        child(a.child, a.n)
        return
    runs = [("raylite", sys.executable)]
    if a.ray_python:
        runs.append(("ray", a.ray_python))
    rows = []
    for backend, python in runs:
        # Ray must not find this repository's folders on its path: run it from /tmp.
        cwd = REPO if backend == "raylite" else "/tmp"
        out = subprocess.run([python, os.path.abspath(__file__), "--child", backend, "--n", str(a.n)],
                             cwd=cwd, capture_output=True, text=True, timeout=3600)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            print(f"{backend}: failed\n{out.stderr[-3000:]}")
            continue
        rows.append(json.loads(lines[-1]))
        print(lines[-1])
    if rows:
        print(f"\n{'backend':8} {'n':>5} {'seconds':>8} {'ms/actor':>9} {'procs':>6} "
              f"{'PSS MiB':>9} {'RSS MiB':>9} {'median PSS':>11}")
        for r in rows:
            print(f"{r['backend']:8} {r['n']:>5} {r['seconds']:>8} {r['ms_per_actor']:>9} "
                  f"{r['processes']:>6} {r['pss_mib']:>9} {r['rss_mib']:>9} {r['median_pss_mib']:>11}")


if __name__ == "__main__":
    main()
