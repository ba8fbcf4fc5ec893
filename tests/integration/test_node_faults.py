"""Nodes die, work survives (issue 10): real SIGKILLs on a multi-node cluster started
with the `raylite` CLI on 127.0.0.1, checked only through public behaviour.

Each test starts its own small cluster (``local_cluster``, see faults.py), kills a
piece of it for real, and checks the final results of a driver subprocess; every
step is bounded, so a hang fails the test instead of stalling the suite. At teardown
`raylite stop` must leave no process and no /dev/shm entry of the cluster.

The first two tests prove the harness itself (start, find pids, kill a whole node,
restart Redis, stop, leak check) and pass on a runtime without failure handling.
"""
from __future__ import annotations

import json
import os
import signal
import textwrap
import time

import pytest
from faults import Driver, alive, descendants, embedded_scheduler, wait_dead, wait_until

BIG = 300_000            # float64 elements: 2.4 MB, well above the inline threshold
DETECTION_BOUND_S = 20   # generous: the cluster is configured to declare death after 2 s
AFTER_KILL_BOUND_S = 60  # a driver must finish this long after a kill, or it hangs
OUTAGE_S = 8             # a Redis outage longer than today's 2-6 s until ConnectionError


def script(body: str, *, node_b: str = "", marks: str = "", connect: str = 'address="auto"') -> str:
    """A driver: connects, then runs ``body`` (dedented). ``wait_go()`` blocks until the
    test calls ``Driver.send()``; ``on_b()`` is soft affinity to node_b; ``touch(name)``
    drops a marker file the test can wait for; ``node()`` is the current node id."""
    prelude = textwrap.dedent(f"""\
        import json, os, sys, time
        import numpy as np
        import raylite as ray
        from raylite.util.scheduling_strategies import NodeAffinitySchedulingStrategy as Affinity
        NODE_B = {node_b!r}
        MARKS = {marks!r}
        CONTEXT = ray.init({connect})

        def wait_go():
            sys.stdin.readline()

        def on_b(soft=True):
            return Affinity(NODE_B, soft=soft)

        def node():
            return ray.get_runtime_context().get_node_id()

        def touch(name):
            open(os.path.join(MARKS, name), "w").close()

        def wait_nodes(count, timeout=30):
            deadline = time.monotonic() + timeout
            while len([n for n in ray.nodes() if n["Alive"]]) < count:
                if time.monotonic() > deadline:   # a bounded wait, not a timing check
                    raise AssertionError(ray.nodes())
                time.sleep(0.05)
        """)
    return prelude + textwrap.dedent(body)


def markers(marks: str, prefix: str) -> list[str]:
    return sorted(name for name in os.listdir(marks) if name.startswith(prefix))


def wait_marker(marks: str, prefix: str, timeout: float = 60, driver: Driver | None = None) -> str:
    """The first marker file named ``prefix...``; fails the test when none appears."""
    if not wait_until(lambda: markers(marks, prefix), timeout, 0.05):
        pytest.fail(f"no marker {prefix!r} within {timeout}s; markers={os.listdir(marks)}\n"
                    + (driver.output() if driver else ""))
    return markers(marks, prefix)[0]


def line_value(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix + " ") or line == prefix]
    assert found, f"driver printed no {prefix!r} line: {lines}"
    return found[-1][len(prefix):].strip()


@pytest.fixture
def marks(tmp_path):
    path = tmp_path / "marks"
    path.mkdir()
    return str(path)


def two_nodes(local_cluster, head_cpus=1, b_cpus=1):
    cluster = local_cluster()
    cluster.start_head(num_cpus=head_cpus)
    node_b = cluster.add_node("node_b", num_cpus=b_cpus)
    return cluster, node_b


