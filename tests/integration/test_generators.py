"""Generator tasks on a real local cluster, written as a Ray user would.

Covers num_returns="streaming" (the default for generator functions) for tasks and
actor methods (sync, and async generators in async actors), consumed with next(),
for and async for; exceptions mid-stream; backpressure; ray.wait and ray.cancel on a
generator; a retry after the worker is killed mid-stream (no item delivered twice);
num_returns="dynamic".

Remote functions are defined inside the tests so that cloudpickle ships them by value.
"""
from __future__ import annotations

import asyncio
import os
import time

import pytest

import raylite as ray
from raylite import exceptions as rex
from tests.conftest import wait_until

RAY_INIT_KWARGS = {"num_cpus": 2}


@pytest.fixture(autouse=True)
def _cluster(ray_start):
    yield


def _ten_numbers_dying_once(path: str):
    """Yield 0..9, but SIGKILL the worker after 0..4 the first time (marker ``path``)."""
    import signal
    for i in range(10):
        if i == 5 and not os.path.exists(path):
            with open(path, "w"):
                pass
            os.kill(os.getpid(), signal.SIGKILL)
        yield i


def _read_int(path: str) -> int:
    try:
        with open(path) as f:
            return int(f.read() or 0)
    except (OSError, ValueError):
        return 0


# ---- streaming tasks ----------------------------------------------------------------------

def test_generator_function_streams_by_default():
    @ray.remote
    def numbers(n):
        for i in range(n):
            yield i * i

    gen = numbers.remote(5)
    assert isinstance(gen, ray.ObjectRefGenerator)
    refs = list(gen)
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs) == [0, 1, 4, 9, 16]
    with pytest.raises(StopIteration):
        next(gen)


def test_explicit_streaming_and_next():
    @ray.remote(num_returns="streaming")
    def letters():
        yield "a"
        yield "b"

    gen = letters.remote()
    assert ray.get(next(gen)) == "a"
    assert ray.get(next(gen)) == "b"
    with pytest.raises(StopIteration):
        next(gen)
    assert ray.get(gen.completed()) is None
    assert gen.is_finished()


def test_items_arrive_while_the_task_still_runs(tmp_path):
    release = str(tmp_path / "release")

    @ray.remote
    def first_then_wait(path):
        yield "first"
        while not os.path.exists(path):
            time.sleep(0.01)
        yield "second"

    gen = first_then_wait.remote(release)
    # The first value is readable before the task may go on.
    assert ray.get(next(gen), timeout=30) == "first"
    assert not gen.next_ready()
    with open(release, "w"):
        pass
    assert ray.get(next(gen), timeout=30) == "second"
    assert list(gen) == []


def test_large_items_and_refs_outlive_the_generator():
    import numpy as np

    @ray.remote
    def arrays():
        for i in range(3):
            yield np.full(300_000, i, dtype=np.int64)

    refs = list(arrays.remote())
    values = ray.get(refs)
    assert [int(v[0]) for v in values] == [0, 1, 2]
    assert all(v.shape == (300_000,) for v in values)


def test_exception_mid_stream_keeps_earlier_items():
    @ray.remote
    def fails_after_two():
        yield 1
        yield 2
        raise ValueError("boom")

    gen = fails_after_two.remote()
    first, second, third = next(gen), next(gen), next(gen)
    assert ray.get([first, second]) == [1, 2]
    with pytest.raises(ValueError, match="boom") as info:
        ray.get(third)
    assert isinstance(info.value, rex.RayTaskError)
    with pytest.raises(StopIteration):
        next(gen)
    # Earlier refs stay valid after the error.
    assert ray.get(first) == 1


def test_wait_on_a_generator(tmp_path):
    release = str(tmp_path / "release")

    @ray.remote
    def gated(path):
        while not os.path.exists(path):
            time.sleep(0.01)
        yield "x"

    gen = gated.remote(release)
    ready, not_ready = ray.wait([gen], timeout=0)
    assert (ready, not_ready) == ([], [gen])
    with open(release, "w"):
        pass
    ready, not_ready = ray.wait([gen], timeout=30)
    assert ready == [gen] and gen.next_ready()
    assert ray.get(next(gen)) == "x"
    # A finished generator is ready too (next raises StopIteration at once).
    ready, _ = ray.wait([gen], timeout=30)
    assert ready == [gen]
    assert ray.get(gen) is gen


