"""Actors end to end on a real local cluster (issue #4): real worker processes, real
kills, the GCS actor table. No timing assertions: waits poll with a deadline and
gates (files) order events across processes."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import raylite as ray
import raylite.actor
from raylite import api
from raylite.exceptions import ActorDiedError, GetTimeoutError, RayActorError

DEADLINE = 30  # seconds; only a bound on waits, never asserted as a duration


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2, resources={"slot": 1})
    yield
    ray.shutdown()


def wait_until(predicate, timeout=DEADLINE, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits to be reaped by its parent.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def actor_record(handle):
    return api.connection().gcs.get_actor(handle._actor_id_hex())


def get(refs):
    return ray.get(refs, timeout=DEADLINE)


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.n = start
        self.log = []

    def inc(self, by=1):
        self.n += by
        return self.n

    def add(self, item):
        self.log.append(item)
        return len(self.log)

    def items(self):
        return self.log

    def pid(self):
        return os.getpid()

    def crash(self):
        os._exit(1)

    def crash_once(self, marker):
        if not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return "retried"

    def wait_for(self, gate):
        while not os.path.exists(gate):
            time.sleep(0.01)
        return "released"

    def leave(self):
        raylite.actor.exit_actor()

    def quit(self, code=None):
        sys.exit(code)

    def make_ref(self, value):
        return ray.put(value)

    @ray.method(num_returns=2)
    def pair(self, x):
        return x, x * 10


@ray.remote
def slow_value(value, gate):
    while not os.path.exists(gate):
        time.sleep(0.01)
    return value


@ray.remote
def add_through(handle, values):
    return [get(handle.add.remote(v)) for v in values]


@ray.remote
def add_through_nested(handles, value):
    return get(handles[0].add.remote(value))


@ray.remote
class Relay:
    def __init__(self, target):
        self.target = target

    def forward(self, value):
        return get(self.target.add.remote(value))

    def forward_to(self, other, value):
        return get(other.inc.remote(value))


# ---- 1. basics, ordering, passing handles ---------------------------------------------

def test_actor_runs_in_its_own_process_and_keeps_state():
    c = Counter.remote(10)
    assert isinstance(c.inc.remote(), ray.ObjectRef)
    assert get(c.inc.remote(5)) == 16
    assert get(c.pid.remote()) != os.getpid()


def test_calls_from_one_caller_run_in_submission_order(tmp_path):
    c = Counter.remote()
    gate = str(tmp_path / "gate")
    # The first call's argument is a ref that stays pending until the gate opens; the
    # calls behind it must still run after it.
    refs = [c.add.remote(slow_value.remote(0, gate))]
    refs += [c.add.remote(i) for i in range(1, 200)]
    open(gate, "w").close()
    assert get(refs) == list(range(1, 201))
    assert get(c.items.remote()) == list(range(200))


def test_handle_passed_to_task_and_to_other_actors():
    c = Counter.remote()
    assert get(add_through.remote(c, ["a", "b", "c"])) == [1, 2, 3]
    assert get(add_through_nested.remote([c], "d")) == 4
    relay = Relay.remote(c)
    assert get(relay.forward.remote("e")) == 5
    other = Counter.remote(100)
    assert get(relay.forward_to.remote(other, 1)) == 101
    assert get(c.items.remote()) == ["a", "b", "c", "d", "e"]


def test_temporary_handle_call_completes():
    # Ray keeps an actor alive while calls submitted through a dropped handle are
    # pending: ray.get(Counter.remote().inc.remote()) is a common idiom.
    ref = Counter.remote(41).inc.remote()        # the handle is gone after this line
    assert get(ref) == 42


def test_dropped_handle_lets_calls_waiting_on_arguments_finish(tmp_path):
    c = Counter.remote()
    get(c.pid.remote())
    gate = str(tmp_path / "gate")
    ref = c.add.remote(slow_value.remote("late", gate))
    del c
    open(gate, "w").close()
    assert get(ref) == 1


# ---- 2. options ----------------------------------------------------------------------------

def test_default_actors_need_a_cpu_to_place_but_none_while_running():
    actors = [Counter.remote() for _ in range(4)]      # 4 actors on num_cpus=2
    pids = get([a.pid.remote() for a in actors])
    assert len(set(pids)) == 4
    assert ray.available_resources().get("CPU") == 2.0
    for a in actors:
        ray.kill(a)


def test_explicit_num_cpus_is_held_while_running():
    a, b = (Counter.options(num_cpus=1).remote() for _ in range(2))
    get([a.pid.remote(), b.pid.remote()])
    c = Counter.options(num_cpus=1).remote()
    with pytest.raises(GetTimeoutError):
        ray.get(c.pid.remote(), timeout=0.5)           # no CPU left to place it
    assert actor_record(c).state == "PENDING_CREATION"
    ray.kill(a)
    assert get(c.pid.remote()) > 0                      # placed once a CPU came back
    ray.kill(b)
    ray.kill(c)


def test_custom_resources_place_actor():
    a = Counter.options(resources={"slot": 1}, num_cpus=0).remote()
    get(a.pid.remote())
    wait_until(lambda: ray.available_resources().get("slot", 0) == 0, what="slot taken")
    ray.kill(a)
    wait_until(lambda: ray.available_resources().get("slot", 0) == 1, what="slot released")


@ray.remote(max_concurrency=3)
class Threaded:
    def __init__(self, parties):
        self.barrier = threading.Barrier(parties, timeout=DEADLINE)
        self.lock = threading.Lock()
        self.inside = 0
        self.peak = 0

    def meet(self):
        with self.lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            self.barrier.wait()       # raises BrokenBarrierError unless `parties` overlap
            time.sleep(0.01)
        finally:
            with self.lock:
                self.inside -= 1
        return True

    def get_peak(self):
        return self.peak


def test_threaded_actor_overlaps_up_to_max_concurrency():
    t = Threaded.remote(3)
    assert get([t.meet.remote() for _ in range(9)]) == [True] * 9
    assert get(t.get_peak.remote()) == 3


def test_threaded_actor_never_exceeds_max_concurrency():
    t = Threaded.options(max_concurrency=2).remote(2)
    assert get([t.meet.remote() for _ in range(8)]) == [True] * 8
    assert get(t.get_peak.remote()) == 2


def test_default_actor_runs_one_call_at_a_time():
    t = Threaded.options(max_concurrency=1).remote(1)
    get([t.meet.remote() for _ in range(5)])
    assert get(t.get_peak.remote()) == 1


@ray.remote
class AsyncActor:
    def __init__(self):
        self.inside = 0
        self.peak = 0

    async def meet(self, parties):
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        try:
            for _ in range(DEADLINE * 100):
                if self.peak >= parties:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.01)
            return self.peak >= parties
        finally:
            self.inside -= 1

    async def get_peak(self):
        return self.peak

    async def ping(self):
        return "pong"

    async def await_refs(self, refs):
        first = await refs[0]
        rest = await asyncio.gather(*refs[1:])
        done, pending = await asyncio.wait([asyncio.ensure_future(r) for r in refs])
        assert not pending
        return [first, *rest, sorted(d.result() for d in done)]

    async def await_gated(self, refs):
        return await refs[0]

    async def await_fresh(self, x):
        return await square.remote(x)          # a ref nobody else holds

    async def make_ref(self, value):
        return ray.put(value)


def test_async_actor_overlaps_calls_default_limit():
    a = AsyncActor.remote()
    assert get([a.meet.remote(40) for _ in range(40)]) == [True] * 40
    assert get(a.get_peak.remote()) == 40


def test_async_actor_respects_max_concurrency():
    a = AsyncActor.options(max_concurrency=2).remote()
    assert get([a.meet.remote(2) for _ in range(6)]) == [True] * 6
    assert get(a.get_peak.remote()) == 2


def test_named_actor_namespace_and_get_if_exists():
    a = Counter.options(name="counter", namespace="ns-a").remote(7)
    assert get(a.inc.remote()) == 8                      # created (see the test below)
    assert get(ray.get_actor("counter", namespace="ns-a").inc.remote()) == 9
    with pytest.raises(ValueError):
        ray.get_actor("counter")                         # the driver's own namespace
    with pytest.raises(ValueError):
        Counter.options(name="counter", namespace="ns-a").remote()
    same = Counter.options(name="counter", namespace="ns-a", get_if_exists=True).remote(0)
    assert get(same.inc.remote()) == 10
    b = Counter.options(name="counter", namespace="ns-b").remote(100)   # other namespace
    assert get(b.inc.remote()) == 101
    ray.kill(a)
    ray.kill(b)
    wait_until(lambda: _lookup_fails("counter", "ns-a"), what="name released")
    fresh = Counter.options(name="counter", namespace="ns-a").remote(0)  # name reusable
    assert get(fresh.inc.remote()) == 1
    ray.kill(fresh)


def test_get_actor_right_after_creation():
    # As in Ray, a named actor can be looked up as soon as .remote() has returned.
    handles, missing = [], []
    for i in range(20):
        handles.append(Counter.options(name=f"fresh-{i}").remote(i))
        try:
            ray.get_actor(f"fresh-{i}")
        except ValueError:
            missing.append(i)
    assert missing == []
    assert get(ray.get_actor("fresh-3").inc.remote()) == 4
    for h in handles:
        ray.kill(h)


def test_name_taken_right_after_creation():
    handles = []
    for i in range(10):
        handles.append(Counter.options(name=f"taken-{i}").remote(i))
        with pytest.raises(ValueError):
            handles.append(Counter.options(name=f"taken-{i}").remote(0))
        same = Counter.options(name=f"taken-{i}", get_if_exists=True).remote(0)
        assert get(same.inc.remote()) == i + 1          # the first actor, not a new one
    for h in handles:
        ray.kill(h)


def _lookup_fails(name, namespace):
    try:
        ray.get_actor(name, namespace=namespace)
    except ValueError:
        return True
    return False


def test_named_actor_survives_its_handles():
    a = Counter.options(name="keeper").remote(1)
    pid = get(a.pid.remote())
    del a
    h = ray.get_actor("keeper")
    assert get(h.pid.remote()) == pid
    assert get(h.inc.remote()) == 2
    ray.kill(h)


def test_detached_actor_survives_its_handles():
    a = Counter.options(name="det-local", lifetime="detached").remote(1)
    pid = get(a.pid.remote())
    del a
    h = ray.get_actor("det-local")
    assert get(h.inc.remote()) == 2 and pid_alive(pid)
    ray.kill(h)
    wait_until(lambda: not pid_alive(pid), what="killed detached actor exits")


_SECOND_DRIVER = r"""
import os, sys
import raylite as ray
ray.init(address=sys.argv[1], namespace="lifetimes")