# ---- the harness itself (passes without failure handling) ----------------------------
def test_harness_three_nodes_kill_one_the_others_run_and_stop_leaves_nothing(local_cluster):
    cluster = local_cluster()
    head = cluster.start_head(num_cpus=1, resources={"head": 1})
    node_b = cluster.add_node("node_b")
    node_c = cluster.add_node("node_c")
    lines = cluster.run_driver(script("""
        wait_nodes(3)
        @ray.remote
        def where():
            return ray.get_runtime_context().get_node_id()
        print("NODES", json.dumps([ray.get(where.options(resources={r: 0.01}).remote())
                                   for r in ("head", "node_b", "node_c")]))
    """))
    # The node ids found from the process table are the ones raylite reports.
    assert json.loads(line_value(lines, "NODES")) == [head.node_id, node_b.node_id, node_c.node_id]
    tree = node_c.tree()
    assert len(tree) >= 2, f"expected node_c's scheduler and zygote at least: {tree}"
    assert cluster.leftovers.processes() and cluster.leftovers.shm_entries()

    killed = cluster.kill_node(node_c)
    assert set(tree) <= set(killed) and not any(alive(p) for p in killed)
    assert alive(head.scheduler_pid) and alive(node_b.scheduler_pid)
    assert alive(cluster.redis_pid)
    lines = cluster.run_driver(script("""
        @ray.remote
        def where(x):
            return x + 1, ray.get_runtime_context().get_node_id()
        print("HEAD", json.dumps(ray.get([where.options(resources={"head": 0.01}).remote(i) for i in range(3)])))
        print("B", json.dumps(ray.get([where.options(resources={"node_b": 0.01}).remote(i) for i in range(3)])))
    """), timeout=60)
    assert json.loads(line_value(lines, "HEAD")) == [[i + 1, head.node_id] for i in range(3)]
    assert json.loads(line_value(lines, "B")) == [[i + 1, node_b.node_id] for i in range(3)]
    cluster.stop()   # asserts that no process and no /dev/shm entry is left, node_c's too


def test_harness_redis_sigkill_and_restart_on_the_same_port(local_cluster):
    cluster = local_cluster()
    cluster.start_head(num_cpus=1)
    first = cluster.kill_redis()
    second = cluster.restart_redis()
    assert first != second and alive(second) and not alive(first)
    cluster.stop()   # the restarted redis-server is stopped too


# ---- issue 10 --------------------------------------------------------------------------
def test_killed_node_is_marked_dead_in_nodes_and_status(local_cluster):
    """Point 1: a SIGKILLed node becomes Alive=False in ray.nodes() and DEAD in
    `raylite status` (measured time printed; only a generous bound is asserted)."""
    cluster, node_b = two_nodes(local_cluster)
    driver = cluster.driver(script(f"""
        wait_nodes(2)
        print("READY", flush=True)
        wait_go()
        start = time.monotonic()
        while time.monotonic() - start < {DETECTION_BOUND_S}:
            states = {{n["NodeID"]: n["Alive"] for n in ray.nodes()}}
            if states.get(NODE_B) is False:
                print("DEAD", round(time.monotonic() - start, 2))
                break
            time.sleep(0.05)
        else:
            print("STILL_ALIVE", json.dumps(states))
        print("HEAD_ALIVE", states.get(CONTEXT["node_id"]))
    """, node_b=node_b.node_id))
    driver.expect("READY")
    cluster.kill_node(node_b)
    driver.send()
    lines = driver.finish_ok(DETECTION_BOUND_S + 30)
    dead = [line for line in lines if line.startswith("DEAD")]
    print(f"\n[detection] ray.nodes() saw node_b dead after: {dead or lines}")
    assert dead, f"ray.nodes() still shows the killed node alive after {DETECTION_BOUND_S}s: {lines}"
    assert line_value(lines, "HEAD_ALIVE") == "True"
    assert cluster.status_of(node_b) == "DEAD"
    assert cluster.status_of(cluster.head) == "ALIVE"


def test_tasks_running_and_queued_on_a_killed_node_are_retried_elsewhere(local_cluster, marks):
    """Point 4: a running task and queued ones on the dead node are retried on the
    surviving node and return the right values; new tasks run; one clear line, no
    gRPC stack dump on stderr."""
    cluster, node_b = two_nodes(local_cluster)
    driver = cluster.driver(script("""
        wait_nodes(2)
        @ray.remote(max_retries=2)
        def work(i):
            touch(f"run-{i}-{node()[:8]}-{os.getpid()}")
            if node() == NODE_B:
                time.sleep(120)   # killed with its node long before this ends
            return i * 10, node()
        refs = [work.options(scheduling_strategy=on_b()).remote(i) for i in range(3)]
        print("SUBMITTED", flush=True)
        print("RESULT", json.dumps(ray.get(refs)), flush=True)
        print("NEW", json.dumps(ray.get(work.remote(7))))
    """, node_b=node_b.node_id, marks=marks))
    driver.expect("SUBMITTED")
    wait_marker(marks, "run-0-" + node_b.node_id[:8], driver=driver)
    cluster.kill_node(node_b)
    lines = driver.finish_ok(AFTER_KILL_BOUND_S)
    print(f"\n[retry] kill -> results in {time.monotonic() - node_b.killed_at:.1f}s")
    results = json.loads(line_value(lines, "RESULT"))
    assert [value for value, _ in results] == [0, 10, 20]
    assert all(where != node_b.node_id for _, where in results)
    assert json.loads(line_value(lines, "NEW")) == [70, cluster.head.node_id]
    stderr = "\n".join(driver.err)
    assert "_InactiveRpcError" not in stderr and "grpc._channel" not in stderr, stderr


