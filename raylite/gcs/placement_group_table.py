"""Placement-group records and names in the GCS (raylite.util.placement_group).

A mixin of raylite.gcs.client.GcsClient, which provides the connection (``_redis``) and
the buffered writer (``buffer``/``flush``); kept apart only to keep modules small.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from raylite.gcs import keys
from raylite.gcs.errors import gcs_call
from raylite.gcs.records import PG_REMOVED, PlacementGroupRecord

MAX_REMOVED_GROUPS = 1000     # removed placement groups kept for placement_group_table()


class PlacementGroupTable:
    _redis: Any
    buffer: Callable[..., None]
    flush: Callable[[], None]
    _claim_name: Callable[..., str]
    _release_name: Any

    @gcs_call(retry=True)
    def put_placement_group(self, record: PlacementGroupRecord) -> None:
        """Write a group's record; keep the index of its owner's live groups, and only
        the newest MAX_REMOVED_GROUPS removed ones (as Ray's GCS does)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(keys.PLACEMENT_GROUPS, record.pg_id, record.to_bytes())
        removed = record.state == PG_REMOVED
        if record.owner:
            if removed:
                pipe.srem(keys.pg_owned(record.owner), record.pg_id)
            else:
                pipe.sadd(keys.pg_owned(record.owner), record.pg_id)
        if removed:
            pipe.zadd(keys.PG_REMOVED, {record.pg_id: time.time()})
            pipe.zcard(keys.PG_REMOVED)
        replies = pipe.execute()
        count = replies[-1] if removed else 0
        if count > MAX_REMOVED_GROUPS:
            oldest = [m for m, _ in self._redis.zpopmin(keys.PG_REMOVED,
                                                        count - MAX_REMOVED_GROUPS)]
            if oldest:
                self._redis.hdel(keys.PLACEMENT_GROUPS, *oldest)

    @gcs_call(retry=True)
    def placement_groups_of(self, owner_worker_id: str) -> list[PlacementGroupRecord]:
        """The live non-detached groups created by ``owner_worker_id``."""
        ids = list(self._redis.smembers(keys.pg_owned(owner_worker_id)))
        raws = self._redis.hmget(keys.PLACEMENT_GROUPS, ids) if ids else []
        return [PlacementGroupRecord.from_bytes(raw) for raw in raws if raw]

    @gcs_call(retry=True)
    def get_placement_group(self, pg_id_hex: str) -> PlacementGroupRecord | None:
        raw = self._redis.hget(keys.PLACEMENT_GROUPS, pg_id_hex)
        return PlacementGroupRecord.from_bytes(raw) if raw else None

    @gcs_call(retry=True)
    def all_placement_groups(self) -> dict[str, PlacementGroupRecord]:
        return {k.decode(): PlacementGroupRecord.from_bytes(v)
                for k, v in self._redis.hgetall(keys.PLACEMENT_GROUPS).items()}

    @gcs_call(retry=True)
    def claim_placement_group_name(self, namespace: str, name: str, pg_id_hex: str) -> str:
        """Bind a name to our group when it is free or bound to a removed (or vanished)
        group, atomically; returns the id now bound (ours, or the live holder's)."""
        return self._claim_name(
            keys.PG_NAMES, keys.PLACEMENT_GROUPS, keys.actor_name_key(namespace, name), pg_id_hex,
            lambda _id, raw: PlacementGroupRecord.from_bytes(raw).state != PG_REMOVED)

    @gcs_call(retry=True)
    def lookup_placement_group_name(self, namespace: str, name: str) -> str | None:
        raw = self._redis.hget(keys.PG_NAMES, keys.actor_name_key(namespace, name))
        return raw.decode() if raw else None

    @gcs_call(retry=True)
    def release_placement_group_name(self, namespace: str, name: str, pg_id_hex: str) -> None:
        """Free the name if (and only if) it is still bound to this group."""
        self._release_name(keys=[keys.PG_NAMES],
                           args=[keys.actor_name_key(namespace, name), pg_id_hex])
