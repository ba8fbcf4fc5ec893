"""User metrics, task events, the worker table, object reports and store stats in
the GCS (raylite.util.metrics, raylite.util.state).

A mixin of raylite.gcs.client.GcsClient, which provides the connection (``_redis``) and
the buffered writer (``buffer``/``flush``); kept apart only to keep modules small.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack

from raylite.gcs import keys
from raylite.gcs.errors import gcs_call

# Append a batch of task events and its count; drop the oldest batches past the bound.
_PUSH_EVENTS = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[4])
local total = redis.call('INCRBY', KEYS[2] .. ':total', ARGV[2])
local limit = tonumber(ARGV[3])
while total > limit do
  local n = redis.call('LPOP', KEYS[2])
  if not n then break end
  redis.call('LPOP', KEYS[1])
  total = redis.call('DECRBY', KEYS[2] .. ':total', n)
end
return total
"""


class ObservabilityTable:
    _redis: Any
    buffer: Callable[..., None]
    flush: Callable[[], None]

    # ---- user metrics (raylite.util.metrics) ------------------------------------
    def record_metrics(self, node_id: str, definitions: dict, increments: dict,
                       gauges: dict) -> None:
        """Add one process's metric updates (buffered, pipelined) to its node's totals:
        ``definitions`` name -> dict (written once per process), ``increments`` series
        field -> delta (summed per node), ``gauges`` series field -> value (the last
        one set on the node wins)."""
        for name, definition in definitions.items():
            self.buffer("hset", keys.METRIC_DEFS, name, msgpack.packb(definition))
        key = keys.node_metrics(node_id)
        if increments or gauges:
            self.buffer("sadd", keys.METRIC_NODES, node_id)
        for field, delta in increments.items():
            self.buffer("hincrbyfloat", key, field, delta)
        for field, value in gauges.items():
            self.buffer("hset", key, field, value)

    @gcs_call(retry=True)
    def read_metrics(self) -> tuple[dict, dict]:
        """(name -> definition, node id -> {series field -> value}) of every metric
        recorded in the cluster; this process's buffered writes are sent first."""
        self.flush()
        definitions = {k.decode(): msgpack.unpackb(v)
                       for k, v in self._redis.hgetall(keys.METRIC_DEFS).items()}
        nodes = sorted(n.decode() for n in self._redis.smembers(keys.METRIC_NODES))
        pipe = self._redis.pipeline(transaction=False)
        for node_id in nodes:
            pipe.hgetall(keys.node_metrics(node_id))
        values = {node_id: {k.decode(): float(v) for k, v in raw.items()}
                  for node_id, raw in zip(nodes, pipe.execute())}
        return definitions, values

    # ---- observability: task events, workers, object reports, store stats --------
    def push_task_events(self, job_id_hex: str, blob: bytes, count: int, max_per_job: int) -> None:
        """Append one batch of ``count`` task events (msgpack bytes) to the job's list;
        the oldest batches go once the job holds more than ``max_per_job`` events
        (buffered, pipelined; trimmed inside Redis by a small script)."""
        self.buffer("eval", _PUSH_EVENTS, 3, keys.task_events(job_id_hex),
                    keys.task_event_counts(job_id_hex), keys.TASK_EVENT_JOBS,
                    blob, count, max_per_job, job_id_hex)

    def count_dropped_task_events(self, job_id_hex: str, count: int) -> None:
        """Add to the job's count of task events dropped under load (buffered)."""
        self.buffer("hincrby", keys.TASK_EVENTS_DROPPED, job_id_hex, count)

    @gcs_call(retry=True)
    def task_events(self, job_id_hex: str | None = None) -> list[tuple[str, bytes]]:
        """(job hex, msgpack batch) of the task events of one job, or of every job,
        oldest first (this process's buffered writes are sent first)."""
        self.flush()
        jobs = [job_id_hex] if job_id_hex else sorted(
            j.decode() for j in self._redis.smembers(keys.TASK_EVENT_JOBS))
        pipe = self._redis.pipeline(transaction=False)
        for job in jobs:
            pipe.lrange(keys.task_events(job), 0, -1)
        return [(job, blob) for job, chunk in zip(jobs, pipe.execute()) for blob in chunk]

    @gcs_call(retry=True)
    def drop_task_events(self, job_ids: list) -> None:
        """Forget every task event of these jobs."""
        if not job_ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for job in job_ids:
            counts = keys.task_event_counts(job)
            pipe.delete(keys.task_events(job), counts, counts + ":total")
            pipe.srem(keys.TASK_EVENT_JOBS, job)
        pipe.hdel(keys.TASK_EVENTS_DROPPED, *job_ids)
        pipe.execute()

    @gcs_call(retry=True)
    def task_event_jobs(self) -> list[str]:
        return sorted(j.decode() for j in self._redis.smembers(keys.TASK_EVENT_JOBS))

    @gcs_call(retry=True)
    def dropped_task_events(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self._redis.hgetall(keys.TASK_EVENTS_DROPPED).items()}

    def put_worker_info(self, worker_id: str, blob: bytes) -> None:
        """Refresh this process's entry in the worker table (buffered)."""
        self.buffer("hset", keys.WORKERS, worker_id, blob)

    @gcs_call(retry=True)
    def worker_infos(self) -> list[dict]:
        """Every process entry in the worker table (msgpack maps)."""
        out = []
        for blob in self._redis.hgetall(keys.WORKERS).values():
            try:
                out.append(msgpack.unpackb(blob, raw=False))
            except Exception:
                continue
        return out

    @gcs_call(retry=True)
    def forget_workers(self, worker_ids: list) -> None:
        if worker_ids:
            self._redis.hdel(keys.WORKERS, *worker_ids)

    @gcs_call(retry=False)
    def object_reports_wanted(self) -> bool:
        """True while someone lists objects (processes then report theirs each round)."""
        return bool(self._redis.exists(keys.OBJECT_REPORTS_WANTED))

    @gcs_call(retry=True)
    def want_object_reports(self, seconds: float) -> bool:
        """Ask every process to report its objects for ``seconds``; True when they
        were already reporting (the reports are fresh)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.exists(keys.OBJECT_REPORTS_WANTED)
        pipe.set(keys.OBJECT_REPORTS_WANTED, b"1", px=int(seconds * 1000))
        return bool(pipe.execute()[0])

    def put_object_report(self, worker_id: str, blob: bytes, ttl_s: float = 5.0) -> None:
        """This process's object report, expiring unless refreshed (buffered)."""
        self.buffer("psetex", keys.object_report(worker_id), int(ttl_s * 1000), blob)

    @gcs_call(retry=True)
    def object_reports(self) -> list[bytes]:
        """Every fresh object report (msgpack bytes)."""
        found = list(self._redis.scan_iter(keys.object_report("*"), count=1000))
        if not found:
            return []
        return [blob for blob in self._redis.mget(found) if blob]

    def put_store_stats(self, node_id: str, blob: bytes) -> None:
        """A node's object-store summary (buffered)."""
        self.buffer("hset", keys.STORE_STATS, node_id, blob)

    @gcs_call(retry=True)
    def store_stats(self) -> dict[str, dict]:
        """node id -> the store summary it last wrote."""
        out = {}
        for node_id, blob in self._redis.hgetall(keys.STORE_STATS).items():
            try:
                out[node_id.decode()] = msgpack.unpackb(blob, raw=False)
            except Exception:
                continue
        return out
