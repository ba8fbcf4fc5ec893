"""Benchmark workloads, written once against the Ray API and run on either backend.

    python benchmarks/workloads.py --backend raylite|ray --workload NAME [--repeat N]

Each invocation runs ONE workload in this (fresh) process and prints one line

    @@RESULT {"workload": ..., "backend": ..., "metrics": [...], "error": ..., "extra": {...}}

that benchmarks/run.py parses. A metric is {"name", "value", "unit", "better", "samples"};
"value" is the median of "samples". Nothing here asserts a timing.

The module imports only the standard library at the top level, so the cold-start workload
times the backend's own import; numpy and psutil are imported after the backend is up.
This file must run under both interpreters (the raylite one and Ray's venv), so it uses
nothing from raylite except through ``ray``.
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import json
import statistics
import sys
import time
import traceback

RESULT_PREFIX = "@@RESULT "
NUM_CPUS = 2
BIG_BYTES = 100 * 1024 * 1024          # 100 MiB of float64
BATCH = 1000                           # tasks/calls per batched round
IN_FLIGHT = 10                         # large-argument tasks kept in flight
MIN_SECONDS = 1.0                      # a timed-loop sample runs at least this long

# Default repeats per workload when --repeat is not given; cold start repeats are fresh
# processes started by run.py, so its default lives there.
DEFAULT_REPEAT = 3


class Unsupported(Exception):
    """The backend cannot run this workload (e.g. no actor support yet): report n/a."""


def import_backend(name: str):
    if name == "raylite":
        return importlib.import_module("raylite")
    if name == "ray":
        return importlib.import_module("ray")
    raise ValueError(f"unknown backend {name!r}")


def init(ray) -> None:
    if ray.__name__ == "ray":
        # A fresh local instance even when other Ray clusters run on this machine
        # (plain ray.init() would join the newest one and refuse num_cpus).
        ray.init(address="local", num_cpus=NUM_CPUS)
    else:
        ray.init(num_cpus=NUM_CPUS)


def metric(name: str, samples: list[float], unit: str, better: str) -> dict:
    return {"name": name, "value": statistics.median(samples), "unit": unit,
            "better": better, "samples": samples}


def timed_rate(op, ops_per_call: int, min_seconds: float = MIN_SECONDS) -> float:
    """Call ``op`` until ``min_seconds`` have passed; return operations per second.

    Looping on the clock instead of a fixed count keeps each sample long enough to be
    stable on the slow backend and short on the fast one."""
    calls = 0
    start = time.perf_counter()
    while True:
        op()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return calls * ops_per_call / elapsed


def define_noop(ray):
    @ray.remote
    def noop():
        return None
    return noop


def define_actor(ray):
    """Return the actor class, or raise Unsupported when the backend has no actors."""
    class Counter:
        def __init__(self):
            self.n = 0

        def incr(self):
            self.n += 1
            return self.n

    try:
        return ray.remote(Counter)
    except Exception as exc:  # noqa: BLE001 - any failure means "no actors here yet"
        raise Unsupported(f"@ray.remote on a class failed: {exc!r}") from exc


def make_actor(ray):
    Counter = define_actor(ray)
    try:
        actor = Counter.remote()
        ray.get(actor.incr.remote())
    except Exception as exc:  # noqa: BLE001
        raise Unsupported(f"actor creation/call failed: {exc!r}") from exc
    return actor


def big_array():
    import numpy as np
    # arange writes every page, so put/get work on real memory rather than the shared
    # zero page that np.zeros would leave mapped.
    return np.arange(BIG_BYTES // 8, dtype=np.float64)


# ---------------------------------------------------------------------------------------
# workloads: each takes (ray, repeat) and returns (metrics, extra); ray is initialised
# by the caller except for cold_start, which times the import and init itself.


def w_cold_start(backend: str, repeat: int):
    t0 = time.perf_counter()
    ray = import_backend(backend)
    t_import = time.perf_counter()
    init(ray)
    t_init = time.perf_counter()

    @ray.remote
    def first():
        return 1

    value = ray.get(first.remote())
    t_first = time.perf_counter()
    assert value == 1
    ray.shutdown()
    t_shutdown = time.perf_counter()
    extra = {"import_s": t_import - t0, "init_s": t_init - t_import,
             "first_task_s": t_first - t_init, "shutdown_s": t_shutdown - t_first}
    return [metric("cold_start", [t_first - t0], "s", "lower")], extra


def w_tasks_batch(ray, repeat: int):
    noop = define_noop(ray)
    ray.get([noop.remote() for _ in range(BATCH)])             # warm-up: workers up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        ray.get([noop.remote() for _ in range(BATCH)])
        samples.append(BATCH / (time.perf_counter() - start))
    return [metric("tasks_batch", samples, "tasks/s", "higher")], {}


def w_tasks_sync(ray, repeat: int):
    noop = define_noop(ray)
    for _ in range(50):
        ray.get(noop.remote())
    samples = [timed_rate(lambda: ray.get(noop.remote()), 1) for _ in range(repeat)]
    return [metric("tasks_sync", samples, "tasks/s", "higher")], {}


def w_actor_batch(ray, repeat: int):
    actor = make_actor(ray)
    ray.get([actor.incr.remote() for _ in range(100)])          # warm-up
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        ray.get([actor.incr.remote() for _ in range(BATCH)])
        samples.append(BATCH / (time.perf_counter() - start))
    return [metric("actor_batch", samples, "calls/s", "higher")], {}


def w_actor_sync(ray, repeat: int):
    actor = make_actor(ray)
    for _ in range(50):
        ray.get(actor.incr.remote())
    samples = [timed_rate(lambda: ray.get(actor.incr.remote()), 1) for _ in range(repeat)]
    return [metric("actor_sync", samples, "calls/s", "higher")], {}


def w_put_large(ray, repeat: int):
    arr = big_array()
    start = time.perf_counter()
    ref = ray.put(arr)                  # warm-up, reported apart: a fresh store's pages
    first = arr.nbytes / (time.perf_counter() - start) / 1e9    # fault in on first use
    del ref
    samples = []
    for _ in range(max(repeat, 5)):
        start = time.perf_counter()
        ref = ray.put(arr)
        samples.append(arr.nbytes / (time.perf_counter() - start) / 1e9)
        del ref                                                 # free the store copy
        time.sleep(0.05)
    return [metric("put_large", samples, "GB/s", "higher")], {"bytes": arr.nbytes,
                                                             "first_put_gbps": first}


def w_get_large(ray, repeat: int):
    import numpy as np
    arr = big_array()
    ref = ray.put(arr)
    del arr
    out = ray.get(ref)                                          # warm-up
    extra = {"writeable": bool(out.flags.writeable), "bytes": int(out.nbytes),
             "correct": bool(out[-1] == BIG_BYTES // 8 - 1 and out.dtype == np.float64)}
    del out
    samples = [timed_rate(lambda: ray.get(ref), 1) for _ in range(repeat)]
    # A copying get of 100 MiB cannot beat memcpy (~5 GB/s here, ~50 gets/s); far above
    # that means the array is a view of the store.
    extra["zero_copy_likely"] = statistics.median(samples) > 200
    return [metric("get_large", samples, "gets/s", "higher")], extra


def w_task_large_arg(ray, repeat: int):
    @ray.remote
    def consume(x):
        return int(x.shape[0])

    arr = big_array()
    ref = ray.put(arr)
    del arr
    expected = BIG_BYTES // 8
    assert ray.get([consume.remote(ref) for _ in range(IN_FLIGHT)]) == [expected] * IN_FLIGHT

    def window(total: int) -> float:
        """Keep IN_FLIGHT tasks running until ``total`` have finished; tasks/s."""
        start = time.perf_counter()
        pending = [consume.remote(ref) for _ in range(IN_FLIGHT)]
        submitted, done = IN_FLIGHT, 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            done += len(ready)
            for r in ready:
                ray.get(r)
            while submitted < total and len(pending) < IN_FLIGHT:
                pending.append(consume.remote(ref))
                submitted += 1
        return done / (time.perf_counter() - start)

    samples = []
    for _ in range(repeat):
        # Size the round to take about MIN_SECONDS at the rate of a short probe.
        probe = window(IN_FLIGHT * 2)
        samples.append(window(max(IN_FLIGHT * 2, int(probe * MIN_SECONDS))))
    return [metric("task_large_arg", samples, "tasks/s", "higher")], {}


def w_small_put_get(ray, repeat: int):
    for _ in range(100):
        ray.get(ray.put(0))
    samples = [timed_rate(lambda: ray.get(ray.put(0)), 1) for _ in range(repeat)]
    return [metric("small_put_get", samples, "calls/s", "higher")], {}


def w_pg_create_remove(ray, repeat: int):
    """Create a one-bundle {CPU: 1} placement group, wait until it is ready, remove it."""
    try:
        pgs = importlib.import_module(ray.__name__ + ".util.placement_group")
    except ImportError as exc:
        raise Unsupported(f"no placement groups: {exc!r}") from exc

    def once():
        pg = pgs.placement_group([{"CPU": 1}])
        ray.get(pg.ready())
        pgs.remove_placement_group(pg)

    for _ in range(3):                                          # warm-up
        once()
    samples = [timed_rate(once, 1) for _ in range(repeat)]
    return [metric("pg_create_remove", samples, "groups/s", "higher")], {}


# ---------------------------------------------------------------------------------------
# memory


def backend_processes(backend: str):
    """The driver and its descendants, plus (for Ray) any process whose command line names
    this driver's Ray session (``.../session_<date>_<driver pid>``), in case Ray ever
    daemonises a helper. Matching on the session rather than on "ray" alone keeps other
    people's concurrent Ray clusters out of the sum."""
    import re

    import psutil
    me = psutil.Process()
    procs = {p.pid: p for p in [me, *me.children(recursive=True)]}
    if backend == "ray":
        session = re.compile(rf"session_[0-9_-]+_{me.pid}\b")
        for p in psutil.process_iter(["cmdline"]):
            try:
                cmd = " ".join(p.info["cmdline"] or [])
            except TypeError:
                continue
            if p.pid not in procs and "ray" in cmd and session.search(cmd):
                procs[p.pid] = p
    return list(procs.values())


