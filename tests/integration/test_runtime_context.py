"""ray.get_runtime_context() in the driver, tasks and actors, and ``__ray_ready__``,
compared with what Ray 2.60 answers for the same calls (ids are hex strings)."""
from __future__ import annotations

import os
import time

import pytest

import raylite as ray
from raylite import exceptions as rex
from tests.conftest import wait_until

RAY_INIT_KWARGS = {"num_cpus": 2, "resources": {"custom": 2}}


@pytest.fixture(autouse=True)
def _cluster(ray_start):
    yield


def test_driver_context():
    ctx = ray.get_runtime_context()
    assert isinstance(ctx.get_job_id(), str) and ctx.get_job_id()
    assert ctx.get_task_id() is None
    assert ctx.get_actor_id() is None
    assert isinstance(ctx.namespace, str) and ctx.namespace
    with pytest.raises(RuntimeError, match="only available in an actor"):
        _ = ctx.current_actor
    with pytest.raises(RuntimeError, match="only available when the process is a worker"):
        ctx.is_canceled()
    with pytest.raises(AssertionError):
        ctx.get_assigned_resources()


def test_task_context():
    @ray.remote
    def inside():
        c = ray.get_runtime_context()
        try:
            _ = c.current_actor
            actor = "no error"
        except RuntimeError as err:
            actor = str(err)
        return (c.get_job_id(), c.get_task_id(), c.get_actor_id(), c.namespace,
                c.is_canceled(), c.get_assigned_resources(), actor)

    ctx = ray.get_runtime_context()
    job, task, actor_id, namespace, canceled, resources, actor = ray.get(inside.remote())
    assert job == ctx.get_job_id()
    assert isinstance(task, str) and task
    assert actor_id is None
    assert namespace == ctx.namespace
    assert canceled is False
    assert resources == {"CPU": 1.0}
    assert actor == "This method is only available in an actor."
    shaped = inside.options(num_cpus=0.5, resources={"custom": 1}).remote()
    assert ray.get(shaped)[5] == {"CPU": 0.5, "custom": 1.0}


def test_actor_context_and_current_actor():
    @ray.remote
    class Me:
        def __init__(self):
            self.calls = 0

        def info(self):
            c = ray.get_runtime_context()
            return c.get_actor_id(), c.get_task_id(), c.get_assigned_resources(), c.is_canceled()

        def me(self):
            return ray.get_runtime_context().current_actor

        def bump(self):
            self.calls += 1
            return self.calls

        def bump_via_self(self):
            # A call to itself through its own handle: queued behind this one.
            return ray.get_runtime_context().current_actor.bump.remote()

    actor = Me.remote()
    actor_id, task_id, resources, canceled = ray.get(actor.info.remote())
    assert actor_id == actor._actor_id_hex()
    assert isinstance(task_id, str) and task_id
    assert resources == {}
    assert canceled is False
    handle = ray.get(actor.me.remote())
    assert handle == actor
    assert ray.get(handle.bump.remote()) == 1
    assert ray.get(ray.get(actor.bump_via_self.remote())) == 2
    holding = Me.options(num_cpus=1, resources={"custom": 1}).remote()
    assert ray.get(holding.info.remote())[2] == {"CPU": 1.0, "custom": 1.0}


def test_ray_ready(tmp_path):
    @ray.remote
    class Slow:
        def __init__(self, path):
            time.sleep(0.3)
            open(path, "w").close()
            self.path = path

        def constructed(self):
            return os.path.exists(self.path)

    @ray.remote
    class Async:
        async def ping(self):
            return "pong"

    slow = Slow.remote(str(tmp_path / "constructed"))
    assert ray.get(slow.__ray_ready__.remote()) is True
    assert ray.get(slow.constructed.remote()) is True
    assert ray.get(Async.remote().__ray_ready__.remote()) is True


