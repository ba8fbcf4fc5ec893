"""The node metrics endpoint's pure parts: RPC latency buckets, the timing decorator,
the families one scrape exports (system metrics under raylite_ and ray_, this node's
user metrics only), and the bearer check. No process, no socket."""
from __future__ import annotations

from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest

from raylite.scheduler.metrics_endpoint import (
    NodeSample,
    RpcLatency,
    bearer_ok,
    metric_families,
    timed_rpc,
)


def test_rpc_latency_buckets_and_sum():
    lat = RpcLatency(bounds=(1.0, 10.0))
    for ms in (0.5, 1.0, 5.0, 50.0):
        lat.observe("RequestLease", ms)
    counts, total = lat.snapshot()["RequestLease"]
    assert counts == [2, 1, 1] and total == 56.5


def _run(coro):
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the handler suspended")


def test_timed_rpc_observes_results_and_errors():
    class Servicer:
        rpc_latency = RpcLatency()

        @timed_rpc("Ok")
        async def Ok(self, request, context):
            return request * 2

        @timed_rpc("Bad")
        async def Bad(self, request, context):
            raise ValueError("no")
    s = Servicer()
    assert _run(s.Ok(21, None)) == 42
    try:
        _run(s.Bad(1, None))
    except ValueError:
        pass
    snap = s.rpc_latency.snapshot()
    assert sum(snap["Ok"][0]) == 1 and sum(snap["Bad"][0]) == 1
    assert Servicer.Ok.__name__ == "Ok"


def _sample(**changes) -> NodeSample:
    base = dict(node_id="n1", total={"CPU": 4.0, "GPU": 1.0}, available={"CPU": 1.0, "GPU": 1.0},
                workers={"idle": 2, "actor": 1}, leases={"PENDING": 3, "GRANTED": 1},
                store_used=100, store_capacity=1000, spilled_bytes=40, num_objects=5,
                num_spilled=2, rpc={"RequestLease": ([1, 0, 0], 0.5)})
    base.update(changes)
    return NodeSample(**base)


def _exposition(families) -> str:
    class Fixed:
        def collect(self):
            return families
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    return generate_latest(registry).decode()


def test_system_metrics_under_both_prefixes():
    actors = [SimpleNamespace(class_name="A", state="ALIVE"),
              SimpleNamespace(class_name="A", state="ALIVE"),
              SimpleNamespace(class_name="B", state="DEAD")]
    text = _exposition(metric_families(_sample(), actors, {}, {("f", "FINISHED", "n1"): 7},
                                       bounds=(1.0, 10.0)))
    for prefix in ("raylite_", "ray_"):
        assert f'{prefix}resources{{Name="CPU",NodeId="n1",State="USED"}} 3.0' in text
        assert f'{prefix}resources{{Name="CPU",NodeId="n1",State="AVAILABLE"}} 1.0' in text
        assert f'{prefix}object_store_memory{{Location="SPILLED",NodeId="n1"}} 40.0' in text
        assert f'{prefix}object_store_memory{{Location="MMAP_SHM",NodeId="n1"}} 100.0' in text
        assert f'{prefix}object_store_capacity_bytes{{NodeId="n1"}} 1000.0' in text
        assert f'{prefix}spilled_bytes{{NodeId="n1"}} 40.0' in text
        assert f'{prefix}workers{{Kind="idle",NodeId="n1"}} 2.0' in text
        assert f'{prefix}leases{{NodeId="n1",State="PENDING"}} 3.0' in text
        assert f'{prefix}actors{{Name="A",NodeId="n1",State="ALIVE"}} 2.0' in text
        assert f'{prefix}tasks{{Name="f",NodeId="n1",State="FINISHED"}} 7.0' in text
        assert (f'{prefix}grpc_server_req_process_time_ms_bucket{{Method="RequestLease",'
                f'NodeId="n1",le="+Inf"}} 1.0') in text


def test_user_metrics_of_this_node_only():
    user = {
        "jobs_done": {"type": "counter", "description": "done", "tag_keys": ("k",), "series": [
            {"node_id": "n1", "tags": {"k": "a"}, "value": 3.0},
            {"node_id": "other", "tags": {"k": "b"}, "value": 99.0}]},
        "queue_len": {"type": "gauge", "description": "", "tag_keys": (), "series": [
            {"node_id": "n1", "tags": {}, "value": 5.0}]},
        "lat": {"type": "histogram", "description": "", "tag_keys": (), "boundaries": [1.0, 2.0],
                "series": [{"node_id": "n1", "tags": {}, "buckets": [1, 2, 3], "sum": 9.0,
                            "count": 6}]},
        "elsewhere": {"type": "gauge", "description": "", "tag_keys": (), "series": [
            {"node_id": "other", "tags": {}, "value": 1.0}]},
    }
    text = _exposition(metric_families(_sample(), [], user, {}))
    assert 'ray_jobs_done_total{k="a"} 3.0' in text
    assert 'raylite_jobs_done_total{k="a"} 3.0' in text
    assert "99.0" not in text and "elsewhere" not in text
    assert "ray_queue_len 5.0" in text
    assert 'ray_lat_bucket{le="2.0"} 3.0' in text and 'ray_lat_bucket{le="+Inf"} 6.0' in text
    assert "ray_lat_sum 9.0" in text and "ray_lat_count 6.0" in text


def test_bearer_check():
    assert bearer_ok("Bearer tok", "tok")
    assert bearer_ok("bearer tok ", "tok")
    assert not bearer_ok("Bearer tok2", "tok")
    assert not bearer_ok("tok", "tok")
    assert not bearer_ok("", "tok")
