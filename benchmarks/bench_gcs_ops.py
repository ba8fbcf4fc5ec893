"""GCS (Redis) load, counted: commands per task, per actor, per put, per heartbeat, and
what Redis sustains on this machine. The figures behind docs/SCALING.md.

    python benchmarks/bench_gcs_ops.py              # ~1 minute

1. Counts (Redis INFO commandstats before/after each phase, minus the idle
   background rate over the phase's duration) on a one-node CLI cluster in a private
   RAYLITE_TMPDIR: idle heartbeats, no-op tasks, tasks with stored (>100 KiB) results,
   ray.put of stored objects, actor creations (each with one call), cross-node gets.
2. Node-table reads: server-side microseconds per HGETALL of the node tables of 20,
   100 and 1,000 nodes (real NodeRecords), in a scratch redis-server.
3. Throughput of that redis-server: redis-benchmark (when on PATH), and redis-py
   single calls and pipelines.
Nothing asserts a figure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

PHASES = textwrap.dedent("""
    import sys, time
    import numpy as np
    import raylite as ray
    ray.init(address="auto")

    @ray.remote
    def noop():
        return 0

    @ray.remote
    def big():
        return np.zeros(40_000)            # 320 KB: stored, with lineage

    @ray.remote
    class A:
        def ping(self):
            return 1

    def step(name):
        print("phase", name, flush=True)
        sys.stdin.readline()

    ray.get([noop.remote() for _ in range(200)]); ray.get([big.remote() for _ in range(20)])
    ray.get(A.remote().ping.remote())
    step("tasks")
    ray.get([noop.remote() for _ in range(10_000)])
    step("stored_results")
    refs = [big.remote() for _ in range(1_000)]; ray.get(refs); del refs
    step("puts")
    refs = [ray.put(np.zeros(40_000)) for _ in range(1_000)]; del refs
    step("actors")
    actors = [A.remote() for _ in range(100)]; ray.get([a.ping.remote() for a in actors])
    for a in actors:
        ray.kill(a)
    del actors
    step("end")