def test_a_task_consuming_a_generator_lends_its_cpus_back():
    @ray.remote
    def numbers(n):
        yield from range(n)

    @ray.remote(num_cpus=2)
    def consume(n):
        # Holds every CPU of the cluster: the generator runs while it waits.
        return [ray.get(ref) for ref in numbers.remote(n)]

    assert ray.get(consume.remote(3), timeout=60) == [0, 1, 2]


def test_async_consumption():
    @ray.remote
    def numbers(n):
        yield from range(n)

    async def consume():
        out = []
        async for ref in numbers.remote(4):
            out.append(await ref)
        return out

    assert asyncio.run(consume()) == [0, 1, 2, 3]


def test_backpressure_pauses_the_task(tmp_path):
    progress = str(tmp_path / "progress")

    @ray.remote(_generator_backpressure_num_objects=2)
    def many(path):
        for i in range(1000):
            with open(path, "w") as f:
                f.write(str(i + 1))
            yield i

    gen = many.remote(progress)
    assert wait_until(lambda: _read_int(progress) >= 2)
    time.sleep(0.5)    # it would have yielded everything by now without backpressure
    assert _read_int(progress) <= 3
    values = [ray.get(ref) for ref in gen]
    assert values == list(range(1000))
    assert _read_int(progress) == 1000


def test_cancel_stops_the_generator(tmp_path):
    progress = str(tmp_path / "progress")

    @ray.remote
    def forever(path):
        i = 0
        while True:
            time.sleep(0.02)
            with open(path, "w") as f:
                f.write(str(i + 1))
            yield i
            i += 1

    gen = forever.remote(progress)
    assert ray.get(next(gen)) == 0
    ray.cancel(gen)
    outcomes = []
    for ref in gen:     # ends: the task stopped
        try:
            ray.get(ref)
            outcomes.append("value")
        except rex.TaskCancelledError:
            outcomes.append("cancelled")
    assert outcomes[-1] == "cancelled"
    assert outcomes.count("cancelled") == 1
    stopped_at = _read_int(progress)
    time.sleep(0.3)
    assert _read_int(progress) == stopped_at


def test_cancel_a_generator_paused_by_backpressure():
    @ray.remote(_generator_backpressure_num_objects=1)
    def paused():
        yield from range(100)

    gen = paused.remote()
    assert ray.get(next(gen)) == 0
    ray.cancel(gen)
    with pytest.raises(rex.TaskCancelledError):
        ray.get([ref for ref in gen])


def test_retry_after_the_worker_dies_mid_stream(tmp_path):
    marker = str(tmp_path / "killed-once")

    @ray.remote(max_retries=1)
    def dies_once(path):
        yield from _ten_numbers_dying_once(path)

    gen = dies_once.remote(marker)
    values = [ray.get(ref) for ref in gen]
    assert values == list(range(10))     # nothing delivered twice, nothing lost
    assert os.path.exists(marker)


def test_retry_exceptions_reruns_a_generator_that_raised(tmp_path):
    attempts = str(tmp_path / "attempts")

    @ray.remote(max_retries=2, retry_exceptions=True)
    def flaky(path):
        with open(path, "a") as f:
            f.write("x")
        with open(path) as f:
            attempt = len(f.read())
        yield from range(3)
        if attempt < 2:
            raise ValueError("first attempt fails")

    assert [ray.get(ref) for ref in flaky.remote(attempts)] == [0, 1, 2]
    assert _read_len(attempts) == 2


def _read_len(path: str) -> int:
    with open(path) as f:
        return len(f.read())


def test_worker_death_without_retries_ends_the_stream_with_an_error(tmp_path):
    received = str(tmp_path / "received")

    @ray.remote(max_retries=0)
    def dies(path):
        import signal
        yield 1
        while not os.path.exists(path):   # the caller has the first item
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGKILL)
        yield 2

    gen = dies.remote(received)
    assert ray.get(next(gen)) == 1
    with open(received, "w"):
        pass
    with pytest.raises(rex.WorkerCrashedError):
        ray.get(next(gen))
    with pytest.raises(StopIteration):
        next(gen)


# ---- actors -------------------------------------------------------------------------------

