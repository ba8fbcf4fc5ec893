"""The typed GCS client against a real redis-server: records in and out, atomic name
takeover, and Redis failures surfacing as raylite exceptions."""
from __future__ import annotations

import threading
import time

import pytest

from raylite import exceptions as exc
from raylite.gcs.client import GcsClient
from raylite.gcs.records import ALIVE, DEAD, ActorRecord, JobRecord, NodeRecord
from raylite.gcs.redis_server import start_redis

PASSWORD = "test-password"


@pytest.fixture
def server(tmp_path):
    proc, port, sock = start_redis(str(tmp_path / "redis"), PASSWORD)
    yield port, sock
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def gcs(server):
    port, _ = server
    client = GcsClient(f"127.0.0.1:{port}", PASSWORD, retry_s=0.3)
    yield client
    client.close()


def test_nodes_heartbeat_and_liveness(gcs):
    gcs.register_node(NodeRecord(node_id="n1", address="127.0.0.1:1", resources={"CPU": 2.0},
                                 available={"CPU": 2.0}))
    gcs.heartbeat("n1", {"CPU": 1.0})
    (node,) = gcs.nodes().values()
    assert node.available == {"CPU": 1.0} and node.last_heartbeat > 0
    assert set(gcs.alive_nodes()) == {"n1"}
    assert gcs.alive_nodes(now=node.last_heartbeat + 3600) == {}
    gcs.mark_node_dead("n1")
    gcs.heartbeat("n1", {"CPU": 2.0})   # a late beat does not bring it back
    assert gcs.alive_nodes() == {} and gcs.nodes()["n1"].alive is False


def test_actors_jobs_exits(gcs):
    record = ActorRecord(actor_id="a1", state=ALIVE, class_name="C", owner=b"\x01")
    gcs.put_actor(record)
    assert gcs.get_actor("a1") == record
    assert set(gcs.all_actors()) == {"a1"}
    gcs.delete_actor("a1")
    assert gcs.get_actor("a1") is None
    assert gcs.actor_exit_reason("a1") is None
    gcs.record_actor_exit("a1", "killed by ray.kill()")
    assert gcs.actor_exit_reason("a1") == "killed by ray.kill()"
    gcs.register_job(JobRecord(job_id="j1", driver_pid=3, sys_path=["/x"]))
    assert gcs.get_job("j1").sys_path == ["/x"]
    assert gcs.get_job("nope") is None


def test_functions(gcs):
    gcs.export_function("f1", b"code")
    gcs.export_function("f1", b"other")          # written once
    assert gcs.fetch_function("f1") == b"code"
    assert gcs.function_ids() == {"f1"}
    with pytest.raises(KeyError):
        gcs.fetch_function("missing", timeout=0.05)


def test_log_subscription(gcs):
    subscription = gcs.subscribe_logs("j1")
    try:
        deadline = time.monotonic() + 10
        got = None
        while got is None and time.monotonic() < deadline:
            gcs.publish_logs("j1", [("stdout", "hello")])
            got = subscription.get(timeout=0.1)
        assert got == [("stdout", "hello")]
    finally:
        subscription.close()


def test_name_claim_race_has_one_winner(server, gcs):
    port, _ = server
    clients = [GcsClient(f"127.0.0.1:{port}", PASSWORD) for _ in range(8)]
    for i in range(8):
        gcs.put_actor(ActorRecord(actor_id=f"a{i}", state="PENDING_CREATION"))
    results = [None] * 8
    start = threading.Barrier(8)

    def claim(i):
        start.wait()
        results[i] = clients[i].claim_actor_name("ns", "name", f"a{i}")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for client in clients:
        client.close()
    winners = {f"a{i}" for i in range(8) if results[i] == f"a{i}"}
    assert len(winners) == 1
    assert set(results) == winners == {gcs.lookup_actor_name("ns", "name")}


def test_dead_or_missing_holder_name_is_taken_over(gcs):
    gcs.put_actor(ActorRecord(actor_id="old", state=ALIVE))
    assert gcs.claim_actor_name("ns", "n", "old") == "old"
    assert gcs.claim_actor_name("ns", "n", "new") == "old"      # held by a live actor
    gcs.put_actor(ActorRecord(actor_id="old", state=DEAD))
    assert gcs.claim_actor_name("ns", "n", "new") == "new"      # its holder died
    gcs.delete_actor("new")                                      # creator crashed mid-way
    assert gcs.claim_actor_name("ns", "n", "third") == "third"


def test_release_only_by_the_holder(gcs):
    gcs.claim_actor_name("ns", "n", "a")
    gcs.release_actor_name("ns", "n", "b")
    assert gcs.lookup_actor_name("ns", "n") == "a"
    gcs.release_actor_name("ns", "n", "a")
    assert gcs.lookup_actor_name("ns", "n") is None


def test_wrong_password_is_authentication_error(server):
    port, _ = server
    with pytest.raises(exc.AuthenticationError):
        GcsClient(f"127.0.0.1:{port}", "wrong", connect_timeout=2)


def test_unreachable_gcs_is_gcs_unavailable_error(tmp_path):
    proc, port, _ = start_redis(str(tmp_path / "redis"), PASSWORD)
    client = GcsClient(f"127.0.0.1:{port}", PASSWORD, retry_s=0.3)
    proc.terminate()
    proc.wait(10)
    with pytest.raises(exc.GcsUnavailableError) as info:
        client.nodes()
    assert isinstance(info.value, ConnectionError)
    with pytest.raises(exc.GcsUnavailableError):
        client.get_actor("a", retry=False)
    client.close()
    with pytest.raises(exc.GcsUnavailableError):
        GcsClient(f"127.0.0.1:{port}", PASSWORD, connect_timeout=0.2)


def test_reads_retry_across_a_redis_restart(tmp_path):
    directory = str(tmp_path / "redis")
    proc, port, _ = start_redis(directory, PASSWORD)
    client = GcsClient(f"127.0.0.1:{port}", PASSWORD, retry_s=20)
    client.record_actor_exit("a", "done")
    proc.terminate()
    proc.wait(10)
    restarted = []
    timer = threading.Timer(0.3, lambda: restarted.append(
        start_redis(directory, PASSWORD, port=port)[0]))
    timer.start()
    try:
        assert client.actor_exit_reason("a") == "done"   # AOF kept it; the read waited
    finally:
        timer.join()
        client.close()
        for p in restarted:
            p.terminate()
            p.wait(10)


def test_log_subscription_survives_a_redis_restart(tmp_path):
    directory = str(tmp_path / "redis")
    proc, port, _ = start_redis(directory, PASSWORD)
    client = GcsClient(f"127.0.0.1:{port}", PASSWORD)
    subscription = client.subscribe_logs("j1")
    proc.terminate()
    proc.wait(10)
    proc = start_redis(directory, PASSWORD, port=port)[0]
    try:
        got = None
        deadline = time.monotonic() + 20
        while got is None and time.monotonic() < deadline:
            try:
                client.publish_logs("j1", [("stderr", "after")])
                got = subscription.get(timeout=0.1)
            except exc.GcsUnavailableError:
                time.sleep(0.05)      # what the driver's printer does: wait and read again
        assert got == [("stderr", "after")]
    finally:
        subscription.close()
        client.close()
        proc.terminate()
        proc.wait(10)
