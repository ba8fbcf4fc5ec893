"""Counts the ObjectRefs alive in this process and frees owned objects nobody holds.

An owned object is freed when its local count drops to zero, no submitted task
still depends on it, and no borrower holds it. Borrowers report the refs they hold
to the owner (UpdateBorrows); a ref serialized to a peer is pinned until the peer
reports, so it cannot be freed while in transit.
"""
from __future__ import annotations

import threading


class ReferenceCounter:

    def __init__(self, free_callback):
        # Re-entrant: ObjectRef.__del__ can run inside any of these methods via GC.
        self._lock = threading.RLock()
        self._local: dict[bytes, int] = {}
        self._owned: set[bytes] = set()
        self._pins: dict[bytes, int] = {}       # in-flight task dependencies, in-transit refs
        self._borrowers: dict[bytes, set] = {}
        self._free = free_callback

    def add_owned(self, object_id: bytes) -> None:
        with self._lock:
            self._owned.add(object_id)

    def is_owned(self, object_id: bytes) -> bool:
        return object_id in self._owned

    def add_local(self, object_id: bytes) -> None:
        with self._lock:
            self._local[object_id] = self._local.get(object_id, 0) + 1

    def remove_local(self, object_id: bytes) -> None:
        with self._lock:
            count = self._local.get(object_id, 0) - 1
            if count > 0:
                self._local[object_id] = count
                return
            self._local.pop(object_id, None)
            self._maybe_free(object_id)

    def pin(self, object_id: bytes) -> None:
        with self._lock:
            self._pins[object_id] = self._pins.get(object_id, 0) + 1

    def unpin(self, object_id: bytes) -> None:
        with self._lock:
            count = self._pins.get(object_id, 0) - 1
            if count > 0:
                self._pins[object_id] = count
                return
            self._pins.pop(object_id, None)
            self._maybe_free(object_id)

    def add_borrower(self, object_id: bytes, borrower: str) -> None:
        with self._lock:
            self._borrowers.setdefault(object_id, set()).add(borrower)

    def remove_borrower(self, object_id: bytes, borrower: str) -> None:
        with self._lock:
            holders = self._borrowers.get(object_id)
            if holders is None:
                return
            holders.discard(borrower)
            if not holders:
                del self._borrowers[object_id]
                self._maybe_free(object_id)

    def drop_borrower_everywhere(self, borrower: str) -> None:
        """A borrowing process died: forget everything it held."""
        with self._lock:
            for object_id in [o for o, b in self._borrowers.items() if borrower in b]:
                self.remove_borrower(object_id, borrower)

    def in_use(self, object_id: bytes) -> bool:
        return (object_id in self._local or object_id in self._pins
                or object_id in self._borrowers)

    def _maybe_free(self, object_id: bytes) -> None:
        if self.in_use(object_id):
            return
        owned = object_id in self._owned
        self._owned.discard(object_id)
        self._free(object_id, owned)

    def counts(self) -> dict:
        with self._lock:
            return {"local": len(self._local), "owned": len(self._owned),
                    "pinned": len(self._pins), "borrowed_out": len(self._borrowers)}