def test_actor_generator_methods_sync_and_async():
    @ray.remote
    class Counter:
        def __init__(self):
            self.base = 10

        def count(self, n):
            for i in range(n):
                yield self.base + i

        @ray.method(num_returns="streaming")
        def explicit(self):
            yield "e"

    @ray.remote
    class AsyncCounter:
        async def count(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

        async def fails(self):
            yield 1
            raise KeyError("async boom")

    counter, async_counter = Counter.remote(), AsyncCounter.remote()
    assert [ray.get(r) for r in counter.count.remote(3)] == [10, 11, 12]
    assert [ray.get(r) for r in counter.explicit.remote()] == ["e"]
    assert [ray.get(r) for r in async_counter.count.remote(4)] == [0, 1, 2, 3]
    refs = list(async_counter.fails.remote())
    assert ray.get(refs[0]) == 1
    with pytest.raises(KeyError):
        ray.get(refs[1])
    assert len(refs) == 2


def test_actor_generator_backpressure():
    @ray.remote
    class Producer:
        def __init__(self):
            self.produced = 0

        @ray.method(_generator_backpressure_num_objects=2)
        def produce(self):
            for i in range(1000):
                self.produced += 1
                yield i

        def how_many(self):
            return self.produced

    @ray.remote
    class AsyncProducer:
        def __init__(self):
            self.produced = 0

        async def produce(self):
            for i in range(1000):
                self.produced += 1
                yield i

        async def how_many(self):
            return self.produced

    producer = Producer.options(max_concurrency=2).remote()
    # A threaded actor can answer while its generator is paused.
    gen = producer.produce.remote()
    assert ray.get(next(gen)) == 0
    time.sleep(0.5)
    assert ray.get(producer.how_many.remote()) <= 4

    async_producer = AsyncProducer.remote()
    agen = async_producer.produce.options(_generator_backpressure_num_objects=2).remote()
    assert ray.get(next(agen)) == 0
    time.sleep(0.5)
    assert ray.get(async_producer.how_many.remote()) <= 4
    assert [ray.get(r) for r in agen] == list(range(1, 1000))
    assert [ray.get(r) for r in gen] == list(range(1, 1000))


def test_actor_generator_retried_after_a_restart(tmp_path):
    marker = str(tmp_path / "killed-once")

    @ray.remote(max_restarts=1, max_task_retries=1)
    class Dies:
        @ray.method(_generator_backpressure_num_objects=3)
        def numbers(self, path):
            yield from _ten_numbers_dying_once(path)

    actor = Dies.remote()
    assert [ray.get(ref) for ref in actor.numbers.remote(marker)] == list(range(10))
    assert os.path.exists(marker)


def test_actor_generator_cancel():
    @ray.remote
    class Slow:
        async def forever(self):
            i = 0
            while True:
                await asyncio.sleep(0.01)
                yield i
                i += 1

    slow = Slow.remote()
    gen = slow.forever.remote()
    assert ray.get(next(gen)) == 0
    ray.cancel(gen)
    outcomes = []
    for ref in gen:
        try:
            ray.get(ref)
        except rex.TaskCancelledError:
            outcomes.append("cancelled")
    assert outcomes == ["cancelled"]


# ---- dynamic ------------------------------------------------------------------------------

def test_dynamic_generator_task_and_actor():
    @ray.remote(num_returns="dynamic")
    def split(n):
        for i in range(n):
            yield i * 10

    @ray.remote
    class Splitter:
        @ray.method(num_returns="dynamic")
        def split(self, n):
            yield from range(n)

    ref = split.remote(4)
    assert isinstance(ref, ray.ObjectRef)
    dynamic = ray.get(ref)
    assert isinstance(dynamic, ray.DynamicObjectRefGenerator)
    assert len(dynamic) == 4
    assert ray.get(list(dynamic)) == [0, 10, 20, 30]
    assert len(ray.get(split.remote(0))) == 0
    splitter = Splitter.remote()
    assert ray.get(list(ray.get(splitter.split.remote(3)))) == [0, 1, 2]


def test_dynamic_items_can_be_passed_to_tasks():
    @ray.remote(num_returns="dynamic")
    def split(n):
        yield from range(n)

    @ray.remote
    def total(refs):
        return sum(ray.get(list(refs)))

    @ray.remote
    def add_one(x):
        return x + 1

    dynamic_ref = split.remote(5)
    assert ray.get(total.remote(dynamic_ref)) == 10
    assert ray.get([add_one.remote(r) for r in ray.get(dynamic_ref)]) == [1, 2, 3, 4, 5]


def test_streamed_items_can_be_passed_to_tasks():
    @ray.remote
    def numbers(n):
        yield from range(n)

    @ray.remote
    def double(x):
        return 2 * x

    assert ray.get([double.remote(ref) for ref in numbers.remote(5)]) == [0, 2, 4, 6, 8]


def test_generator_is_not_serializable():
    @ray.remote
    def numbers():
        yield 1

    gen = numbers.remote()
    with pytest.raises(TypeError):
        ray.put(gen)
    list(gen)
