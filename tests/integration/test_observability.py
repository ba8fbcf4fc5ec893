"""Seeing the cluster, on real processes: task events through the state API (Python and
CLI), status --json with pending and infeasible demand, the timeline, memory, logs,
driver-output prefixes and session-directory retention."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from faults import cli

from tests.conftest import wait_until

WORKLOAD = """
import sys, time
import raylite as ray
from raylite.util import state
ray.init(address="auto")

@ray.remote
def square(x):
    print("square of", x)
    return x * x

@ray.remote
def boom():
    raise ValueError("boom in a task")

@ray.remote(num_gpus=4)
def needs_gpus():
    return 1

@ray.remote(resources={"n2": 1})
def on_n2():
    import os
    print("remote hello", os.getpid())
    return os.getpid()

@ray.remote
class Counter:
    def add(self, x):
        return x + 1

c = Counter.remote()
assert ray.get([square.remote(i) for i in range(6)]) == [i * i for i in range(6)]
assert ray.get([c.add.remote(i) for i in range(4)]) == [1, 2, 3, 4]
try:
    ray.get(boom.remote())
except ValueError:
    pass
n2_pid = ray.get(on_n2.remote())
pending = needs_gpus.remote()
big = ray.put(b"x" * 400_000)
holder = ray.put([big])

def until(fn, timeout=60):
    deadline = time.time() + timeout
    while not fn():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)

