"""GCS records round-trip through msgpack and survive a rolling cluster; the one
liveness rule. Pure: no process, no socket."""
from __future__ import annotations

import msgpack
import pytest

from raylite.gcs import liveness
from raylite.gcs.records import DEAD, ActorRecord, JobRecord, NodeRecord


def test_node_record_round_trip_keeps_stored_fields_only():
    node = NodeRecord(node_id="n1", address="10.0.0.1:7000", uds="unix:/tmp/s", host="h",
                      resources={"CPU": 2.0}, pid=12, store_dir="/dev/shm/x", store_capacity=10,
                      session="/tmp/sess", is_head=True, available={"CPU": 1.0},
                      last_heartbeat=123.0)
    back = NodeRecord.from_bytes(node.to_bytes())
    # available and last_heartbeat live in keys of their own
    assert back == node.replace(available=None, last_heartbeat=0.0)
    assert back.port == 7000


def test_actor_record_round_trip_with_bytes():
    actor = ActorRecord(actor_id="ab", state="ALIVE", class_name="C", name="n", namespace="ns",
                        meta={"f": {"num_returns": 1}}, owner=b"\x00\x01", address=b"\xff",
                        num_restarts=2, max_restarts=-1, time=1.5)
    assert ActorRecord.from_bytes(actor.to_bytes()) == actor


def test_job_record_round_trip():
    job = JobRecord(job_id="0a0b", driver_pid=7, start=2.0, namespace="x", sys_path=["/a"], cwd="/")
    assert JobRecord.from_bytes(job.to_bytes()) == job


def test_missing_fields_take_defaults():
    record = ActorRecord.from_bytes(msgpack.packb({"actor_id": "ab", "state": DEAD}))
    assert record.is_dead and record.name == "" and record.meta == {} and record.address == b""


def test_unknown_fields_are_kept_and_written_back():
    blob = msgpack.packb({"node_id": "n1", "address": "h:1", "labels": {"zone": "a"}})
    record = NodeRecord.from_bytes(blob)
    assert record.extra == {"labels": {"zone": "a"}}
    assert msgpack.unpackb(record.to_bytes())["labels"] == {"zone": "a"}


def test_not_a_record_raises_value_error():
    with pytest.raises(ValueError):
        JobRecord.from_bytes(msgpack.packb([1, 2]))
    with pytest.raises(ValueError):
        JobRecord.from_bytes(b"\xc1")


def test_records_are_not_mappings():
    record = ActorRecord(actor_id="ab", state="ALIVE", extra={"future": 1})
    assert record.state == "ALIVE" and record.extra["future"] == 1
    with pytest.raises(TypeError):
        record["state"]  # noqa: B018


def test_liveness_rule():
    node = NodeRecord(node_id="n", last_heartbeat=100.0)
    stale = liveness.STALE_FACTOR * liveness.NODE_TIMEOUT_S
    assert liveness.is_alive(node, 100.0)
    assert liveness.is_alive(node, 100.0 + stale - 0.01)   # the monitor decides before that
    assert not liveness.is_alive(node, 100.0 + stale + 0.01)
    assert not liveness.is_alive(node.replace(alive=False), 100.0)
    assert not liveness.is_alive(NodeRecord(node_id="never beat"), 100.0)


def test_liveness_defaults_are_sub_second_beats_and_several_missed():
    assert liveness.HEARTBEAT_INTERVAL_S < 1.0
    assert liveness.NODE_TIMEOUT_S >= 3 * liveness.HEARTBEAT_INTERVAL_S


def test_liveness_env_validation(monkeypatch):
    monkeypatch.setenv("RAYLITE_NODE_TIMEOUT_S", "nope")
    with pytest.raises(ValueError):
        liveness._seconds("RAYLITE_NODE_TIMEOUT_S", 5.0)
    monkeypatch.setenv("RAYLITE_NODE_TIMEOUT_S", "2.5")
    assert liveness._seconds("RAYLITE_NODE_TIMEOUT_S", 5.0) == 2.5
