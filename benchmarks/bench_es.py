"""ES throughput: env steps/s with 1 and 2 workers, on raylite and (optionally) Ray.

Usage::

    python benchmarks/bench_es.py                                  # raylite only
    python benchmarks/bench_es.py --ray-python /work/rayvenv/bin/python

Every configuration runs the same fixed workload in a fresh process (so start-up is
measured too): ``--iterations`` ES iterations on CartPole-v1 from seed 0 with a fixed
batch split, so the episodes, and hence the env steps, are identical across backends
and worker counts (ES batches are pure functions of their seeds).  Figures are printed,
never asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(args) -> None:
    """Run one configuration in this process and print its figures as one JSON line."""
    sys.path.insert(0, REPO)
    started = time.perf_counter()
    from examples.es.config import ESConfig
    from examples.es.trainer import ESTrainer

    cfg = ESConfig(env=args.env, backend=args.backend, workers=args.workers, seed=0,
                   iterations=args.iterations, population=args.population,
                   pairs_per_task=args.pairs_per_task, eval_every=10**9,
                   noise_size=args.noise_size, progress=False)
    trainer = ESTrainer(cfg)
    setup = time.perf_counter() - started
    history = trainer.train()
    train = sum(m["iter_time"] for m in history)
    trainer.close()
    print(json.dumps({"backend": args.backend, "workers": args.workers, "setup_s": setup,
                      "train_s": train, "total_s": time.perf_counter() - started,
                      "steps": trainer.total_steps,
                      "iter_ms": 1000 * train / len(history),
                      "busy": sum(m["worker_busy"] * m["iter_time"] for m in history) / train}),
          flush=True)


def run_config(python: str, backend: str, workers: int, args) -> dict | None:
    cmd = [python, os.path.abspath(__file__), "--child", "--backend", backend,
           "--workers", str(workers), "--env", args.env, "--iterations", str(args.iterations),
           "--population", str(args.population), "--pairs-per-task", str(args.pairs_per_task),
           "--noise-size", str(args.noise_size)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900, check=False)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    print(f"  {backend} x{workers} failed (exit {proc.returncode}):\n"
          + "\n".join(proc.stderr.splitlines()[-15:]))
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--population", type=int, default=40)
    p.add_argument("--pairs-per-task", type=int, default=2)
    p.add_argument("--noise-size", type=int, default=25_000_000)
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration (best kept)")
    p.add_argument("--ray-python", default=None,
                   help="interpreter with Ray installed (default: this one, if it has ray)")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", default="raylite", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    backends = [("raylite", sys.executable)]
    ray_python = args.ray_python or (sys.executable if importlib.util.find_spec("ray") else None)
    if ray_python and not args.no_ray:
        backends.append(("ray", ray_python))

    print(f"ES workload: {args.env}, {args.iterations} iterations x {args.population} "
          f"episodes, {args.pairs_per_task} pairs per call, seed 0, {os.cpu_count()} CPUs")
    print(f"{'backend':8} {'workers':>7} {'setup s':>8} {'train s':>8} {'steps':>8} "
          f"{'steps/s':>9} {'ms/iter':>8} {'busy':>5}")
    results = {}
    for backend, python in backends:
        for workers in (1, 2):
            runs = [r for r in (run_config(python, backend, workers, args)
                                for _ in range(args.repeats)) if r]
            if not runs:
                continue
            best = min(runs, key=lambda r: r["train_s"])
            best["steps_per_s"] = best["steps"] / best["train_s"]
            results[backend, workers] = best
            print(f"{backend:8} {workers:>7} {best['setup_s']:>8.2f} {best['train_s']:>8.2f} "
                  f"{best['steps']:>8} {best['steps_per_s']:>9.0f} {best['iter_ms']:>8.1f} "
                  f"{best['busy']:>5.2f}",
                  flush=True)

    for backend, _ in backends:
        one, two = results.get((backend, 1)), results.get((backend, 2))
        if one and two:
            print(f"{backend}: 2 workers vs 1: {two['steps_per_s'] / one['steps_per_s']:.2f}x "
                  f"steps/s (target >= 1.8x)")
    print("busy = fraction of worker time spent in rollouts (1.0: no runtime overhead, no idling)")
    for workers in (1, 2):
        lite, ray = results.get(("raylite", workers)), results.get(("ray", workers))
        if lite and ray:
            print(f"{workers} worker(s): raylite/ray time: training "
                  f"{lite['train_s'] / ray['train_s']:.2f}x, total incl. start-up "
                  f"{lite['total_s'] / ray['total_s']:.2f}x (target <= 0.8x); steps/s "
                  f"{lite['steps_per_s'] / ray['steps_per_s']:.2f}x")


if __name__ == "__main__":
    main()
