"""The function table: functions and classes are pickled once, exported to the GCS,
and fetched (then cached) by the workers that run them.

A function's id is a hash of its pickle, and ids only ever arrive in task specs over
token-authenticated channels. Checking the fetched bytes against the id before
unpickling means whoever can write Redis still cannot make a worker run their code.

Workers also keep what they fetched in the node's private session directory
(``code_cache``): a new worker on the same node reads it there, without a GCS round
trip, so tasks of known functions start even while the GCS is down. Cached bytes are
checked exactly as fetched ones (function hash, job signature).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import threading

from raylite.exceptions import RaySystemError
from raylite.serialization import dumps_code, loads_code


def function_id_of(pickled: bytes) -> bytes:
    """The id of a pickled function: its SHA-256, truncated to 16 bytes."""
    return hashlib.sha256(pickled).digest()[:16]


class FunctionManager:

    def __init__(self, gcs, signing_key: bytes = b"", cache_dir: str = ""):
        self.gcs = gcs
        self.cache_dir = cache_dir        # "" (drivers): no node-local cache
        self._signing_key = signing_key   # checks job records (see raylite.gcs.signing)
        self._exported: dict[int, bytes] = {}   # id(py object) -> function id
        self._exported_objs: list = []          # keep exported objects alive (ids stay unique)
        self._cache: dict[bytes, object] = {}
        self._lock = threading.Lock()
        self._jobs_seen: set[bytes] = set()

    def _adopt_job_path(self, job_id: bytes) -> None:
        import sys

        job = None
        cached = self._read_cached(f"job-{job_id.hex()}")
        if cached is not None:
            from raylite.gcs.records import JobRecord
            try:
                job = JobRecord.from_bytes(cached)
            except ValueError:
                job = None
        if job is None:
            job = self.gcs.get_job(job_id.hex())
            if job is not None:
                self._write_cached(f"job-{job_id.hex()}", job.to_bytes())
        if job is not None and self._signing_key:
            from raylite.gcs.signing import verify_job
            verify_job(job, self._signing_key)   # sys.path decides what gets imported
        self._jobs_seen.add(job_id)   # only once verified: a refused record stays refused
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
            fid = function_id_of(pickled)
            self.gcs.export_function(fid.hex(), pickled)
            self._cache[fid] = obj
            self._exported[key] = fid
            self._exported_objs.append(obj)
        return fid

    def load(self, function_id: bytes, job_id: bytes = b""):
        """The function or class for ``function_id``, fetched from the GCS on first use.

        Raises KeyError when it was never exported, and RaySystemError (without
        unpickling anything) when the GCS entry does not match its id.
        """
        fn = self._cache.get(function_id)
        if fn is None:
            if job_id and job_id not in self._jobs_seen:
                self._adopt_job_path(job_id)
            pickled = self._read_cached(function_id.hex())
            if pickled is None or not hmac.compare_digest(function_id_of(pickled), function_id):
                pickled = self.gcs.fetch_function(function_id.hex())
                if hmac.compare_digest(function_id_of(pickled), function_id):
                    self._write_cached(function_id.hex(), pickled)
            if not hmac.compare_digest(function_id_of(pickled), function_id):
                raise RaySystemError(f"refusing function {function_id.hex()} from the GCS: its "
                                     f"bytes do not match its id (the entry was tampered with)")
            fn = loads_code(pickled)
            self._cache[function_id] = fn
        return fn

    # ---- the node-local cache ---------------------------------------------------------
    def _read_cached(self, name: str) -> bytes | None:
        if not self.cache_dir:
            return None
        try:
            with open(os.path.join(self.cache_dir, name), "rb") as f:
                return f.read()
        except OSError:
            return None

    def _write_cached(self, name: str, data: bytes) -> None:
        if not self.cache_dir:
            return
        from raylite.security.files import private_dir, write_secret
        try:
            private_dir(self.cache_dir)
            write_secret(os.path.join(self.cache_dir, name), data)
        except OSError:
            pass   # a cache: the GCS stays the source