def memory_mib(backend: str) -> tuple[float, int, str]:
    """Sum of PSS (RSS where PSS is unreadable) of the backend's processes, in MiB."""
    import psutil
    total, count, kind = 0, 0, "pss"
    for p in backend_processes(backend):
        try:
            try:
                total += p.memory_full_info().pss
            except (AttributeError, psutil.AccessDenied):
                total += p.memory_info().rss
                kind = "rss"
            count += 1
        except psutil.NoSuchProcess:
            continue
    return total / 2**20, count, kind


def shm_used_mib() -> float:
    import shutil
    try:
        return shutil.disk_usage("/dev/shm").used / 2**20
    except OSError:
        return 0.0


def settle(backend: str, quiet_seconds: float = 1.0, max_seconds: float = 8.0) -> None:
    """Wait until the backend's process count has stopped changing (workers start lazily)."""
    deadline = time.monotonic() + max_seconds
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        n = len(backend_processes(backend))
        if n != last:
            last, stable_since = n, time.monotonic()
        elif time.monotonic() - stable_since >= quiet_seconds:
            return
        time.sleep(0.2)


def w_memory(ray, repeat: int, backend: str):
    noop = define_noop(ray)
    ray.get(noop.remote())
    settle(backend)
    idle, idle_n, kind = memory_mib(backend)
    shm_idle = shm_used_mib()

    # Then some work: tasks, an actor, a 100 MiB object read by tasks.
    ray.get([noop.remote() for _ in range(BATCH)])
    actor_note = "actor used"
    try:
        actor = make_actor(ray)
        ray.get([actor.incr.remote() for _ in range(100)])
    except Unsupported as exc:
        actor_note = f"no actor: {exc}"

    @ray.remote
    def consume(x):
        return int(x.shape[0])

    ref = ray.put(big_array())
    ray.get([consume.remote(ref) for _ in range(4)])
    settle(backend)
    busy, busy_n, _ = memory_mib(backend)
    # Store files under /dev/shm that no process maps are not in anyone's PSS; show how
    # much tmpfs the work added (noisy if others use /dev/shm at the same time).
    extra = {"kind": kind, "idle_processes": idle_n, "after_work_processes": busy_n,
             "dev_shm_growth_mib": round(shm_used_mib() - shm_idle, 1), "note": actor_note}
    return [metric("memory_idle", [idle], "MiB", "lower"),
            metric("memory_after_work", [busy], "MiB", "lower")], extra


