"""Streaming generators: yielded items/s reaching the driver, on raylite and (optionally) Ray.

Usage::

    python benchmarks/bench_generators.py                                # raylite only
    python benchmarks/bench_generators.py --ray-python /path/to/venv-with-ray/bin/python

Each backend runs in a fresh process: a task, a sync actor method and an async actor
method each yield ``--items`` small ints; the driver iterates the ObjectRefGenerator
(refs only, then with ``get`` of every item), and once more with backpressure.
Figures are printed, never asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child(backend: str, items: int) -> None:
    """Run every workload in this process; print one JSON line of items/s."""
    if backend == "ray":
        import ray
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    else:
        sys.path.insert(0, REPO)
        import raylite as ray
        ray.init(num_cpus=2, logging_level="ERROR")

    @ray.remote
    def numbers(n):
        yield from range(n)

    @ray.remote
    class Sync:
        def numbers(self, n):
            yield from range(n)

    @ray.remote
    class Async:
        async def numbers(self, n):
            for i in range(n):
                yield i

    sync_actor, async_actor = Sync.remote(), Async.remote()
    ray.get([r for r in numbers.remote(10)])          # warm up workers and actors
    list(sync_actor.numbers.remote(10))
    list(async_actor.numbers.remote(10))

    def rate(make, fetch: bool) -> float:
        started = time.perf_counter()
        count = 0
        for ref in make():
            if fetch:
                ray.get(ref)
            count += 1
        assert count == items
        return round(count / (time.perf_counter() - started))

    figures = {
        "task_refs": rate(lambda: numbers.remote(items), False),
        "task_get": rate(lambda: numbers.remote(items), True),
        "task_backpressure_100": rate(
            lambda: numbers.options(_generator_backpressure_num_objects=100).remote(items), True),
        "actor_get": rate(lambda: sync_actor.numbers.remote(items), True),
        "async_actor_get": rate(lambda: async_actor.numbers.remote(items), True),
    }
    print(json.dumps(figures))
    ray.shutdown()


def run(python: str, backend: str, items: int) -> dict:
    out = subprocess.run([python, os.path.abspath(__file__), "--child", backend,
                          "--items", str(items)],
                         capture_output=True, text=True, timeout=600, check=False,
                         cwd=os.path.dirname(os.path.abspath(__file__)),
                         env={**os.environ, "PYTHONPATH": REPO if backend == "raylite" else ""})
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{backend} failed:\n{out.stdout}\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--ray-python", default="")
    parser.add_argument("--child", default="")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.items)
        return
    results = {"raylite": run(sys.executable, "raylite", args.items)}
    if args.ray_python:
        results["ray"] = run(args.ray_python, "ray", args.items)
    names = list(results["raylite"])
    print(f"{'items/s (' + str(args.items) + ' items)':34}" + "".join(f"{b:>12}" for b in results))
    for name in names:
        print(f"{name:34}" + "".join(f"{results[b][name]:>12,}" for b in results))


if __name__ == "__main__":
    main()
