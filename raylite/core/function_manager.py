"""The function table: functions and classes are pickled once, exported to the GCS,
and fetched (then cached) by the workers that run them."""
from __future__ import annotations

import hashlib
import threading

from raylite.serialization import dumps_code, loads_code


class FunctionManager:

    def __init__(self, gcs):
        self.gcs = gcs
        self._exported: dict[int, bytes] = {}   # id(py object) -> function id
        self._exported_objs: list = []          # keep exported objects alive (ids stay unique)
        self._cache: dict[bytes, object] = {}
        self._lock = threading.Lock()
        self._jobs_seen: set[bytes] = set()

    def _adopt_job_path(self, job_id: bytes) -> None:
        import sys

        self._jobs_seen.add(job_id)
        job = self.gcs.get_job(job_id.hex())
        if job is None:
            return
        for path in reversed(job.sys_path):
            if path not in sys.path:
                sys.path.insert(1, path)

    def export(self, obj) -> bytes:
        """Pickle and publish ``obj`` once; returns its function id.

        Raises TypeError when ``obj`` cannot be pickled.
        """
        key = id(obj)
        fid = self._exported.get(key)
        if fid is not None:
            return fid
        with self._lock:
            fid = self._exported.get(key)
            if fid is not None:
                return fid
            pickled = dumps_code(obj)
            fid = hashlib.sha1(pickled).digest()[:16]
            self.gcs.export_function(fid.hex(), pickled)
            self._cache[fid] = obj
            self._exported[key] = fid
            self._exported_objs.append(obj)
        return fid

    def load(self, function_id: bytes, job_id: bytes = b""):
        """The function or class for ``function_id``, fetched from the GCS on first use.

        Raises KeyError when it was never exported.
        """
        fn = self._cache.get(function_id)
        if fn is None:
            if job_id and job_id not in self._jobs_seen:
                self._adopt_job_path(job_id)
            fn = loads_code(self.gcs.fetch_function(function_id.hex()))
            self._cache[function_id] = fn
        return fn
