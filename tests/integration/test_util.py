"""raylite.util on a real local cluster: ActorPool and the actor-backed Queue."""
from __future__ import annotations

import asyncio
import os
import pickle
import queue as stdlib_queue
import time

import pytest

import raylite as ray
from raylite.exceptions import RayActorError
from raylite.util import ActorPool
from raylite.util.queue import Empty, Full, Queue

DEADLINE = 30


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=2)
    yield
    ray.shutdown()


@ray.remote
class Doubler:
    def __init__(self):
        self.calls = 0

    def double(self, x):
        self.calls += 1
        return 2 * x

    def gated(self, args):
        value, gate = args
        while gate and not os.path.exists(gate):
            time.sleep(0.01)
        return value

    def both(self, x):
        return x, -x

    def count(self):
        return self.calls

    def crash(self, _):
        os._exit(1)


def double(actor, value):
    return actor.double.remote(value)


def gated(actor, args):
    return actor.gated.remote(args)


@pytest.fixture(scope="module")
def actors():
    return [Doubler.remote() for _ in range(3)]


# ---- ActorPool ---------------------------------------------------------------------------------

def test_map_keeps_order_and_spreads_work(actors):
    pool = ActorPool(actors)
    assert list(pool.map(double, range(20))) == [2 * i for i in range(20)]
    counts = ray.get([a.count.remote() for a in actors])
    assert sum(counts) == 20 and all(c > 0 for c in counts)


def test_map_unordered_returns_everything(actors, tmp_path):
    pool = ActorPool(actors)
    gate = str(tmp_path / "gate")
    # The first value is held back until the others are out: unordered yields them first.
    gen = pool.map_unordered(gated, [("first", gate)] + [(i, None) for i in range(5)])
    early = [next(gen) for _ in range(5)]
    assert sorted(early) == [0, 1, 2, 3, 4]
    open(gate, "w").close()
    assert list(gen) == ["first"]


def test_submit_get_next_and_has_next(actors):
    pool = ActorPool(actors)
    assert not pool.has_next()
    for i in range(5):                        # more values than actors: 2 wait in the pool
        pool.submit(double, i)
    assert pool.has_next() and not pool.has_free()
    assert [pool.get_next() for _ in range(5)] == [0, 2, 4, 6, 8]
    assert not pool.has_next() and pool.has_free()
    with pytest.raises(StopIteration):
        pool.get_next()
    with pytest.raises(StopIteration):
        pool.get_next_unordered()


def test_get_next_timeout(actors, tmp_path):
    pool = ActorPool(actors[:1])
    gate = str(tmp_path / "gate")
    pool.submit(gated, ("slow", gate))
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.05)
    assert pool.has_next()                    # not ignored: still there
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.05)
    open(gate, "w").close()
    assert pool.get_next(timeout=DEADLINE) == "slow"


def test_get_next_timeout_ignored_frees_the_actor(actors, tmp_path):
    pool = ActorPool(actors[:1])
    gate = str(tmp_path / "gate")
    pool.submit(gated, ("slow", gate))
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.05, ignore_if_timedout=True)
    assert not pool.has_next() and pool.has_free()
    open(gate, "w").close()
    pool.submit(double, 21)
    assert pool.get_next() == 42


def test_get_next_after_unordered_raises(actors, tmp_path):
    pool = ActorPool(actors[:2])
    gate = str(tmp_path / "gate")
    pool.submit(gated, ("held", gate))
    pool.submit(double, 1)
    assert pool.get_next_unordered() == 2      # index 1 returned before index 0
    pool.submit(double, 2)
    assert pool.get_next() == 4                # in order from there on
    with pytest.raises(ValueError):
        pool.get_next()                        # index 0 can no longer come in order
    open(gate, "w").close()
    assert pool.get_next_unordered() == "held"


def test_map_discards_unfetched_results(actors):
    pool = ActorPool(actors[:2])
    pool.submit(double, 1)
    pool.submit(double, 2)
    assert pool.get_next_unordered() in (2, 4)    # one result left unfetched
    assert list(pool.map(double, [5, 6])) == [10, 12]
    assert list(pool.map_unordered(double, [])) == []
    assert not pool.has_next() and pool.has_free()


def test_push_pop_idle(actors):
    pool = ActorPool([actors[0]])
    with pytest.raises(ValueError):
        pool.push(actors[0])
    pool.push(actors[1])
    idle = pool.pop_idle()
    assert idle in (actors[0], actors[1])
    assert pool.pop_idle() is not None
    assert pool.pop_idle() is None and not pool.has_free()
    pool.submit(double, 5)                     # waits: no actor
    assert pool.has_next() is False
    pool.push(actors[2])                       # starts the waiting submit
    assert pool.get_next() == 10