""")
UNITS = {"tasks": 10_000, "stored_results": 1_000, "puts": 1_000, "actors": 100}


def commandstats(client) -> dict[str, tuple[int, int]]:
    """command -> (calls, usec) since the server started."""
    out = {}
    for name, value in client.info("commandstats").items():
        out[name.removeprefix("cmdstat_")] = (int(value["calls"]), int(value["usec"]))
    return out


def delta(after: dict, before: dict) -> dict[str, tuple[int, int]]:
    out = {}
    for cmd, (calls, usec) in after.items():
        c0, u0 = before.get(cmd, (0, 0))
        if calls - c0:
            out[cmd] = (calls - c0, usec - u0)
    return out


def cli(env, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "raylite.cli.main", *args], env=env,
                         capture_output=True, text=True, timeout=120)
    if out.returncode:
        raise RuntimeError(out.stdout + out.stderr)
    return out.stdout


def count_phases() -> None:
    import redis

    from raylite.security.tokens import REDIS_USER
    run_dir = tempfile.mkdtemp(prefix="rl-gcsops-")
    env = dict(os.environ, RAYLITE_TMPDIR=run_dir, PYTHONPATH=REPO)
    env.pop("RAYLITE_TOKEN", None)
    try:
        cli(env, "start", "--head", "--port", "0", "--num-cpus", "2")
        with open(os.path.join(run_dir, "current_cluster")) as f:
            info = json.load(f)
        host, port = info["gcs_address"].rsplit(":", 1)
        client = redis.Redis(host=host, port=int(port), username=REDIS_USER, password=info["password"])
        time.sleep(2)
        before, t0 = commandstats(client), time.monotonic()
        time.sleep(10)
        idle = delta(commandstats(client), before)
        idle_s = time.monotonic() - t0
        calls_idle = sum(c for c, _ in idle.values()) - 1   # minus our own INFO
        print(f"\n## idle, one node (the monitor), {idle_s:.0f} s")
        print(f"{calls_idle / idle_s:.1f} commands/s; per heartbeat round (0.2 s): "
              f"{calls_idle / idle_s * 0.2:.1f}")
        print("   " + ", ".join(f"{k} {c / idle_s:.1f}/s" for k, (c, _) in sorted(idle.items())
                                if k != "info"))
        driver = subprocess.Popen([sys.executable, "-c", PHASES], env=env, text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert driver.stdout is not None and driver.stdin is not None
        line = driver.stdout.readline()
        while line.startswith("phase "):
            name = line.split()[1]
            if name == "end":
                break
            time.sleep(1.5)     # buffered writes of the warm-up flushed
            before, t0 = commandstats(client), time.monotonic()
            driver.stdin.write("go\n")
            driver.stdin.flush()
            line = driver.stdout.readline()
            time.sleep(1.5)     # this phase's buffered writes flushed
            got = delta(commandstats(client), before)
            seconds = time.monotonic() - t0
            for cmd, (c, _) in idle.items():   # the background, over this phase's duration
                if cmd in got:
                    got[cmd] = (max(0, got[cmd][0] - round(c / idle_s * seconds)), got[cmd][1])
            got.pop("info", None)
            units = UNITS[name]
            total = sum(c for c, _ in got.values())
            print(f"\n## {name}: {units} in {seconds:.1f} s (phase + 3 s of flushing)")
            print(f"{total / units:.2f} commands per unit: " + ", ".join(
                f"{k} {c / units:.2f}" for k, (c, _) in sorted(got.items()) if c))
        driver.stdin.write("go\n")
        driver.stdin.flush()
        driver.wait(60)
        client.close()
    finally:
        subprocess.run([sys.executable, "-m", "raylite.cli.main", "stop"], env=env,
                       capture_output=True, timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)


def scratch_redis():
    import redis

    from raylite.gcs.redis_server import find_redis_server
    d = tempfile.mkdtemp(prefix="rl-redis-")
    sock = os.path.join(d, "r.sock")
    proc = subprocess.Popen([find_redis_server(), "--port", "0", "--unixsocket", sock,
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=sock)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return proc, client, sock, d


def table_reads(client) -> None:
    from raylite.gcs.records import NodeRecord
    print("\n## node-table reads (server CPU per call, scratch redis-server)")
    for n in (20, 100, 1000):
        client.flushall()
        records = {f"{i:032x}": NodeRecord(
            node_id=f"{i:032x}", address=f"10.0.{i // 250}.{i % 250}:40000",
            uds="unix:/tmp/raylite-0/s-123456789ab/s/n12345678.sock", host="10.0.0.1",
            resources={"CPU": 8.0, "memory": 3.2e10, "GPU": 1.0}, pid=12345,
            store_dir="/dev/shm/raylite-s-123456789ab-12345678", store_capacity=10 << 30,
            session="/tmp/raylite-0/s-123456789ab", transfer=f"10.0.0.1:{40001 + i}").to_bytes()
            for i in range(n)}
        client.hset("nodes", mapping=records)
        client.hset("beats", mapping={k: time.time() for k in records})
        client.hset("free", mapping={k: b"\x82\xa3CPU\xcb@\x20\0\0\0\0\0\0\xa6memory\xcb" + b"\0" * 8
                                     for k in records})
        client.config_resetstat()
        for _ in range(200):
            pipe = client.pipeline(transaction=False)
            pipe.hgetall("nodes")
            pipe.hgetall("beats")
            pipe.hgetall("free")
            pipe.execute()
        usec = client.info("commandstats")["cmdstat_hgetall"]["usec_per_call"]
        size = sum(len(v) for v in records.values())
        print(f"{n:>5} nodes: {usec:8.1f} us per HGETALL (table {size / 1024:.0f} KiB); "
              f"one full read (3 hashes) {3 * usec:8.1f} us")


def throughput(client, sock: str) -> None:
    print("\n## Redis throughput on this machine")
    if shutil.which("redis-benchmark"):
        for extra in ([], ["-P", "16"]):
            out = subprocess.run(["redis-benchmark", "-s", sock, "-q", "-n", "100000",
                                  "-t", "set,get,hset,incr", *extra],
                                 capture_output=True, text=True, timeout=300).stdout
            label = "pipelined x16" if extra else "one at a time, 50 clients"
            print(f"redis-benchmark ({label}): " + "; ".join(
                line.strip().split(" requests per second")[0]
                for line in out.replace("\r", "\n").splitlines() if "requests per second" in line))
    n = 20_000
    t0 = time.perf_counter()
    for i in range(n):
        client.hset("h", str(i % 100), i)
    single = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for i in range(10 * n):
        pipe.hset("h", str(i % 100), i)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()
    piped = 10 * n / (time.perf_counter() - t0)
    print(f"redis-py, one client: {single:,.0f} HSET/s one at a time, {piped:,.0f}/s pipelined (1000)")


def main() -> int:
    print(f"load average {os.getloadavg()[0]:.2f}")
    count_phases()
    proc, client, sock, d = scratch_redis()
    try:
        table_reads(client)
        throughput(client, sock)
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