WORKLOADS = {
    "cold_start": w_cold_start,
    "tasks_batch": w_tasks_batch,
    "tasks_sync": w_tasks_sync,
    "actor_batch": w_actor_batch,
    "actor_sync": w_actor_sync,
    "put_large": w_put_large,
    "get_large": w_get_large,
    "task_large_arg": w_task_large_arg,
    "small_put_get": w_small_put_get,
    "pg_create_remove": w_pg_create_remove,
    "memory": w_memory,
}


def run(backend: str, workload: str, repeat: int) -> dict:
    result = {"workload": workload, "backend": backend, "metrics": [], "error": None,
              "unsupported": False, "extra": {}}
    ray = None
    try:
        if workload == "cold_start":
            metrics, extra = w_cold_start(backend, repeat)
        else:
            ray = import_backend(backend)
            init(ray)
            fn = WORKLOADS[workload]
            if workload == "memory":
                metrics, extra = fn(ray, repeat, backend)
            else:
                metrics, extra = fn(ray, repeat)
        result["metrics"], result["extra"] = metrics, extra
    except Unsupported as exc:
        result["unsupported"] = True
        result["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - reported, never raised to the runner
        result["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        if ray is not None:
            try:
                ray.shutdown()
            except Exception:  # noqa: BLE001
                traceback.print_exc()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["raylite", "ray"], required=True)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--watchdog", type=float, default=0,
                        help="dump every thread's stack to stderr and exit after this "
                             "many seconds (0: never), so a hang leaves a trace")
    args = parser.parse_args(argv)
    if args.watchdog > 0:
        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    result = run(args.backend, args.workload, max(1, args.repeat))
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