def test_multiple_returns_and_dead_actor_dropped():
    pool = ActorPool([Doubler.remote()])
    pool.submit(lambda a, v: a.both.options(num_returns=2).remote(v), 3)
    assert pool.get_next() == [3, -3]
    pool.submit(lambda a, v: a.crash.remote(v), 0)
    with pytest.raises(RayActorError):
        pool.get_next()
    assert not pool.has_free()                 # the dead actor is not returned to the pool


# ---- Queue ----------------------------------------------------------------------------------

def test_queue_fifo_sizes_and_errors():
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and q.qsize() == 0 and len(q) == 0
    for i in range(3):
        q.put(i)
    assert q.full() and q.size() == 3
    with pytest.raises(Full):
        q.put_nowait(99)
    with pytest.raises(Full):
        q.put(99, timeout=0.05)
    with pytest.raises(stdlib_queue.Full):     # Full is a queue.Full, as in Ray
        q.put(99, block=False)
    assert [q.get(), q.get_nowait(), q.get(block=False)] == [0, 1, 2]
    with pytest.raises(Empty):
        q.get_nowait()
    with pytest.raises(stdlib_queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    q.shutdown()


def test_queue_batches():
    q = Queue(maxsize=4)
    q.put_nowait_batch([1, 2, 3])
    with pytest.raises(Full):
        q.put_nowait_batch([4, 5])            # all or nothing
    assert q.qsize() == 3
    with pytest.raises(Empty):
        q.get_nowait_batch(4)
    assert q.get_nowait_batch(2) == [1, 2]
    assert q.get_nowait_batch(0) == []
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    q.shutdown()


def test_blocked_get_does_not_block_put():
    q = Queue()
    waiting = q.actor.get.remote(None)        # a get blocked on the actor
    q.put("hello")                             # still gets through
    assert ray.get(waiting, timeout=DEADLINE) == "hello"
    q.shutdown()


def test_blocked_put_waits_for_room():
    q = Queue(maxsize=1)
    q.put("a")
    waiting = q.actor.put.remote("b", None)
    assert q.get(timeout=DEADLINE) == "a"
    ray.get(waiting, timeout=DEADLINE)
    assert q.get(timeout=DEADLINE) == "b"
    q.shutdown()


@ray.remote
def produce(q, items):
    for item in items:
        q.put(item)
    return len(items)


@ray.remote
def consume(q, n):
    return [q.get(timeout=DEADLINE) for _ in range(n)]


@ray.remote
class Consumer:
    def __init__(self, q):
        self.q = q

    def take(self, n):
        return [self.q.get(timeout=DEADLINE) for _ in range(n)]


def test_queue_shared_by_tasks_and_actors():
    q = Queue(maxsize=2)                       # small: producers block on it
    consumer = Consumer.remote(q)
    taker = consumer.take.remote(5)
    produced = produce.remote(q, list(range(5)))
    assert ray.get(taker, timeout=DEADLINE) == [0, 1, 2, 3, 4]
    assert ray.get(produced, timeout=DEADLINE) == 5
    produce.remote(q, ["x", "y"])
    assert ray.get(consume.remote(q, 2), timeout=DEADLINE) == ["x", "y"]
    copy = pickle.loads(pickle.dumps(q))
    copy.put("via copy")
    assert q.get(timeout=DEADLINE) == "via copy"
    q.shutdown()


@ray.remote
def noop():
    return None


@ray.remote
def consume_within(q, n, timeout):
    return [q.get(timeout=timeout) for _ in range(n)]


def test_queue_between_two_tasks():
    # The consumer task starts first and blocks on get(); the producer task must still
    # run (on another worker) for it to finish.
    ray.get([noop.remote() for _ in range(50)])   # short tasks of the same resource shape
    q = Queue()
    consumer = consume_within.remote(q, 3, 10)
    producer = produce.remote(q, ["p", "q", "r"])
    assert ray.get([consumer, producer], timeout=DEADLINE) == [["p", "q", "r"], 3]
    q.shutdown()


def test_queue_async_api():
    q = Queue()

    async def main():
        getter = asyncio.ensure_future(q.get_async(timeout=DEADLINE))
        await q.put_async("async")
        got = await getter
        with pytest.raises(Empty):
            await q.get_async(block=False)
        return got

    assert asyncio.run(main()) == "async"
    q.shutdown()


def test_queue_shutdown_and_actor_options():
    q = Queue(actor_options={"name": "the-queue", "num_cpus": 0})
    q.put(1)
    same = ray.get_actor("the-queue")
    assert ray.get(same.qsize.remote(), timeout=DEADLINE) == 1
    actor = q.actor
    q.shutdown()
    assert q.actor is None
    with pytest.raises(RayActorError):
        ray.get(actor.qsize.remote(), timeout=DEADLINE)
    forced = Queue()
    handle = forced.actor
    forced.shutdown(force=True)
    with pytest.raises(RayActorError):
        ray.get(handle.qsize.remote(), timeout=DEADLINE)