def test_objects_lost_with_their_node_are_reconstructed_recursively(local_cluster, marks):
    """Point 3: A = make() and B = double(A), both stored only on the killed node, are
    rebuilt from lineage on the surviving node: get(B) and get(A) are correct."""
    cluster, node_b = two_nodes(local_cluster)
    driver = cluster.driver(script(f"""
        wait_nodes(2)
        @ray.remote(max_retries=2)
        def make(n):
            touch(f"make-{{node()[:8]}}-{{os.getpid()}}")
            return np.arange(n, dtype=np.float64)
        @ray.remote(max_retries=2)
        def double(a):
            touch(f"double-{{node()[:8]}}-{{os.getpid()}}")
            return a * 2
        a = make.options(scheduling_strategy=on_b()).remote({BIG})
        b = double.options(scheduling_strategy=on_b()).remote(a)
        # Done on node_b, not copied here (fetch_local=False).
        ready, _ = ray.wait([a, b], num_returns=2, timeout=60, fetch_local=False)
        assert len(ready) == 2, "the objects were not produced"
        print("READY", flush=True)
        wait_go()
        vb = ray.get(b)
        print("B_OK", vb.shape == ({BIG},) and bool(np.array_equal(vb, np.arange({BIG}) * 2.0)), flush=True)
        va = ray.get(a)
        print("A_OK", va.shape == ({BIG},) and bool(np.array_equal(va, np.arange({BIG}, dtype=np.float64))))
    """, node_b=node_b.node_id, marks=marks))
    driver.expect("READY")
    assert markers(marks, "make-" + node_b.node_id[:8]) and markers(marks, "double-" + node_b.node_id[:8])
    cluster.kill_node(node_b)
    driver.send()
    lines = driver.finish_ok(AFTER_KILL_BOUND_S)
    print(f"\n[reconstruction] kill -> values in {time.monotonic() - node_b.killed_at:.1f}s")
    assert line_value(lines, "B_OK") == "True"
    assert line_value(lines, "A_OK") == "True"
    # Both producing tasks really re-ran, on the surviving node.
    head = cluster.head.node_id[:8]
    assert markers(marks, f"make-{head}") and markers(marks, f"double-{head}"), os.listdir(marks)


def test_put_objects_lost_with_their_node_raise_object_lost_naming_the_node(local_cluster, marks):
    """Point 3: a ray.put object (no lineage) made by a task on the killed node raises
    ObjectLostError whose message names that node."""
    cluster, node_b = two_nodes(local_cluster)
    driver = cluster.driver(script(f"""
        wait_nodes(2)
        @ray.remote
        def putter():
            return [ray.put(np.arange({BIG}, dtype=np.float64))], node()
        inner, where = ray.get(putter.options(scheduling_strategy=on_b()).remote())
        assert where == NODE_B, where
        print("READY", flush=True)
        wait_go()
        try:
            ray.get(inner[0])
            print("GOT_VALUE")
        except ray.exceptions.ObjectLostError as err:
            print("LOST", type(err).__name__, json.dumps(str(err)))
        except Exception as err:
            print("OTHER", type(err).__name__, json.dumps(str(err)))
    """, node_b=node_b.node_id, marks=marks))
    driver.expect("READY")
    cluster.kill_node(node_b)
    driver.send()
    lines = driver.finish_ok(AFTER_KILL_BOUND_S)
    assert any(line.startswith("LOST ") for line in lines), lines
    message = json.loads(line_value(lines, "LOST").split(" ", 1)[1])
    assert node_b.node_id in message or node_b.node_id[:8] in message, message


