"""raylite.util.metrics from the driver, tasks and actors, read back per node with
raylite.util.metrics.snapshot() (values arrive within a flush interval: polled)."""
from __future__ import annotations

import time

import pytest

import raylite as ray
from raylite.util import metrics
from raylite.util.metrics import Counter, Gauge, Histogram

RAY_INIT_KWARGS = {"num_cpus": 2}


@pytest.fixture(autouse=True)
def _cluster(ray_start):
    yield


def _series(name: str, until, timeout: float = 30.0) -> list:
    """The series of ``name`` once ``until(series)`` holds (or the last seen)."""
    deadline = time.monotonic() + timeout
    while True:
        series = metrics.snapshot().get(name, {}).get("series", [])
        if until(series) or time.monotonic() > deadline:
            return series
        time.sleep(0.05)


def _total(series: list, **tags) -> float:
    return sum(s["value"] for s in series if all(s["tags"].get(k) == v for k, v in tags.items()))


def test_counter_from_driver_tasks_and_actors():
    requests = Counter("test_requests", description="Requests served", tag_keys=("route",))
    requests.inc(tags={"route": "/driver"})

    @ray.remote
    def serve(n):
        for _ in range(n):
            requests.inc(tags={"route": "/task"})
        return n

    @ray.remote
    class Server:
        def __init__(self):
            self.hits = Counter("test_requests", description="Requests served",
                                tag_keys=("route",)).set_default_tags({"route": "/actor"})

        def hit(self):
            self.hits.inc(2)

    assert sum(ray.get([serve.remote(5) for _ in range(4)])) == 20
    server = Server.remote()
    ray.get([server.hit.remote() for _ in range(3)])
    series = _series("test_requests",
                     lambda s: _total(s, route="/task") == 20 and _total(s, route="/actor") == 6)
    assert _total(series, route="/driver") == 1
    assert _total(series, route="/task") == 20
    assert _total(series, route="/actor") == 6
    node = ray.get_runtime_context().get_node_id()
    assert {s["node_id"] for s in series} == {node}
    info = metrics.snapshot()["test_requests"]
    assert info["type"] == "counter" and info["description"] == "Requests served"
    assert info["tag_keys"] == ["route"]


def test_gauge_keeps_the_last_value():
    @ray.remote
    class Queue:
        def __init__(self):
            self.size = Gauge("test_queue_size", tag_keys=("queue",))

        def report(self, n):
            self.size.set(n, tags={"queue": "q1"})

    queue = Queue.remote()
    for n in (5, 9, 3):
        ray.get(queue.report.remote(n))
    series = _series("test_queue_size", lambda s: [x["value"] for x in s] == [3.0])
    assert [(x["tags"], x["value"]) for x in series] == [({"queue": "q1"}, 3.0)]


def test_histogram_buckets_sum_and_count():
    latency = Histogram("test_latency_ms", boundaries=[10, 100], tag_keys=("op",))

    @ray.remote
    def observe(values):
        for v in values:
            latency.observe(v, tags={"op": "read"})

    ray.get([observe.remote([1, 10, 50]), observe.remote([500, 99])])
    series = _series("test_latency_ms", lambda s: s and s[0]["count"] == 5)
    assert len(series) == 1
    assert series[0]["buckets"] == [2, 2, 1]
    assert series[0]["sum"] == 660.0
    assert series[0]["count"] == 5
    assert metrics.snapshot()["test_latency_ms"]["boundaries"] == [10.0, 100.0]


def test_errors_raise_in_the_caller():
    counter = Counter("test_errors", tag_keys=("k",))

    @ray.remote
    def bad():
        counter.inc(1)

    with pytest.raises(ray.exceptions.RayTaskError) as info:
        ray.get(bad.remote())
    assert isinstance(info.value.cause, ValueError)
    assert "Missing value for tag key(s): k." in str(info.value)
