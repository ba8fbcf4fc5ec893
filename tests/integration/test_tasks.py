"""Tasks on a real local cluster, written as a Ray user would (``import raylite as ray``).

Covers @ray.remote bare and with options, .options(...), num_returns, get/put/wait,
cluster/resource/node introspection, the runtime context, ray.cancel, nested tasks,
the function table, retries and worker output forwarded to the driver.

Remote functions are defined inside the tests (as in Ray's own tests) so that
cloudpickle ships them by value to workers that cannot import this module.
"""
from __future__ import annotations

import os
import re
import time

import pytest

import raylite as ray
from raylite import exceptions as rex

RAY_INIT_KWARGS = {"num_cpus": 2, "resources": {"custom": 2}}


@pytest.fixture(autouse=True)
def _cluster(ray_start):
    yield


def _wait_file(path: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _touch(path: str) -> None:
    with open(path, "w"):
        pass


def _lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def _cpus_back(total: float = 2.0, timeout: float = 15.0) -> bool:
    """True once every CPU is free again (idle leases are returned shortly after use)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0.0) >= total:
            return True
        time.sleep(0.05)
    return False


# ---- @ray.remote and options --------------------------------------------------------

def test_bare_decorator_runs_task():
    @ray.remote
    def add(a, b=10):
        return a + b

    ref = add.remote(1)
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == 11
    assert ray.get(add.remote(1, b=2)) == 3


def test_decorator_with_options_and_num_returns_two():
    @ray.remote(num_cpus=1, num_returns=2)
    def pair(x):
        return x, x * 2

    refs = pair.remote(21)
    assert isinstance(refs, list) and len(refs) == 2
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs) == [21, 42]
    assert ray.get(refs[1]) == 42


def test_num_returns_zero_returns_none_and_still_runs(tmp_path):
    marker = str(tmp_path / "ran")

    @ray.remote(num_returns=0)
    def side_effect(path):
        with open(path, "w") as f:
            f.write("x")

    assert side_effect.remote(marker) is None
    assert _wait_file(marker, 30), "a num_returns=0 task never ran"


def test_options_num_returns_overrides_decorator():
    @ray.remote
    def three():
        return 1, 2, 3

    refs = three.options(num_returns=3).remote()
    assert ray.get(refs) == [1, 2, 3]
    # .options() returns a copy: the original still has one return value.
    assert ray.get(three.remote()) == (1, 2, 3)


def test_options_num_cpus_gpus_resources_name_run():
    @ray.remote
    def where():
        return os.getpid()

    assert ray.get(where.options(num_cpus=0.5).remote()) > 0
    assert ray.get(where.options(num_cpus=2).remote()) > 0
    assert ray.get(where.options(num_cpus=0).remote()) > 0
    assert ray.get(where.options(num_gpus=0).remote()) > 0
    assert ray.get(where.options(resources={"custom": 1}).remote()) > 0
    assert ray.get(where.options(resources={"custom": 2}, num_cpus=1).remote()) > 0
    assert ray.get(where.options(name="renamed_task").remote()) > 0
    assert ray.get(where.options(max_retries=0, retry_exceptions=False).remote()) > 0


def test_options_name_is_used_as_task_name():
    @ray.remote
    def original():
        raise ValueError("named failure")

    with pytest.raises(ValueError) as info:
        ray.get(original.options(name="my_custom_name").remote())
    assert "my_custom_name" in str(info.value)


def test_custom_resource_limits_concurrency(tmp_path):
    """Two tasks each needing the whole 'custom' resource never overlap."""
    @ray.remote(resources={"custom": 2}, num_cpus=0)
    def exclusive(log, tag):
        import time as t
        with open(log, "a") as f:
            f.write(f"start-{tag}\n")
        t.sleep(0.3)
        with open(log, "a") as f:
            f.write(f"end-{tag}\n")
        return tag

    log = str(tmp_path / "log")
    assert sorted(ray.get([exclusive.remote(log, "a"), exclusive.remote(log, "b")])) == ["a", "b"]
    events = _lines(log)
    assert len(events) == 4
    # Each start is immediately followed by its own end: no interleaving.
    assert events[0].split("-")[1] == events[1].split("-")[1]
    assert events[0].startswith("start") and events[1].startswith("end")


def test_independent_tasks_run_concurrently_on_free_cpus(tmp_path):
    """Two tasks that wait for each other must both be running at once on 2 CPUs,
    also right after many short calls of the same function (no head-of-line
    pipelining onto one busy worker while another CPU is idle)."""
    @ray.remote
    def rendezvous(me, other):
        import os as o
        import time as t
        open(me, "w").close()
        deadline = t.monotonic() + 5
        while not o.path.exists(other):
            if t.monotonic() > deadline:
                return "alone"
            t.sleep(0.01)
        return "met"

    present = str(tmp_path / "present")
    _touch(present)
    for round_ in range(3):
        # Many short calls: the runtime learns that this function is fast ...
        quick = [rendezvous.remote(str(tmp_path / f"q{round_}-{i}"), present) for i in range(200)]
        assert set(ray.get(quick, timeout=60)) == {"met"}
        # ... and then two calls that can only finish when both run at once.
        a, b = str(tmp_path / f"a{round_}"), str(tmp_path / f"b{round_}")
        pair = [rendezvous.remote(a, b), rendezvous.remote(b, a)]
        assert ray.get(pair, timeout=60) == ["met", "met"], f"round {round_}"


# ---- retries ------------------------------------------------------------------------

def test_application_errors_not_retried_by_default(tmp_path):
    attempts = str(tmp_path / "attempts")

    @ray.remote(max_retries=3)
    def flaky(path):
        with open(path, "a") as f:
            f.write("x\n")
        raise ValueError("app error")

    with pytest.raises(ValueError):
        ray.get(flaky.remote(attempts))
    assert len(_lines(attempts)) == 1


def test_retry_exceptions_true_retries_until_success(tmp_path):
    attempts = str(tmp_path / "attempts")

    @ray.remote
    def flaky(path):
        with open(path, "a") as f:
            f.write("x\n")
        with open(path) as f:
            n = len(f.read().split())
        if n < 3:
            raise ValueError(f"attempt {n}")
        return n

    assert ray.get(flaky.options(max_retries=3, retry_exceptions=True).remote(attempts)) == 3
    assert len(_lines(attempts)) == 3


def test_retry_exceptions_true_stops_at_max_retries(tmp_path):
    attempts = str(tmp_path / "attempts")

    @ray.remote(max_retries=2, retry_exceptions=True)
    def always(path):
        with open(path, "a") as f:
            f.write("x\n")
        raise RuntimeError("always fails")

    with pytest.raises(RuntimeError):
        ray.get(always.remote(attempts))
    assert len(_lines(attempts)) == 3  # first try + 2 retries


def test_retry_exceptions_list_only_retries_listed_types(tmp_path):
    listed, unlisted = str(tmp_path / "listed"), str(tmp_path / "unlisted")

    @ray.remote
    def fail_with(path, kind):
        with open(path, "a") as f:
            f.write("x\n")
        raise {"value": ValueError, "key": KeyError}[kind]("boom")

    opts = dict(max_retries=2, retry_exceptions=[ValueError])
    with pytest.raises(ValueError):
        ray.get(fail_with.options(**opts).remote(listed, "value"))
    with pytest.raises(KeyError):
        ray.get(fail_with.options(**opts).remote(unlisted, "key"))
    assert len(_lines(listed)) == 3
    assert len(_lines(unlisted)) == 1


# ---- get / put / wait -----------------------------------------------------------------

def test_get_single_and_list_keep_order():
    @ray.remote
    def ident(x):
        return x

    refs = [ident.remote(i) for i in range(20)]
    assert ray.get(refs) == list(range(20))
    assert ray.get(refs[7]) == 7
    assert ray.get(list(reversed(refs))) == list(reversed(range(20)))
    assert ray.get([]) == []


def test_get_timeout_raises_get_timeout_error(tmp_path):
    release = str(tmp_path / "release")

    @ray.remote
    def wait_for(path):
        import os as o
        import time as t
        while not o.path.exists(path):
            t.sleep(0.01)
        return "released"

    ref = wait_for.remote(release)
    with pytest.raises(rex.GetTimeoutError) as info:
        ray.get(ref, timeout=0.2)
    assert isinstance(info.value, TimeoutError)
    with pytest.raises(TimeoutError):
        ray.get([ref], timeout=0)
    _touch(release)
    assert ray.get(ref, timeout=60) == "released"


def test_get_rejects_non_refs():
    with pytest.raises((TypeError, ValueError)):
        ray.get(123)
    with pytest.raises(TypeError):
        ray.get([ray.put(1), 2])


def test_put_get_roundtrip_various_values():
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    values = [None, 0, -5, 3.25, "text", b"\x00bytes", [1, [2, 3]], (1, "a"), {"k": [1, 2]},
              {1, 2, 3}, list(range(10_000))]
    refs = [ray.put(v) for v in values]
    assert ray.get(refs) == values
    point = ray.get(ray.put(Point(1, 2)))
    assert (point.x, point.y) == (1, 2)


def test_put_of_object_ref_is_rejected():
    ref = ray.put(1)
    with pytest.raises(TypeError):
        ray.put(ref)


def test_object_refs_hashable_comparable_hex():
    a = ray.put(1)
    b = ray.put(1)
    assert a != b and a == a
    assert len({a, b, a}) == 2
    assert isinstance(a.hex(), str) and a.hex() != b.hex()
    int(a.hex(), 16)


def test_wait_returns_ready_in_input_order(tmp_path):
    release = str(tmp_path / "release")

    @ray.remote
    def wait_for(path):
        import os as o
        import time as t
        while not o.path.exists(path):
            t.sleep(0.01)
        return 1

    @ray.remote
    def quick(x):
        return x

    slow = wait_for.options(num_cpus=0).remote(release)
    early = ray.put("early")
    late = quick.remote("late")
    ray.get(late)
    # Input order, not completion order.
    ready, not_ready = ray.wait([late, slow, early], num_returns=2, timeout=30)
    assert ready == [late, early]
    assert not_ready == [slow]
    ready, not_ready = ray.wait([early, late], num_returns=2)
    assert ready == [early, late] and not_ready == []
    # Only num_returns refs are reported ready even when more are.
    ready, not_ready = ray.wait([late, early], num_returns=1)
    assert ready == [late] and not_ready == [early]
    # A timeout returns what is ready so far.
    ready, not_ready = ray.wait([slow, early], num_returns=2, timeout=0.2)
    assert ready == [early] and not_ready == [slow]
    ready, not_ready = ray.wait([slow], timeout=0.1, fetch_local=False)
    assert ready == [] and not_ready == [slow]
    _touch(release)
    ready, not_ready = ray.wait([slow], timeout=60)
    assert ready == [slow] and not_ready == []


def test_wait_default_num_returns_is_one():
    refs = [ray.put(i) for i in range(3)]
    ready, not_ready = ray.wait(refs)
    assert ready == refs[:1] and not_ready == refs[1:]


def test_wait_argument_errors():
    a, b = ray.put(1), ray.put(2)
    with pytest.raises(ValueError):
        ray.wait([a, a])
    with pytest.raises(ValueError):
        ray.wait([a, b], num_returns=3)
    with pytest.raises(TypeError):
        ray.wait(a)


# ---- cluster introspection --------------------------------------------------------------

def test_cluster_resources_keys():
    total = ray.cluster_resources()
    assert total["CPU"] == 2.0
    assert total["custom"] == 2.0
    assert total["object_store_memory"] > 0
    assert total["memory"] > 0
    assert any(k.startswith("node:") for k in total)


def test_available_resources_keys_and_recovery():
    assert _cpus_back(2.0), ray.available_resources()
    avail = ray.available_resources()
    assert avail["CPU"] == 2.0
    assert avail["custom"] == 2.0
    assert avail["object_store_memory"] > 0
    assert any(k.startswith("node:") for k in avail)
    total = ray.cluster_resources()
    for key, value in avail.items():
        assert key in total and value <= total[key] + 1e-6


def test_available_resources_drop_while_task_runs(tmp_path):
    started, release = str(tmp_path / "started"), str(tmp_path / "release")

    @ray.remote(num_cpus=1, resources={"custom": 1})
    def hold(s, r):
        import os as o
        import time as t
        open(s, "w").close()
        while not o.path.exists(r):
            t.sleep(0.01)

    ref = hold.remote(started, release)
    assert _wait_file(started)
    avail = ray.available_resources()
    assert avail.get("CPU", 0.0) <= 1.0
    assert avail.get("custom", 0.0) <= 1.0
    _touch(release)
    ray.get(ref)


def test_nodes_dict_keys():
    nodes = ray.nodes()
    assert len(nodes) == 1
    node = nodes[0]
    for key in ("NodeID", "Alive", "NodeManagerAddress", "Resources"):
        assert key in node, key
    assert node["Alive"] is True
    assert node["Resources"]["CPU"] == 2.0
    assert node["Resources"]["custom"] == 2.0


def test_runtime_context_ids():
    ctx = ray.get_runtime_context()
    driver_job = ctx.get_job_id()
    driver_node = ctx.get_node_id()
    assert isinstance(driver_job, str) and driver_job
    assert driver_node == ray.nodes()[0]["NodeID"]

    @ray.remote
    def ids():
        c = ray.get_runtime_context()
        return c.get_job_id(), c.get_task_id(), c.get_node_id()

    (job1, task1, node1), (job2, task2, node2) = ray.get([ids.remote(), ids.remote()])
    assert job1 == job2 == driver_job
    assert node1 == node2 == driver_node
    assert task1 and task2 and task1 != task2
    assert isinstance(task1, str)


# ---- cancel ---------------------------------------------------------------------------

def test_cancel_pending_task_never_runs(tmp_path):
    release, marker = str(tmp_path / "release"), str(tmp_path / "marker")
    started = str(tmp_path / "started")

    @ray.remote(num_cpus=2)
    def occupy_all(s, path):
        import os as o
        import time as t
        open(s, "w").close()
        while not o.path.exists(path):
            t.sleep(0.01)
        return "done"

    @ray.remote
    def make_marker(path):
        with open(path, "w") as f:
            f.write("ran")
        return "ran"

    @ray.remote
    def after():
        return "after"

    blocker = occupy_all.remote(started, release)
    assert _wait_file(started)  # every CPU is now held: the next task must queue
    pending = make_marker.remote(marker)
    ray.cancel(pending)
    with pytest.raises(rex.TaskCancelledError):
        ray.get(pending, timeout=30)
    _touch(release)
    assert ray.get(blocker, timeout=60) == "done"
    # Anything queued behind the cancelled task has run by now.
    assert ray.get(after.remote(), timeout=60) == "after"
    assert not os.path.exists(marker), "a cancelled pending task ran"


def test_cancel_task_waiting_on_dependency_never_runs(tmp_path):
    release, marker = str(tmp_path / "release"), str(tmp_path / "marker")

    @ray.remote
    def wait_for(path):
        import os as o
        import time as t
        while not o.path.exists(path):
            t.sleep(0.01)
        return 1

    @ray.remote
    def make_marker(dep, path):
        with open(path, "w") as f:
            f.write("ran")

    dep = wait_for.remote(release)
    pending = make_marker.remote(dep, marker)
    ray.cancel(pending)
    with pytest.raises(rex.TaskCancelledError):
        ray.get(pending, timeout=30)
    _touch(release)
    assert ray.get(dep, timeout=60) == 1
    time.sleep(0.3)
    assert not os.path.exists(marker)


def test_cancel_running_task_interrupts_it(tmp_path):
    started, interrupted = str(tmp_path / "started"), str(tmp_path / "interrupted")

    @ray.remote
    def spin(s, i):
        import time as t
        open(s, "w").close()
        try:
            while True:
                t.sleep(0.01)
        except KeyboardInterrupt:
            open(i, "w").close()
            raise

    ref = spin.remote(started, interrupted)
    assert _wait_file(started)
    ray.cancel(ref)
    with pytest.raises(rex.TaskCancelledError):
        ray.get(ref, timeout=30)
    assert _wait_file(interrupted, 10), "the running task did not see KeyboardInterrupt"


def test_cancel_force_kills_worker(tmp_path):
    pid_file = str(tmp_path / "pid")

    @ray.remote
    def stubborn(path):
        import os as o
        import time as t
        with open(path + ".tmp", "w") as f:
            f.write(str(o.getpid()))
        o.replace(path + ".tmp", path)
        while True:
            try:
                t.sleep(0.01)
            except KeyboardInterrupt:
                pass  # ignores polite cancellation

    ref = stubborn.remote(pid_file)
    assert _wait_file(pid_file)
    pid = int(open(pid_file).read())
    ray.cancel(ref, force=True)
    with pytest.raises(rex.TaskCancelledError):   # as in Ray, not WorkerCrashedError
        ray.get(ref, timeout=30)

    def gone():
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True
    deadline = time.monotonic() + 10
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(), "force-cancel left the worker process running"


@pytest.mark.parametrize("force", [False, True])
def test_cancelled_tasks_are_not_retried(tmp_path, force):
    attempts = str(tmp_path / "attempts")

    @ray.remote(max_retries=3, retry_exceptions=True)
    def counted(path):
        import time as t
        with open(path, "a") as f:
            f.write("x\n")
        while True:
            t.sleep(0.01)

    @ray.remote
    def after():
        return "after"

    ref = counted.remote(attempts)
    assert _wait_file(attempts)
    ray.cancel(ref, force=force)
    with pytest.raises(rex.TaskCancelledError):
        ray.get(ref, timeout=30)
    assert ray.get(after.remote(), timeout=60) == "after"
    time.sleep(0.5)
    assert len(_lines(attempts)) == 1, "a cancelled task was retried"


@pytest.mark.parametrize("force", [False, True])
def test_cancel_task_queued_behind_a_running_one(tmp_path, force):
    """A task that has not started yet is cancelled at once, even when the runtime
    already queued it behind a running call of the same function on a busy worker;
    force=True must not kill the worker that runs the other (innocent) task."""
    go, release = str(tmp_path / "go"), str(tmp_path / "release")
    occupied, started, marker = (str(tmp_path / n) for n in ("occupied", "started", "marker"))
    _touch(go)

    @ray.remote
    def occupy(s, r):
        import os as o
        import time as t
        open(s, "w").close()
        while not o.path.exists(r):
            t.sleep(0.01)

    @ray.remote
    def hold(r, m=None):
        import os as o
        import time as t
        if m:
            open(m, "w").close()
        while not o.path.exists(r):
            t.sleep(0.01)
        return "held"

    other = occupy.remote(occupied, release)          # one CPU is taken elsewhere
    assert _wait_file(occupied)
    assert set(ray.get([hold.remote(go) for _ in range(200)], timeout=60)) == {"held"}
    blocker = hold.options(max_retries=0).remote(release, started)
    assert _wait_file(started)
    victim = hold.remote(go, marker)                  # would finish at once if it ran
    ray.cancel(victim, force=force)
    try:
        with pytest.raises(rex.TaskCancelledError):
            ray.get(victim, timeout=10)               # the blocker is still running
    finally:
        _touch(release)
    assert ray.get(blocker, timeout=60) == "held", "cancelling a queued task hurt another task"
    ray.get(other, timeout=60)
    assert not os.path.exists(marker), "a cancelled task ran"


def test_cancel_finished_task_keeps_result():
    @ray.remote
    def value():
        return 5

    ref = value.remote()
    assert ray.get(ref) == 5
    ray.cancel(ref)
    assert ray.get(ref) == 5


def test_cancel_rejects_non_ref():
    with pytest.raises(TypeError):
        ray.cancel("not a ref")


# ---- nested tasks ---------------------------------------------------------------------

def test_nested_tasks_with_all_cpus_busy_do_not_deadlock():
    @ray.remote
    def inner(x):
        return x * 10

    @ray.remote
    def outer(x):
        return sum(ray.get([inner.remote(x), inner.remote(x + 1)]))

    refs = [outer.remote(i) for i in range(4)]
    assert ray.get(refs, timeout=120) == [(2 * i + 1) * 10 for i in range(4)]


def test_recursive_tasks_do_not_deadlock():
    @ray.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    assert ray.get(fib.remote(7), timeout=120) == 13


def test_get_timeout_inside_task():
    @ray.remote
    def never(path):
        import os as o
        import time as t
        while not o.path.exists(path):
            t.sleep(0.01)

    @ray.remote
    def waiter(path):
        ref = never.remote(path)
        try:
            ray.get(ref, timeout=0.2)
        except TimeoutError as err:
            return isinstance(err, ray.exceptions.GetTimeoutError)
        finally:
            ray.cancel(ref)
        return "no timeout"

    assert ray.get(waiter.remote("/nonexistent/raylite-never"), timeout=60) is True


def test_nested_wait_inside_task():
    @ray.remote
    def inner(x):
        return x

    @ray.remote
    def outer():
        refs = [inner.remote(i) for i in range(4)]
        ready, _ = ray.wait(refs, num_returns=4, timeout=60)
        return sorted(ray.get(ready))

    assert ray.get([outer.remote() for _ in range(3)], timeout=120) == [[0, 1, 2, 3]] * 3


# ---- function table --------------------------------------------------------------------

def _function_keys() -> set:
    from raylite.gcs import keys
    return {keys.function_key(fid) for fid in ray.api.connection().gcs.function_ids()}


def test_function_exported_once_for_many_calls():
    @ray.remote
    def exported_once(x):
        return x

    before = _function_keys()
    assert ray.get([exported_once.remote(i) for i in range(50)]) == list(range(50))
    assert ray.get(exported_once.options(num_cpus=0.5).remote(1)) == 1
    new = _function_keys() - before
    assert len(new) == 1, new

    @ray.remote
    def another(x):
        return -x

    assert ray.get(another.remote(1)) == -1
    assert len(_function_keys() - before) == 2


def test_exported_key_matches_function_key_schema():
    from raylite.gcs import keys

    @ray.remote
    def schema_check():
        return 1

    before = _function_keys()
    ray.get(schema_check.remote())
    (new,) = _function_keys() - before
    name = new.decode() if isinstance(new, bytes) else new
    fid = name[len(keys.function_key("")):]
    assert name == keys.function_key(fid)
    assert re.fullmatch(r"[0-9a-f]+", fid)


# ---- worker output reaches the driver ------------------------------------------------------

def test_worker_prints_reach_driver_with_prefix(run_driver):
    result = run_driver("""
        import os, sys, time
        import raylite as ray
        ray.init(num_cpus=1)

        @ray.remote
        def g():
            print("partial line from g", end="")  # no newline: still a line at the driver
            return os.getpid()

        @ray.remote
        def f(x):
            print("hello from task", x)
            print("to stderr", x, file=sys.stderr)
            return os.getpid(), ray.get(g.remote())

        pid, nested_pid = ray.get(f.remote(7))
        print("WORKER_PIDS", pid, nested_pid, flush=True)
        time.sleep(1.0)
        ray.shutdown()
    """)
    assert result.returncode == 0, result.stderr
    pid, nested_pid = map(int, re.search(r"WORKER_PIDS (\d+) (\d+)", result.stdout).groups())
    out_lines, err_lines = result.stdout.splitlines(), result.stderr.splitlines()
    assert f"(f pid={pid}) hello from task 7" in out_lines, result.stdout
    assert f"(f pid={pid}) to stderr 7" in err_lines, result.stderr
    assert f"(g pid={nested_pid}) partial line from g" in out_lines, result.stdout