def test_lost_object_without_retries_raises_reconstruction_failed(local_cluster):
    """Point 3: reconstruction respects max_retries: an object of a max_retries=0 task
    lost with its node raises ObjectReconstructionFailedError (never hangs)."""
    cluster, node_b = two_nodes(local_cluster)
    driver = cluster.driver(script(f"""
        wait_nodes(2)
        @ray.remote(max_retries=0)
        def make():
            return np.ones({BIG})
        ref = make.options(scheduling_strategy=on_b()).remote()
        ready, _ = ray.wait([ref], timeout=60, fetch_local=False)
        assert ready, "the object was not produced"
        print("READY", flush=True)
        wait_go()
        try:
            ray.get(ref)
            print("GOT_VALUE")
        except ray.exceptions.ObjectLostError as err:
            print("LOST", type(err).__name__, json.dumps(str(err)))
    """, node_b=node_b.node_id))
    driver.expect("READY")
    cluster.kill_node(node_b)
    driver.send()
    lines = driver.finish_ok(AFTER_KILL_BOUND_S)
    assert line_value(lines, "LOST").split()[0] == "ObjectReconstructionFailedError", lines


def test_restartable_actor_on_a_killed_node_restarts_elsewhere(local_cluster, marks):
    """Point 5: max_restarts=1 -> the actor is re-created on the surviving node (its
    constructor re-runs, state reset), answers, and is found again by its name."""
    cluster, node_b = two_nodes(local_cluster)
    driver = cluster.driver(script("""
        wait_nodes(2)
        @ray.remote(max_restarts=1, max_task_retries=1)
        class Counter:
            def __init__(self):
                touch(f"ctor-{node()[:8]}-{os.getpid()}")
                self.n = 0
            def incr(self):
                self.n += 1
                return self.n, node()
        counter = Counter.options(scheduling_strategy=on_b(), name="counter").remote()
        print("BEFORE", json.dumps(ray.get([counter.incr.remote() for _ in range(3)])), flush=True)
        wait_go()
        print("AFTER", json.dumps(ray.get(counter.incr.remote())), flush=True)
        print("AGAIN", json.dumps(ray.get(counter.incr.remote())), flush=True)
        print("BY_NAME", json.dumps(ray.get(ray.get_actor("counter").incr.remote())))
    """, node_b=node_b.node_id, marks=marks))
    before = json.loads(driver.expect("BEFORE").split(" ", 1)[1])
    assert before == [[i, node_b.node_id] for i in (1, 2, 3)]
    cluster.kill_node(node_b)
    driver.send()
    lines = driver.finish_ok(AFTER_KILL_BOUND_S)
    print(f"\n[actor restart] kill -> answer in {time.monotonic() - node_b.killed_at:.1f}s")
    assert json.loads(line_value(lines, "AFTER")) == [1, cluster.head.node_id]
    assert json.loads(line_value(lines, "AGAIN")) == [2, cluster.head.node_id]
    assert json.loads(line_value(lines, "BY_NAME")) == [3, cluster.head.node_id]   # re-registered
    assert len(markers(marks, "ctor-" + cluster.head.node_id[:8])) == 1, os.listdir(marks)


def test_non_restartable_actor_on_a_killed_node_raises_actor_died(local_cluster):
    """Point 5: max_restarts=0 -> calls after the node's death raise ActorDiedError
    (never hang)."""
    cluster, node_b = two_nodes(local_cluster)
    driver = cluster.driver(script("""
        wait_nodes(2)
        @ray.remote(max_restarts=0)
        class Fragile:
            def where(self):
                return node()
        actor = Fragile.options(scheduling_strategy=on_b()).remote()
        print("BEFORE", ray.get(actor.where.remote()), flush=True)
        wait_go()
        for attempt in range(2):
            try:
                ray.get(actor.where.remote())
                print("ANSWERED")
            except ray.exceptions.ActorDiedError as err:
                print("DIED", json.dumps(str(err)))
            except Exception as err:
                print("OTHER", type(err).__name__, json.dumps(str(err)))
    """, node_b=node_b.node_id))
    assert driver.expect("BEFORE").split()[1] == node_b.node_id
    cluster.kill_node(node_b)
    driver.send()
    lines = driver.finish_ok(AFTER_KILL_BOUND_S)
    outcomes = [line.split()[0] for line in lines if line.split()[0] in ("ANSWERED", "DIED", "OTHER")]
    assert outcomes == ["DIED", "DIED"], lines