def test_ray_ready_of_failed_constructor_raises():
    @ray.remote
    class Broken:
        def __init__(self):
            raise ValueError("no")

    with pytest.raises(rex.RayActorError):
        ray.get(Broken.remote().__ray_ready__.remote(), timeout=60)


def test_is_canceled_in_task_that_catches_the_interrupt(tmp_path):
    started = str(tmp_path / "started")

    @ray.remote
    def spin(path):
        open(path, "w").close()
        try:
            while True:
                time.sleep(0.01)
        except KeyboardInterrupt:
            return ray.get_runtime_context().is_canceled()

    ref = spin.remote(started)
    assert wait_until(lambda: os.path.exists(started), 30.0)
    ray.cancel(ref)
    # As in Ray: the task caught the interrupt and returned, so its value arrives.
    assert ray.get(ref, timeout=30) is True


@pytest.mark.parametrize("concurrency", [1, 2])
def test_cancel_running_sync_actor_call_sets_the_flag(tmp_path, concurrency):
    started = str(tmp_path / "started")

    @ray.remote
    class Worker:
        def __init__(self):
            self.log = []

        def poll(self, path):
            open(path, "w").close()
            try:
                for _ in range(3000):
                    if ray.get_runtime_context().is_canceled():
                        self.log.append("saw cancel")
                        return "stopped"
                    time.sleep(0.01)
            except KeyboardInterrupt:
                self.log.append("interrupted")
                raise
            self.log.append("finished")
            return "finished"

        def history(self):
            return self.log, ray.get_runtime_context().is_canceled()

    actor = Worker.options(max_concurrency=concurrency).remote()
    ref = actor.poll.remote(started)
    assert wait_until(lambda: os.path.exists(started), 30.0)
    ray.cancel(ref)
    # Not interrupted (the actor's state stays whole); its caller is told it was cancelled.
    with pytest.raises(rex.TaskCancelledError):
        ray.get(ref, timeout=60)
    assert ray.get(actor.history.remote()) == (["saw cancel"], False)


def test_is_canceled_raises_in_async_actor():
    @ray.remote
    class Async:
        async def check(self):
            try:
                return ray.get_runtime_context().is_canceled()
            except RuntimeError as err:
                return str(err)

    assert ray.get(Async.remote().check.remote()) == \
        "This method is not supported in an async actor."


@pytest.mark.parametrize("backpressure", [-1, 1])
def test_cancelled_sync_actor_generator_is_closed_between_items(backpressure):
    @ray.remote
    class Source:
        def __init__(self):
            self.log = []

        @ray.method(_generator_backpressure_num_objects=backpressure)
        def forever(self):
            i = 0
            try:
                while True:
                    time.sleep(0.01)
                    yield i
                    i += 1
            except GeneratorExit:
                self.log.append("closed")
                raise

        def history(self):
            return self.log

    source = Source.remote()
    gen = source.forever.remote()
    assert ray.get(next(gen)) == 0
    ray.cancel(gen)
    outcomes = []
    for ref in gen:
        try:
            ray.get(ref, timeout=60)
        except rex.TaskCancelledError:
            outcomes.append("cancelled")
    assert outcomes[-1:] == ["cancelled"]
    assert ray.get(source.history.remote()) == ["closed"]


def test_cancel_actor_call_right_after_submitting_it(tmp_path):
    release = str(tmp_path / "release")

    @ray.remote
    class Busy:
        def wait(self, path):
            while not os.path.exists(path):
                time.sleep(0.01)
            return "done"

        def quick(self):
            return "ran"

    busy = Busy.remote()
    first = busy.wait.remote(release)
    queued = busy.quick.remote()
    ray.cancel(queued)              # at once: the call may not have reached its caller yet
    with pytest.raises(ValueError, match="force=True is not supported for actor tasks"):
        ray.cancel(first, force=True)
    open(release, "w").close()
    assert ray.get(first, timeout=60) == "done"
    with pytest.raises(rex.TaskCancelledError):
        ray.get(queued, timeout=60)