until(lambda: len(state.list_tasks(filters=[("name", "=", "square"), ("state", "=", "FINISHED")])) == 6)
until(lambda: state.list_tasks(filters=[("state", "=", "FAILED")]))
failed = state.list_tasks(filters=[("state", "=", "FAILED")], detail=True)
assert [t.name for t in failed] == ["boom"], failed
assert failed[0].error_type == "TASK_EXECUTION_EXCEPTION"
assert "boom in a task" in failed[0].error_message and "ValueError" in failed[0].traceback
until(lambda: len(state.list_tasks(filters=[("type", "=", "ACTOR_TASK"), ("state", "=", "FINISHED")])) == 4)
summary = state.summarize_tasks()
assert summary["summary"]["square"]["state_counts"] == {"FINISHED": 6}, summary
assert summary["summary"]["needs_gpus"]["state_counts"] == {"PENDING_NODE_ASSIGNMENT": 1}
assert [a.state for a in state.list_actors()] == ["ALIVE"]
assert len(state.list_nodes()) == 2 and len(state.list_jobs()) == 1
assert any(w.worker_type == "DRIVER" and w.is_alive for w in state.list_workers())
objects = state.list_objects(detail=True)
assert any(o.object_id == big.hex() and o.object_size >= 400_000 for o in objects), objects
assert state.list_placement_groups() == []
assert state.get_task(failed[0].task_id)[0].name == "boom"
assert state.list_tasks(limit=2).__len__() == 2
trace = ray.timeline()
names = {e["name"] for e in trace if e["ph"] == "X"}
assert {"square", "Counter.add", "boom"} <= names, names
print("N2PID", n2_pid, flush=True)
print("READY", big.hex(), flush=True)
sys.stdin.readline()
"""


def _json(args, env):
    return json.loads(cli(args + ["--json"], env).stdout)


def test_state_api_cli_timeline_memory_logs_on_two_nodes(local_cluster, tmp_path):
    cluster = local_cluster()
    cluster.start_head(num_cpus=2)
    n2 = cluster.add_node("n2", num_cpus=1)
    env = cluster.env
    driver = cluster.driver(WORKLOAD)
    n2_pid = int(driver.expect("N2PID", timeout=120).split()[1])
    big = driver.expect("READY", timeout=60).split()[1]
    # The driver's output keeps Ray's prefix: a remote node's worker names its node.
    assert any(line.startswith("(square pid=") and ") square of" in line and "node=" not in line
               for line in driver.lines), driver.output()
    assert any(line.startswith(f"(on_n2 pid={n2_pid}, node={n2.node_id[:8]}) remote hello")
               for line in driver.lines), driver.output()

    tasks = _json(["list", "tasks", "--limit", "1000"], env)
    assert sum(t["name"] == "square" for t in tasks) == 6
    failed = _json(["list", "tasks", "--filter", "state=FAILED"], env)
    assert [t["name"] for t in failed] == ["boom"]
    not_square = _json(["list", "tasks", "--filter", "name!=square", "--detail"], env)
    assert not_square and all(t["name"] != "square" and "events" in t for t in not_square)
    out = cli(["get", "task", failed[0]["task_id"][:12]], env).stdout
    assert "boom in a task" in out and "Traceback" in out
    assert "square" in cli(["summary", "tasks"], env).stdout
    assert "Counter" in cli(["summary", "actors"], env).stdout
    actors = _json(["list", "actors"], env)
    assert [a["class_name"] for a in actors] == ["Counter"]
    assert cli(["get", "actor", actors[0]["actor_id"]], env).stdout.count("Counter") >= 1
    assert {n["state"] for n in _json(["list", "nodes"], env)} == {"ALIVE"}
    assert any(w["worker_type"] == "DRIVER" for w in _json(["list", "workers"], env))
    assert [j["status"] for j in _json(["list", "jobs"], env)] == ["RUNNING"]
    assert _json(["list", "placement-groups"], env) == []
    bad = cli(["list", "tasks", "--filter", "nope=1"], env, check=False)
    assert bad.returncode == 1 and "nope" in bad.stderr and "Traceback" not in bad.stderr

    status = _json(["status"], env)
    assert len(status["nodes"]) == 2 and status["resources"]["total"]["CPU"] == 3
    assert [g["resources"] for g in status["infeasible_demand"]] == [{"CPU": 1.0, "GPU": 4.0}]
    assert all(n["object_store_capacity"] > 0 for n in status["nodes"])
    text = cli(["status"], env).stdout
    assert "Infeasible demand" in text and "GPU: 4" in text and "object store" in text

    path = tmp_path / "trace.json"
    cli(["timeline", "--output", str(path)], env)
    with open(path) as f:
        trace = json.load(f)
    complete = [e for e in trace if e["ph"] == "X"]
    assert {"square", "Counter.add"} <= {e["name"] for e in complete}
    assert all(e["dur"] >= 0 and isinstance(e["pid"], int) and isinstance(e["tid"], int)
               for e in complete)
    assert len({e["pid"] for e in complete}) == 2   # one process per node

    memory = cli(["memory"], env).stdout
    assert big in memory and "LOCAL_REFERENCE" in memory and "driver pid=" in memory
    by_site = cli(["memory", "--group-by", "STACK_TRACE", "--sort-by", "pid"], env).stdout
    assert "--- stack_trace disabled:" in by_site and big in by_site
    objects = _json(["list", "objects", "--detail"], env)
    assert any(o["object_id"] == big and o["in_store"] for o in objects)

    listing = cli(["logs"], env).stdout
    assert "scheduler-" in listing and listing.count("node ") == 2
    logs = cli(["logs", str(n2_pid), "--tail", "50"], env).stdout
    assert "remote hello" in logs, logs
    missing = cli(["logs", "no-such-thing"], env, check=False)
    assert missing.returncode == 1 and "no log file" in missing.stderr

    driver.send()
    driver.finish_ok()
    assert wait_until(lambda: [j["status"] for j in _json(["list", "jobs"], env)] == ["SUCCEEDED"],
                      timeout=60)


def test_task_events_can_be_turned_off(local_cluster):
    cluster = local_cluster()
    cluster.env["RAYLITE_TASK_EVENTS"] = "0"   # for the nodes' workers and the driver
    cluster.start_head(num_cpus=1)
    lines = cluster.run_driver("""
        import raylite as ray
        from raylite.util import state
        ray.init(address="auto")
        @ray.remote
        def f():
            return 1
        assert ray.get([f.remote() for _ in range(5)]) == [1] * 5
        print("TASKS", len(state.list_tasks()), len(ray.timeline()))
        """)
    assert "TASKS 0 0" in lines, lines


def test_dead_session_directories_beyond_retention_are_removed(tmp_path):
    from raylite.observability.sessions import prune_sessions
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    old = time.time() - 3600
    dead = []
    for i in range(5):   # created by a pid that no longer runs
        path = root / f"s-{999_999_0 + i}abcdef"
        path.mkdir()
        os.utime(path, (old + i, old + i))
        dead.append(str(path))
    live = root / f"s-{os.getpid()}abcdef"
    live.mkdir()
    os.utime(live, (old - 100, old - 100))
    other = root / "not-a-session"
    other.mkdir()
    removed = prune_sessions(str(root), keep=2)
    assert sorted(removed) == sorted(dead[:3])
    assert sorted(os.listdir(root)) == sorted([os.path.basename(p) for p in dead[3:]]
                                              + [live.name, other.name])


def test_raylite_start_prunes_old_sessions(local_cluster):
    cluster = local_cluster()
    stale = os.path.join(cluster.run_dir, "s-9999990stale0")
    os.makedirs(stale, mode=0o700)
    os.utime(stale, (time.time() - 3600,) * 2)
    cluster.env["RAYLITE_SESSION_RETENTION"] = "0"
    cluster.start_head(num_cpus=1)
    assert wait_until(lambda: not os.path.exists(stale), timeout=10)
    assert cluster.head.session and os.path.isdir(cluster.head.session)


def test_call_sites_and_reference_kinds_in_memory(embedded_env):
    env, _ = embedded_env
    env = dict(env, RAYLITE_RECORD_REF_CREATION_SITES="1")
    script = """
