"""Placement group records in a real redis-server: the owner index, name claims and
the bound on removed records."""
from __future__ import annotations

import pytest

from raylite.gcs import placement_group_table as pg_table
from raylite.gcs.client import GcsClient
from raylite.gcs.records import PG_CREATED, PG_PENDING, PG_REMOVED, PlacementGroupRecord
from raylite.gcs.redis_server import start_redis

PASSWORD = "test-password"


@pytest.fixture
def gcs(tmp_path):
    proc, port, _ = start_redis(str(tmp_path / "redis"), PASSWORD)
    client = GcsClient(f"127.0.0.1:{port}", PASSWORD, retry_s=0.3)
    yield client
    client.close()
    proc.terminate()
    proc.wait(10)


def group(pg_id: str, owner: str = "driver", state: str = PG_PENDING, **kw) -> PlacementGroupRecord:
    return PlacementGroupRecord(pg_id=pg_id, owner=owner, state=state,
                                bundles=[{"CPU": 1.0}], bundle_nodes=[""], **kw)


def test_records_round_trip_and_the_owner_index_follows_removal(gcs):
    gcs.put_placement_group(group("g1"))
    gcs.put_placement_group(group("g2", state=PG_CREATED))
    gcs.put_placement_group(group("d1", owner=""))            # detached: no owner
    assert gcs.get_placement_group("g1") == group("g1")
    assert {r.pg_id for r in gcs.placement_groups_of("driver")} == {"g1", "g2"}
    gcs.put_placement_group(group("g1", state=PG_REMOVED))
    assert [r.pg_id for r in gcs.placement_groups_of("driver")] == ["g2"]
    assert gcs.get_placement_group("g1").state == PG_REMOVED
    assert set(gcs.all_placement_groups()) == {"g1", "g2", "d1"}
    assert gcs.placement_groups_of("nobody") == []


def test_names_are_claimed_once_and_free_again_when_removed(gcs):
    gcs.put_placement_group(group("g1", name="gang", namespace="ns"))
    assert gcs.claim_placement_group_name("ns", "gang", "g1") == "g1"
    gcs.put_placement_group(group("g2", name="gang", namespace="ns"))
    assert gcs.claim_placement_group_name("ns", "gang", "g2") == "g1"   # taken
    assert gcs.claim_placement_group_name("other", "gang", "g2") == "g2"  # per namespace
    gcs.put_placement_group(group("g1", name="gang", namespace="ns", state=PG_REMOVED))
    assert gcs.claim_placement_group_name("ns", "gang", "g2") == "g2"   # holder removed
    gcs.release_placement_group_name("ns", "gang", "g1")                # not its name now
    assert gcs.lookup_placement_group_name("ns", "gang") == "g2"
    gcs.release_placement_group_name("ns", "gang", "g2")
    assert gcs.lookup_placement_group_name("ns", "gang") is None


def test_only_the_newest_removed_groups_are_kept(gcs, monkeypatch):
    monkeypatch.setattr(pg_table, "MAX_REMOVED_GROUPS", 3)
    gcs.put_placement_group(group("live", state=PG_CREATED))
    for i in range(6):
        gcs.put_placement_group(group(f"r{i}", state=PG_REMOVED))
    assert set(gcs.all_placement_groups()) == {"live", "r3", "r4", "r5"}
