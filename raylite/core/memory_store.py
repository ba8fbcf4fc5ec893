"""The in-process table of object values this process owns or has fetched.

Values are kept serialized (an ObjectValue: inline bytes or a pointer into the
shared-memory store); ``get`` deserializes on demand. Waiters are callbacks fired by
whichever thread puts the value.
"""
from __future__ import annotations

import threading


class MemoryStore:

    def __init__(self):
        self._lock = threading.Lock()
        self._values: dict = {}
        self._waiters: dict = {}

    def put(self, object_id: bytes, value) -> None:
        with self._lock:
            self._values[object_id] = value
            callbacks = self._waiters.pop(object_id, ())
        for callback in callbacks:
            callback(object_id, value)

    def get(self, object_id: bytes):
        return self._values.get(object_id)

    def contains(self, object_id: bytes) -> bool:
        return object_id in self._values

    def on_ready(self, object_id: bytes, callback) -> None:
        """Call ``callback(id, value)`` once the value is present (now if it already is)."""
        with self._lock:
            value = self._values.get(object_id)
            if value is None:
                self._waiters.setdefault(object_id, []).append(callback)
                return
        callback(object_id, value)

    def remove_waiter(self, object_id: bytes, callback) -> None:
        with self._lock:
            waiters = self._waiters.get(object_id)
            if waiters and callback in waiters:
                waiters.remove(callback)
                if not waiters:
                    del self._waiters[object_id]

    def delete(self, object_id: bytes):
        with self._lock:
            return self._values.pop(object_id, None)

    def __len__(self) -> int:
        return len(self._values)