@ray.remote
class K:
    def pid(self):
        return os.getpid()

detached = K.options(name="detached", lifetime="detached").remote()
owned = K.options(name="owned").remote()
print(ray.get(detached.pid.remote()), ray.get(owned.pid.remote()))
"""


@pytest.fixture(scope="module")
def second_driver_pids():
    """Run a second driver that creates a detached and a non-detached named actor, then exits."""
    cluster = api.connection()
    env = dict(os.environ, RAYLITE_TOKEN=cluster.worker.token,
               RAYLITE_GCS_PASSWORD=cluster.gcs.password)
    out = subprocess.run([sys.executable, "-c", _SECOND_DRIVER, cluster.gcs_address], env=env,
                         check=False, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    detached_pid, owned_pid = map(int, out.stdout.split()[-2:])
    return detached_pid, owned_pid


def test_detached_actor_outlives_its_driver(second_driver_pids):
    detached_pid, _ = second_driver_pids
    h = ray.get_actor("detached", namespace="lifetimes")
    assert get(h.pid.remote()) == detached_pid
    ray.kill(h)


def test_non_detached_actor_dies_with_its_driver(second_driver_pids):
    _, owned_pid = second_driver_pids
    wait_until(lambda: not pid_alive(owned_pid), what="owned actor process exits")
    # Its name is released and its table entry is DEAD, as in Ray.
    wait_until(lambda: _lookup_fails("owned", "lifetimes"), timeout=10,
               what="get_actor('owned') raising ValueError after its driver exited")


def test_method_num_returns():
    c = Counter.remote()
    x, y = c.pair.remote(3)
    assert get([x, y]) == [3, 30]
    refs = c.inc.options(num_returns=1).remote()
    assert get(refs) == 1


# ---- 3. get_actor, kill, terminate, exit_actor, constructor errors ---------------------------

def test_get_actor_missing_raises_value_error():
    with pytest.raises(ValueError):
        ray.get_actor("no-such-actor")
    with pytest.raises(ValueError):
        ray.get_actor("no-such-actor", namespace="elsewhere")


def test_kill_then_calls_raise_actor_died(tmp_path):
    c = Counter.remote()
    pid = get(c.pid.remote())
    gate = str(tmp_path / "never")
    in_flight = c.wait_for.remote(gate)
    ray.kill(c)
    with pytest.raises(RayActorError):
        get(in_flight)
    with pytest.raises(ActorDiedError):
        get(c.inc.remote())
    wait_until(lambda: not pid_alive(pid), what="killed actor process exits")
    wait_until(lambda: actor_record(c).state == "DEAD", what="DEAD in the actor table")
    with pytest.raises(ValueError):
        ray.kill("not an actor")


def test_kill_without_no_restart_restarts():
    c = Counter.options(max_restarts=1).remote()
    pid = get(c.pid.remote())
    ray.kill(c, no_restart=False)
    wait_until(lambda: not pid_alive(pid), what="killed actor process exits")
    new_pid = wait_until(lambda: _try_pid(c), what="restarted actor answers")
    assert new_pid != pid
    assert get(c.inc.remote()) == 1
    ray.kill(c)


def _try_pid(handle):
    try:
        return get(handle.pid.remote())
    except RayActorError:
        return None


def test_ray_terminate_finishes_queued_calls_then_exits():
    c = Counter.remote()
    pid = get(c.pid.remote())
    queued = [c.inc.remote() for _ in range(5)]
    c.__ray_terminate__.remote()
    assert get(queued) == [1, 2, 3, 4, 5]
    with pytest.raises(RayActorError):
        get(c.inc.remote())
    wait_until(lambda: not pid_alive(pid), what="terminated actor process exits")
    wait_until(lambda: actor_record(c).state == "DEAD", what="DEAD in the actor table")


def test_ray_terminate_ref_raises_like_ray():
    # In Ray the ref returned by __ray_terminate__.remote() raises ActorDiedError.
    c = Counter.remote()
    get(c.pid.remote())
    with pytest.raises(RayActorError):
        get(c.__ray_terminate__.remote())


def test_exit_actor_ends_actor_without_restart():
    c = Counter.options(max_restarts=2).remote()
    pid = get(c.pid.remote())
    leaving = c.leave.remote()
    wait_until(lambda: not pid_alive(pid), what="exited actor process exits")
    with pytest.raises(RayActorError):
        get(c.inc.remote())
    wait_until(lambda: actor_record(c).state == "DEAD", what="DEAD in the actor table")
    ray.wait([leaving], timeout=DEADLINE)
    with pytest.raises(TypeError):
        raylite.actor.exit_actor()            # not inside an actor


def test_exit_actor_call_raises_like_ray():
    # In Ray the call that runs exit_actor() raises ActorDiedError.
    c = Counter.remote()
    get(c.pid.remote())
    with pytest.raises(RayActorError):
        get(c.leave.remote())


def test_sys_exit_ends_actor_for_good_like_ray():
    # As in Ray: sys.exit() (code 0 or none) is an intentional exit, never restarted.
    c = Counter.options(max_restarts=2).remote()
    pid = get(c.pid.remote())
    with pytest.raises(ActorDiedError, match="exit"):
        get(c.quit.remote())
    wait_until(lambda: not pid_alive(pid), what="exited actor process exits")
    with pytest.raises(ActorDiedError, match="exit"):
        get(c.inc.remote())
    wait_until(lambda: actor_record(c).state == "DEAD", what="DEAD in the actor table")


def test_sys_exit_with_error_code_is_a_crash_and_restarts():
    c = Counter.options(max_restarts=1).remote()
    pid = get(c.pid.remote())
    with pytest.raises(RayActorError):
        get(c.quit.remote(3))
    assert get(c.inc.remote()) == 1            # a fresh instance
    assert get(c.pid.remote()) != pid
    with pytest.raises(RayActorError):
        get(c.quit.remote(3))                  # no restarts left
    with pytest.raises(ActorDiedError):
        get(c.inc.remote())


def test_ref_returned_by_actor_method_arrives_as_a_ref():
    c = Counter.remote()
    inner = get(c.make_ref.remote("payload"))
    assert isinstance(inner, ray.ObjectRef)
    assert get(inner) == "payload"
    a = AsyncActor.remote()
    inner = get(a.make_ref.remote([1, 2]))
    assert isinstance(inner, ray.ObjectRef)
    assert get(inner) == [1, 2]


@ray.remote
class BrokenInit:
    def __init__(self):
        raise ValueError("constructor exploded")

    def method(self):
        return 1


def test_constructor_error_fails_every_call():
    b = BrokenInit.remote()
    for _ in range(3):
        with pytest.raises(RayActorError) as info:
            get(b.method.remote())
        assert "constructor exploded" in str(info.value)
        assert "ValueError" in str(info.value)
    wait_until(lambda: actor_record(b).state == "DEAD", what="DEAD in the actor table")


# ---- 4. restarts and the actor table -------------------------------------------------------

@pytest.mark.parametrize("how", ["sigkill", "os_exit"])
def test_restart_reruns_constructor(how):
    c = Counter.options(max_restarts=1).remote(100)
    pid = get(c.pid.remote())
    assert get(c.inc.remote()) == 101
    if how == "sigkill":
        os.kill(pid, signal.SIGKILL)
        # Calls sent before the owner notices the death may fail (as in Ray); wait for it.
        wait_until(lambda: actor_record(c).num_restarts == 1, what="restart noticed")
    else:
        with pytest.raises(RayActorError):   # the crashing call itself is not retried
            get(c.crash.remote())
    assert get(c.inc.remote()) == 101          # fresh state: the constructor ran again
    assert get(c.pid.remote()) != pid
    record = actor_record(c)
    assert record.state == "ALIVE" and record.num_restarts == 1
    # No restarts left: the next death is final.
    with pytest.raises(RayActorError):
        get(c.crash.remote())
    with pytest.raises(RayActorError):
        get(c.inc.remote())
    wait_until(lambda: actor_record(c).state == "DEAD", what="DEAD after last restart")


def test_no_restarts_by_default():
    c = Counter.remote()
    with pytest.raises(RayActorError):
        get(c.crash.remote())
    with pytest.raises(RayActorError):
        get(c.inc.remote())


def test_in_flight_call_retried_with_max_task_retries(tmp_path):
    c = Counter.options(max_restarts=1, max_task_retries=1).remote()
    assert get(c.crash_once.remote(str(tmp_path / "marker"))) == "retried"
    assert actor_record(c).num_restarts == 1


def test_in_flight_call_fails_without_task_retries(tmp_path):
    c = Counter.options(max_restarts=1).remote()
    with pytest.raises(RayActorError):
        get(c.crash_once.remote(str(tmp_path / "marker")))
    assert get(c.crash_once.remote(str(tmp_path / "marker"))) == "retried"


@ray.remote
class Gated:
    def __init__(self, gate_dir):
        # The first incarnation waits for gate "0", a restart for gate "1".
        incarnation = len(os.listdir(gate_dir + "/runs"))
        open(f"{gate_dir}/runs/{incarnation}", "w").close()
        while not os.path.exists(f"{gate_dir}/gate{incarnation}"):
            time.sleep(0.01)

    def pid(self):
        return os.getpid()


def test_actor_table_records_states_and_restarts(tmp_path):
    (tmp_path / "runs").mkdir()
    g = Gated.options(max_restarts=1).remote(str(tmp_path))
    wait_until(lambda: actor_record(g) is not None, what="actor table entry")
    assert actor_record(g).state == "PENDING_CREATION"
    (tmp_path / "gate0").touch()
    pid = get(g.pid.remote())
    record = actor_record(g)
    assert record.state == "ALIVE" and record.num_restarts == 0 and record.pid == pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: actor_record(g).state == "RESTARTING", what="RESTARTING")
    (tmp_path / "gate1").touch()
    assert get(g.pid.remote()) != pid
    record = actor_record(g)
    assert record.state == "ALIVE" and record.num_restarts == 1
    ray.kill(g)
    wait_until(lambda: actor_record(g).state == "DEAD", what="DEAD")


# ---- 5. handles out of scope ---------------------------------------------------------------

def test_actor_without_handles_is_terminated_and_resources_released():
    a = Counter.options(resources={"slot": 1}, num_cpus=0).remote()
    pid = get(a.pid.remote())
    assert ray.available_resources().get("slot", 0) == 0
    del a
    wait_until(lambda: not pid_alive(pid), what="unreferenced actor process exits")
    wait_until(lambda: ray.available_resources().get("slot", 0) == 1, what="slot released")
    b = Counter.options(resources={"slot": 1}, num_cpus=0).remote()   # fits again
    assert get(b.inc.remote()) == 1
    ray.kill(b)


def test_handle_kept_by_a_task_result_keeps_actor_alive():
    a = Counter.remote()
    relay = Relay.remote(a)
    pid = get(a.pid.remote())
    del a                                  # the Relay still holds a handle
    assert get(relay.forward.remote("x")) == 1
    assert pid_alive(pid)


# ---- 7. awaitable refs -------------------------------------------------------------------------

@ray.remote
def square(x):
    return x * x


def test_refs_awaitable_inside_async_actor():
    a = AsyncActor.remote()
    refs = [square.remote(i) for i in range(4)]
    assert get(a.await_refs.remote(refs)) == [0, 1, 4, 9, [0, 1, 4, 9]]


def test_await_in_async_actor_does_not_block_its_loop(tmp_path):
    a = AsyncActor.remote()
    gate = str(tmp_path / "gate")
    pending = a.await_gated.remote([slow_value.remote("done", gate)])
    assert get(a.ping.remote()) == "pong"     # runs while await_gated is awaiting
    open(gate, "w").close()
    assert get(pending) == "done"


def test_refs_awaitable_in_async_driver(tmp_path):
    gate = str(tmp_path / "gate")

    async def open_gate_later():
        await asyncio.sleep(0.05)
        os.close(os.open(gate, os.O_CREAT | os.O_WRONLY))

    async def main():
        ref = square.remote(3)
        assert await ref == 9
        assert await asyncio.gather(*[square.remote(i) for i in range(5)]) == [0, 1, 4, 9, 16]
        refs = [square.remote(6), square.remote(7)]
        done, pending = await asyncio.wait([asyncio.ensure_future(r) for r in refs])
        assert not pending and sorted(d.result() for d in done) == [36, 49]
        c = Counter.remote()
        ref = c.inc.remote()
        assert await ref == 1
        # Awaiting a ref must not block the loop: the gate opens from another coroutine.
        value, _ = await asyncio.wait_for(
            asyncio.gather(slow_value.remote("ok", gate), open_gate_later()), DEADLINE)
        assert value == "ok"
        ref = c.crash.remote()
        with pytest.raises(RayActorError):
            await ref
        return True

    assert asyncio.run(main())


def test_await_unheld_ref_in_async_driver():
    # `await f.remote()`: the awaited ref is a temporary that nothing else holds.
    async def main():
        return await asyncio.wait_for(_await_square(5), 10)

    assert asyncio.run(main()) == 25


async def _await_square(x):
    return await square.remote(x)


def test_await_unheld_ref_in_async_actor():
    a = AsyncActor.remote()
    assert ray.get(a.await_fresh.remote(6), timeout=10) == 36


# ---- 8. bad input ---------------------------------------------------------------------------

def test_bad_input_errors():
    c = Counter.remote()
    with pytest.raises(AttributeError):
        c.no_such_method.remote()
    with pytest.raises(AttributeError):
        _ = c.no_such_method
    with pytest.raises(TypeError, match="remote"):
        c.inc()
    with pytest.raises(TypeError, match="remote"):
        Counter()
    with pytest.raises(ValueError):
        Counter.options(no_such_option=1)
