"""raylite against Ray, side by side: runs benchmarks/workloads.py and prints a table.

    python benchmarks/run.py                       # everything, both backends (~3-4 min)
    python benchmarks/run.py --only tasks_batch tasks_sync --repeat 5
    python benchmarks/run.py --ray-python /work/rayvenv/bin/python --json out.json

Every workload runs in a fresh subprocess per backend, so each pays its own import and
init and the two runtimes never share a process: raylite under this interpreter, Ray
under --ray-python (default: this interpreter if it can import ray, else
/work/rayvenv/bin/python, else Ray is skipped). The table's ratio is oriented so that
> 1 always means raylite is better (raylite/ray for rates, ray/raylite for seconds and
memory). PASS/MISS compares against the project's targets; it is reporting only and the
exit status is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WORKLOADS_PY = os.path.join(HERE, "workloads.py")
RESULT_PREFIX = "@@RESULT "
FALLBACK_RAY_PYTHON = "/work/rayvenv/bin/python"

# Workloads in run order; the memory workload yields two rows.
WORKLOADS = ["cold_start", "tasks_batch", "tasks_sync", "actor_batch", "actor_sync",
             "put_large", "get_large", "task_large_arg", "small_put_get", "pg_create_remove",
             "memory"]
METRICS = {"memory_idle": "memory", "memory_after_work": "memory"}


@dataclasses.dataclass(frozen=True)
class Target:
    """What raylite should reach: an absolute bound and/or a ratio (> 1 = raylite better)."""
    text: str
    abs_min: float | None = None        # value >= abs_min (rates)
    abs_max: float | None = None        # value <= abs_max (seconds)
    ratio_min: float | None = None      # ratio >= ratio_min
    ratio_strict: bool = False          # ratio > ratio_min instead of >=

    def check(self, value: float | None, ratio: float | None) -> str:
        if value is None:
            return "n/a"
        if self.abs_min is None and self.abs_max is None and self.ratio_min is None:
            return "info"
        verdicts = []
        if self.abs_min is not None:
            verdicts.append(value >= self.abs_min)
        if self.abs_max is not None:
            verdicts.append(value <= self.abs_max)
        if self.ratio_min is not None:
            if ratio is None:
                verdicts.append(None)
            elif self.ratio_strict:
                verdicts.append(ratio > self.ratio_min)
            else:
                verdicts.append(ratio >= self.ratio_min)
        if False in verdicts:
            return "MISS"
        if None in verdicts:
            return "n/a (no ray)"
        return "PASS"


TARGETS = {
    "cold_start": Target("<= 0.5 s, < ray", abs_max=0.5, ratio_min=1.0, ratio_strict=True),
    "tasks_batch": Target(">= 2x ray", ratio_min=2.0),
    "tasks_sync": Target(">= 2x ray", ratio_min=2.0),
    "actor_batch": Target(">= 1.5x ray", ratio_min=1.5),
    "actor_sync": Target(">= 2x ray", ratio_min=2.0),
    "put_large": Target(">= 4 GB/s, >= 5x ray", abs_min=4.0, ratio_min=5.0),
    "get_large": Target(">= ray", ratio_min=1.0),
    "task_large_arg": Target(">= ray", ratio_min=1.0),
    "small_put_get": Target(">= ray", ratio_min=1.0),
    "pg_create_remove": Target(">= 2x ray", ratio_min=2.0),
    "memory_idle": Target("(info)"),
    "memory_after_work": Target("(info)"),
}

LABELS = {
    "cold_start": "cold start: import+init+1st result",
    "tasks_batch": "1000 no-op tasks, batched",
    "tasks_sync": "sync task round trips",
    "actor_batch": "1000 actor calls, batched",
    "actor_sync": "sync actor round trips",
    "put_large": "put 100 MiB float64",
    "get_large": "get 100 MiB (zero-copy)",
    "task_large_arg": "tasks on 100 MiB ref, 10 in flight",
    "small_put_get": "get(put(0))",
    "pg_create_remove": "placement group create+ready+remove",
    "memory_idle": "memory after init (idle)",
    "memory_after_work": "memory after work",
}


# ---------------------------------------------------------------------------------------
# subprocesses


def run_workload(python: str, backend: str, workload: str, repeat: int,
                 timeout: float) -> dict:
    """Run one workload in a fresh process; return its parsed result (never raises)."""
    env = dict(os.environ)
    if backend == "raylite":
        # Benchmark this checkout's raylite even if another one is installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    else:
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no prompt, no network attempt
    # The watchdog makes a hung workload print its stacks before the kill below.
    cmd = [python, WORKLOADS_PY, "--backend", backend, "--workload", workload,
           "--repeat", str(repeat), "--watchdog", str(max(1.0, timeout - 5))]
    start = time.perf_counter()
    # A new session so a hung run can be killed with everything it started.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=REPO, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        return {"workload": workload, "backend": backend, "metrics": [], "extra": {},
                "error": f"timed out after {timeout:.0f} s", "unsupported": False,
                "stderr_tail": tail(err, 80)}
    wall = time.perf_counter() - start
    leftovers = reap_session(proc.pid)
    for line in reversed(out.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            result["process_wall_s"] = wall
            result["leftovers"] = leftovers
            if result.get("error") and not result.get("unsupported"):
                result["stderr_tail"] = tail(err)
            return result
    hung = "Timeout (" in err                   # faulthandler's watchdog fired
    why = f"hung, killed after {timeout - 5:.0f} s" if hung else \
        f"no result line (exit status {proc.returncode})"
    return {"workload": workload, "backend": backend, "metrics": [], "extra": {},
            "error": why, "unsupported": False, "stderr_tail": tail(err + out, 80),
            "leftovers": leftovers}


def reap_session(sid: int, grace: float = 3.0) -> list[str]:
    """Processes the workload left behind after it exited (its session outlives it).

    Waits ``grace`` seconds for them to finish on their own, then kills them so they
    cannot disturb the next workload; returns the command lines of those that had to be
    killed (a runtime should leave nothing after ``shutdown()``)."""
    try:
        import psutil
    except ImportError:
        return []

    def members():
        found = []
        for p in psutil.process_iter():
            try:
                if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
            except (OSError, psutil.Error):
                continue
        return found

    deadline = time.monotonic() + grace
    left = members()
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = members()
    names = []
    for p in left:
        try:
            names.append(" ".join(p.cmdline())[:100] or p.name())
            p.kill()
        except psutil.Error:
            continue
    return names


def tail(text: str, lines: int = 15) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


def merge_cold_starts(results: list[dict]) -> dict:
    """Cold start repeats are separate processes: take the median of their samples."""
    ok = [r for r in results if r["metrics"]]
    if not ok:
        return results[-1]
    samples = [r["metrics"][0]["value"] for r in ok]
    merged = dict(ok[0])
    merged["metrics"] = [dict(ok[0]["metrics"][0], value=statistics.median(samples),
                              samples=samples)]
    merged["extra"] = {k: statistics.median(r["extra"][k] for r in ok)
                       for k in ok[0]["extra"]}
    errors = [r["error"] for r in results if r.get("error")]
    merged["error"] = "; ".join(errors) or None
    merged["leftovers"] = [name for r in results for name in r.get("leftovers", [])]
    return merged


def find_ray_python(explicit: str | None) -> tuple[str | None, str]:
    """Pick the interpreter for the Ray backend; return (path or None, why)."""
    def can_import_ray(python: str) -> bool:
        try:
            return subprocess.run([python, "-c", "import ray; ray.init"], capture_output=True,
                                  timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    if explicit:
        if can_import_ray(explicit):
            return explicit, "--ray-python"
        return None, f"ray not available: {explicit} cannot import ray"
    if importlib.util.find_spec("ray") is not None and can_import_ray(sys.executable):
        return sys.executable, "this interpreter"
    if os.path.exists(FALLBACK_RAY_PYTHON) and can_import_ray(FALLBACK_RAY_PYTHON):
        return FALLBACK_RAY_PYTHON, "fallback venv"
    return None, "ray not available"


# ---------------------------------------------------------------------------------------
# table


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "GB/s":
        return f"{value:.2f} GB/s"
    if unit == "MiB":
        return f"{value:,.0f} MiB"
    return f"{value:,.0f}/s"


def metric_of(result: dict | None, name: str) -> dict | None:
    for m in (result or {}).get("metrics", []):
        if m["name"] == name:
            return m
    return None


def build_rows(results: dict, metric_names: list[str]) -> list[dict]:
    rows = []
    for name in metric_names:
        workload = METRICS.get(name, name)
        per = results.get(workload, {})
        lite, ray = metric_of(per.get("raylite"), name), metric_of(per.get("ray"), name)
        lv = lite["value"] if lite else None
        rv = ray["value"] if ray else None
        unit = (lite or ray or {}).get("unit", "")
        better = (lite or ray or {}).get("better", "higher")
        ratio = None
        if lv and rv:
            ratio = lv / rv if better == "higher" else rv / lv
        rows.append({"metric": name, "label": LABELS.get(name, name), "unit": unit,
                     "better": better, "raylite": lv, "ray": rv, "ratio": ratio,
                     "raylite_samples": lite["samples"] if lite else None,
                     "ray_samples": ray["samples"] if ray else None,
                     "target": TARGETS[name].text, "status": TARGETS[name].check(lv, ratio)})
    return rows


def print_table(rows: list[dict]) -> None:
    header = ["workload", "raylite", "ray", "ratio", "target", "result"]
    body = [[r["label"], fmt(r["raylite"], r["unit"]), fmt(r["ray"], r["unit"]),
             f"{r['ratio']:.2f}x" if r["ratio"] else "n/a", r["target"], r["status"]]
            for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(  # noqa: E731
        str(c).ljust(w) if i in (0, 4, 5) else str(c).rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for cells in body:
        print(line(cells))
    print("\nratio: raylite/ray for rates, ray/raylite for seconds and memory; "
          "> 1 means raylite is better.")


def print_notes(results: dict) -> None:
    notes = []
    for workload, per in results.items():
        for backend, r in per.items():
            if r.get("error"):
                kind = "n/a" if r.get("unsupported") else "ERROR"
                notes.append(f"{workload} [{backend}] {kind}: {r['error']}")
                if r.get("stderr_tail"):
                    notes.extend("    " + ln for ln in r["stderr_tail"].splitlines())
            if r.get("leftovers"):
                notes.append(f"{workload} [{backend}] {len(r['leftovers'])} process(es) "
                             f"still alive 3 s after exit, killed: "
                             + "; ".join(r["leftovers"][:3]))
            extra = r.get("extra") or {}
            if workload == "cold_start" and extra:
                parts = ", ".join(f"{k[:-2]} {v:.3f}" for k, v in extra.items())
                notes.append(f"cold_start [{backend}] median seconds: {parts}")
            if workload == "put_large" and extra:
                notes.append(f"put_large [{backend}] first (cold) put "
                             f"{extra['first_put_gbps']:.2f} GB/s; table shows later puts")
            if workload == "get_large" and extra:
                notes.append(f"get_large [{backend}] writeable={extra.get('writeable')} "
                             f"correct={extra.get('correct')} "
                             f"zero-copy likely={extra.get('zero_copy_likely')}")
            if workload == "memory" and extra:
                notes.append(f"memory [{backend}] {extra.get('kind')} of "
                             f"{extra.get('idle_processes')} -> "
                             f"{extra.get('after_work_processes')} processes, /dev/shm grew "
                             f"{extra.get('dev_shm_growth_mib')} MiB ({extra.get('note')})")
    if notes:
        print("\nnotes:")
        for n in notes:
            print("  " + n)


# ---------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", action="extend", metavar="NAME",
                        help=f"workloads to run (default all): {', '.join(WORKLOADS)}")
    parser.add_argument("--ray-python", metavar="PATH",
                        help="interpreter with Ray installed (default: autodetect)")
    parser.add_argument("--no-ray", action="store_true", help="run raylite only")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repeats per workload, median reported (default 3)")
    parser.add_argument("--timeout", type=float, default=90.0,
                        help="seconds before a workload process is killed (default 90; "
                             "the slowest healthy one takes ~20 s)")
    parser.add_argument("--json", metavar="OUT", help="also write all results as JSON")
    args = parser.parse_args(argv)

    selected = []
    for name in args.only or WORKLOADS:
        workload = METRICS.get(name, name)
        if workload not in WORKLOADS:
            parser.error(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")
        if workload not in selected:
            selected.append(workload)
    selected.sort(key=WORKLOADS.index)
    repeat = max(1, args.repeat or 3)

    backends = [("raylite", sys.executable)]
    if args.no_ray:
        print("ray: skipped (--no-ray)")
    else:
        ray_python, why = find_ray_python(args.ray_python)
        if ray_python:
            print(f"ray: {ray_python} ({why})")
            backends.append(("ray", ray_python))
        else:
            print(why)
    print(f"raylite: {sys.executable}; {os.cpu_count()} CPUs; repeat {repeat}; "
          f"load average {os.getloadavg()[0]:.2f}\n", flush=True)

    results: dict[str, dict[str, dict]] = {}
    started = time.perf_counter()
    for workload in selected:
        for backend, python in backends:
            runs = repeat if workload == "cold_start" else 1
            inner = 1 if workload == "cold_start" else repeat
            outs = [run_workload(python, backend, workload, inner, args.timeout)
                    for _ in range(runs)]
            result = merge_cold_starts(outs) if workload == "cold_start" else outs[0]
            results.setdefault(workload, {})[backend] = result
            shown = ", ".join(fmt(m["value"], m["unit"]) for m in result["metrics"]) \
                or ("n/a" if result.get("unsupported") else "ERROR")
            print(f"  {workload:<15} {backend:<8} {shown}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started

    metric_names = [m for m in TARGETS if METRICS.get(m, m) in selected]
    rows = build_rows(results, metric_names)
    print()
    print_table(rows)
    print_notes(results)
    print(f"\ntotal {elapsed:.0f} s; load average now {os.getloadavg()[0]:.2f} "
          "(other processes on the machine skew every figure)")

    if args.json:
        meta = {"python": sys.executable, "ray_python": dict(backends).get("ray"),
                "cpus": os.cpu_count(), "platform": platform.platform(), "repeat": repeat,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "elapsed_s": elapsed}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows, "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