def test_embedded_scheduler_killed_get_raises_instead_of_hanging(embedded_env, marks):
    """Point 4 (embedded single node): the scheduler SIGKILLed under a running and a
    queued task -> ray.get raises a raylite error within a bound; after the driver
    exits nothing of its cluster is left (point 7)."""
    env, leftovers = embedded_env
    driver = Driver(script("""
        @ray.remote
        def slow(i):
            touch(f"slow-{i}-{os.getpid()}")
            time.sleep(120)
            return i
        refs = {"running": slow.remote(0), "queued": slow.remote(1)}
        print("READY", flush=True)
        wait_go()
        for name, ref in refs.items():
            start = time.monotonic()
            try:
                ray.get(ref)
                print("GOT", name)
            except ray.exceptions.RayError as err:
                print("RAISED", name, type(err).__name__, round(time.monotonic() - start, 2),
                      json.dumps(str(err)[:300]), flush=True)
            except BaseException as err:
                print("FOREIGN", name, type(err).__module__, type(err).__name__, flush=True)
    """, marks=marks, connect="num_cpus=1"), env, "embedded driver")
    try:
        driver.expect("READY")
        wait_marker(marks, "slow-0-", driver=driver)
        scheduler = embedded_scheduler(driver)
        leftovers.remember([driver.pid] + descendants(driver.pid))
        os.kill(scheduler, signal.SIGKILL)
        wait_dead([scheduler])
        killed_at = time.monotonic()
        driver.send()
        lines = driver.finish_ok(AFTER_KILL_BOUND_S)
        print(f"\n[embedded] kill -> both gets answered in {time.monotonic() - killed_at:.1f}s: {lines}")
        raised = [line.split()[1] for line in lines if line.startswith("RAISED")]
        assert raised == ["running", "queued"], lines
        leftovers.assert_gone(what="after the driver exited")
    finally:
        driver.kill()


def test_driver_killed_while_its_tasks_run_leaves_no_orphans(local_cluster, marks):
    """Point 7: a SIGKILLed driver's running tasks stop (their CPUs come back for the
    next driver) and `raylite stop` leaves no worker and no /dev/shm entry."""
    cluster, node_b = two_nodes(local_cluster)
    driver = cluster.driver(script(f"""
        wait_nodes(2)
        @ray.remote
        def slow(i):
            touch(f"slow-{{i}}-{{node()[:8]}}-{{os.getpid()}}")
            time.sleep(120)
        big = ray.put(np.ones({BIG}))
        refs = [slow.options(scheduling_strategy="SPREAD").remote(i) for i in range(4)]
        print("READY", flush=True)
        ray.get(refs)
    """, marks=marks), name="doomed driver")
    driver.expect("READY")
    wait_until(lambda: len(markers(marks, "slow-")) >= 2, 60, 0.05)
    running = markers(marks, "slow-")
    assert {m.split("-")[2] for m in running} == {cluster.head.node_id[:8], node_b.node_id[:8]}, running
    workers = [int(m.split("-")[3]) for m in running]
    cluster.leftovers.remember(workers)
    driver.kill()
    killed_at = time.monotonic()
    # The next driver needs every CPU of the cluster: the dead driver's tasks must go.
    lines = cluster.run_driver(script("""
        @ray.remote
        def quick(i):
            return i, node()
        print("NEXT", json.dumps(sorted(ray.get([quick.options(scheduling_strategy="SPREAD").remote(i)
                                                for i in range(4)]))))
    """), timeout=AFTER_KILL_BOUND_S)
    print(f"\n[driver killed] next driver done {time.monotonic() - killed_at:.1f}s after the kill")
    assert [i for i, _ in json.loads(line_value(lines, "NEXT"))] == [0, 1, 2, 3]
    orphans_gone = wait_until(lambda: not any(alive(p) for p in workers), 15, 0.1)
    assert orphans_gone, f"workers running the killed driver's tasks still run 15s later: " \
        f"{[p for p in workers if alive(p)]}"
    cluster.stop()


