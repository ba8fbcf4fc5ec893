"""A node's object-store summary for `raylite status`, the state API and `raylite memory`.

Written by the node's heartbeat thread every few beats (GcsClient.put_store_stats,
buffered): use, capacity, spilled bytes and the ids of spilled objects (bounded).
"""
from __future__ import annotations

import msgpack

MAX_SPILLED_IDS = 1000
EVERY_N_BEATS = 5     # about once a second at the default 0.2 s beat


def store_summary(store) -> dict:
    """Plain numbers about a SharedMemoryStore (read from another thread: one copy)."""
    objects = list(store.objects.items())
    spilled = [hex_id for hex_id, obj in objects if obj.spilled]
    return {"used": store.used, "capacity": store.capacity, "num_objects": len(objects),
            "spilled_bytes": store.spilled_bytes, "num_spilled": store.num_spilled,
            "num_restored": store.num_restored,
            "num_secondary": sum(1 for _, obj in objects if obj.secondary),
            "spilled_ids": spilled[:MAX_SPILLED_IDS]}


class StoreStatsWriter:
    """Called by the heartbeat each beat; writes the summary every EVERY_N_BEATS."""

    def __init__(self, gcs, node_id: str, store):
        self.gcs, self.node_id, self.store = gcs, node_id, store
        self._beats = 0

    def __call__(self) -> None:
        self._beats += 1
        if self._beats % EVERY_N_BEATS == 1:
            self.gcs.put_store_stats(self.node_id, msgpack.packb(store_summary(self.store)))