import raylite as ray
from raylite.util import state
ray.init(num_cpus=1)

@ray.remote
def hold(x):
    import time
    time.sleep(30)

big = ray.put(b"y" * 300_000)
outer = ray.put([big])
arg = ray.put(b"z" * 200_000)
running = hold.remote(arg)
del arg
rows = {o.object_id: o for o in state.list_objects(detail=True)}
print("BIG", rows[big.hex()].reference_type, rows[big.hex()].call_site)
print("OUTER", rows[outer.hex()].call_site)
print("PENDING", sorted(o.reference_type for o in rows.values() if o.object_size == 200_025))
print("TASKRET", rows[running.hex()].call_site, rows[running.hex()].task_status)
summary = state.summarize_objects()
print("SITES", summary["callsite_enabled"], len(summary["summary"]))
ray.cancel(running, force=True)
"""
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert out["BIG"].startswith("LOCAL_REFERENCE <string>:11 in <module>"), out
    assert out["OUTER"] == "<string>:12 in <module>"
    assert out["PENDING"] == "['USED_BY_PENDING_TASK']", out
    assert out["TASKRET"] == "<string>:14 in <module> PENDING", out
    assert out["SITES"].startswith("True")


def test_event_storage_is_bounded_per_job_and_in_jobs_and_overflow_is_counted(embedded_env):
    env, _ = embedded_env
    env = dict(env, RAYLITE_TASK_EVENTS_MAX_PER_JOB="60", RAYLITE_TASK_EVENTS_MAX_BUFFERED="40",
               RAYLITE_TASK_EVENTS_MAX_JOBS="1")
    script = """
import time
import raylite as ray
from raylite.util import state
ray.init(num_cpus=1)

@ray.remote
def f(i):
    return i

for _ in range(3):                      # 3 x 100 submissions between two flushes
    ray.get([f.remote(i) for i in range(100)])
time.sleep(2.5)                         # every process flushed at least twice
import msgpack
from raylite.core import global_state
gcs = global_state.connection().gcs
old = msgpack.packb({"where": None, "events": [[1, b"t" * 16, 0, 1.0, "old", 0, b""]]})
gcs.push_task_events("0ld0", old, 1, 100)   # a job nobody registered: the oldest
state.list_tasks()
print("JOBS", gcs.task_event_jobs() == [ray.get_runtime_context().get_job_id()])
stored = gcs.task_events()
events = sum(len(msgpack.unpackb(blob)["events"]) for _, blob in stored)
print("EVENTS", events, len(state.list_tasks(limit=None)))
print("DROPPED", state.summarize_tasks()["dropped_events"])
"""
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    events, rows = map(int, out["EVENTS"].split())
    assert 0 < events <= 60 and rows > 0, out     # whole batches go, oldest first
    assert int(out["DROPPED"]) > 0, out
    assert out["JOBS"] == "True", out                # only the newest job's events are kept