def test_scheduler_then_driver_killed_leaves_no_redis_worker_or_shm(embedded_env, marks):
    """Point 7 (double fault): the embedded scheduler SIGKILLed, then its driver
    SIGKILLed -> no redis-server, zygote, worker or /dev/shm entry is left."""
    env, leftovers = embedded_env
    driver = Driver(script(f"""
        @ray.remote
        def slow():
            touch(f"slow-{{os.getpid()}}")
            time.sleep(120)
        big = ray.put(np.ones({BIG}))
        ref = slow.remote()
        print("READY", flush=True)
        ray.get(ref)
    """, marks=marks, connect="num_cpus=1"), env, "embedded driver")
    try:
        driver.expect("READY")
        wait_marker(marks, "slow-", driver=driver)
        scheduler = embedded_scheduler(driver)
        everything = [driver.pid] + descendants(driver.pid)
        leftovers.remember(everything)
        assert leftovers.shm_entries(), "expected the embedded store in /dev/shm"
        os.kill(scheduler, signal.SIGKILL)
        wait_dead([scheduler])
        time.sleep(0.5)   # the driver notices (or not) before it dies too
        driver.kill()
        leftovers.assert_gone(what="after the scheduler and then its driver were SIGKILLed")
    finally:
        driver.kill()


def test_redis_sigkilled_and_restarted_from_its_aof_while_a_driver_runs(local_cluster, marks):
    """Point 6: Redis SIGKILLed mid-run and restarted from its append-only file on the
    same port: every result is right, work that needs the GCS during the outage waits
    and continues, nothing committed before the kill is lost, both nodes stay alive."""
    cluster, node_b = two_nodes(local_cluster)
    down, up = os.path.join(marks, "redis-down"), os.path.join(marks, "redis-up")
    driver = cluster.driver(script(f"""
        wait_nodes(2)
        @ray.remote
        def square(x):
            return x * x
        @ray.remote
        class Keeper:
            def __init__(self):
                self.items = []
            def add(self, item):
                self.items.append(item)
                return len(self.items)
            def contents(self):
                return self.items
        keeper = Keeper.options(name="keeper", lifetime="detached").remote()
        ray.get(keeper.add.remote("before"))
        # Each node runs square once before the outage: a node's workers keep the code
        # they fetched (node-local cache), so tasks of a function a node already ran
        # need no GCS. (A SPREAD batch rides leases, so it may miss a node.)
        for n in ray.nodes():
            ray.get(square.options(scheduling_strategy=Affinity(n["NodeID"], soft=False)).remote(0))
        def batch(i):
            got = ray.get([square.options(scheduling_strategy="SPREAD").remote(x) for x in range(20)])
            assert got == [x * x for x in range(20)], got
            print("BATCH", i, flush=True)
        i = 0
        while not os.path.exists({down!r}):
            batch(i); i += 1
            assert i < 2000, "the test never killed redis"
        batch(i); i += 1   # during the outage: tasks of known functions run
        print("OUTAGE_BATCH", os.path.exists({up!r}), flush=True)
        print("NEW_START", flush=True)
        @ray.remote
        def cube(x):                         # a new function: needs the GCS
            return x ** 3
        @ray.remote
        class Fresh:                         # a new actor: needs the GCS
            def ping(self):
                return "pong"
        print("NEW", ray.get(cube.remote(3)), ray.get(Fresh.remote().ping.remote()), flush=True)
        print("UP_SEEN", os.path.exists({up!r}), flush=True)
        for _ in range(3):
            batch(i); i += 1
        ray.get(keeper.add.remote("after"))
        print("KEEPER", json.dumps(ray.get(ray.get_actor("keeper").contents.remote())))
        wait_nodes(2, timeout=15)
        print("NODES_ALIVE", len([n for n in ray.nodes() if n["Alive"]]))
    """, marks=marks))
    driver.expect("BATCH 1")
    cluster.kill_redis()
    open(down, "w").close()
    try:
        # Tasks of functions already known need no GCS: they run during the outage.
        assert driver.expect("OUTAGE_BATCH", timeout=30) == "OUTAGE_BATCH False"
        driver.expect("NEW_START", timeout=30)
        time.sleep(OUTAGE_S)   # the new function and actor must wait for the GCS, not fail
    finally:
        cluster.restart_redis()
        open(up, "w").close()
    lines = driver.finish_ok(AFTER_KILL_BOUND_S)
    assert line_value(lines, "NEW") == "27 pong"
    assert json.loads(line_value(lines, "KEEPER")) == ["before", "after"]
    assert line_value(lines, "NODES_ALIVE") == "2"
    assert cluster.status_of(cluster.head) == "ALIVE" and cluster.status_of(node_b) == "ALIVE"
