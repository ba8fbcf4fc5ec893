"""Where each dashboard page gets its data: one method per page, all blocking (the
server calls them in a thread), all bounded (``limit``/``offset``), none raising for
a missing part of the cluster: a page shows what it could read and says what not.

Nodes and actors come from the GCS records (raylite.gcs); live node figures
(object store use) from each node scheduler's GetNodeInfo; tasks, objects and the
timeline from the task-event state API (raylite.util.state);
logs from the node session directories on this machine, or from each node's scheduler
(ListLogs/ReadLog) for nodes on other machines.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from raylite.gcs.liveness import is_alive
from raylite.observability.task_table import pending_demand
from raylite.observability.timeline import chrome_events
from raylite.protocol import common_pb2, node_pb2
from raylite.scheduler import log_files
from raylite.scheduler.resources import missing
from raylite.util import state

log = logging.getLogger("raylite.dashboard")

MAX_LIMIT = 1000
LOG_TAIL_BYTES = 64 * 1024


@dataclass
class Page:
    """Rows of one page, plus how many there are in all and any note for the reader."""

    rows: list
    total: int = 0
    note: str = ""
    extra: dict = field(default_factory=dict)


def clamp(limit, offset) -> tuple[int, int]:
    """(limit, offset) as ints within [1, MAX_LIMIT] and [0, ...]; bad input -> defaults."""
    try:
        limit = int(limit)
    except (TypeError, ValueError):
        limit = 100
    try:
        offset = int(offset)
    except (TypeError, ValueError):
        offset = 0
    return max(1, min(MAX_LIMIT, limit)), max(0, offset)


TASKS_TTL_S = 3.0
OBJECTS_TTL_S = 5.0
TIMELINE_PAGE_EVENTS = 2000


class Cached:
    """The last result of an expensive read (every task event of the cluster). A caller
    finding it older than ``ttl_s`` gets it at once while one background thread reads
    it again; only the very first call waits. Errors of a background read are logged
    and the old value kept."""

    def __init__(self, read, ttl_s: float):
        self.read = read
        self.ttl_s = ttl_s
        self.value: Any = None
        self.at = 0.0
        self.lock = threading.Lock()
        self.refreshing = False

    def get(self):
        with self.lock:
            value, age = self.value, time.monotonic() - self.at
            stale = value is not None and age >= self.ttl_s and not self.refreshing
            if stale:
                self.refreshing = True
        if value is None:
            return self._refresh()
        if stale:
            threading.Thread(target=self._refresh_quietly, daemon=True,
                             name="raylite-dashboard-read").start()
        return value

    def _refresh(self):
        value = self.read()
        with self.lock:
            self.value, self.at, self.refreshing = value, time.monotonic(), False
        return value

    def _refresh_quietly(self) -> None:
        try:
            self._refresh()
        except Exception as exc:
            log.warning("dashboard: reading the cluster state failed: %s", exc)
            with self.lock:
                self.refreshing = False


@dataclass
class TaskTable:
    """Every recorded task attempt, newest first, and the counts by state."""

    rows: list
    by_state: dict


def _task_table(rows: list) -> TaskTable:
    rows = sorted(rows, key=lambda r: (r.get("creation_time_ms") or r.get("start_time_ms") or 0),
                  reverse=True)
    counts: dict = {}
    for row in rows:
        counts[row.get("state")] = counts.get(row.get("state"), 0) + 1
    return TaskTable(rows, counts)


class DashboardData:
    """The dashboard's view of one cluster, over a GcsClient and the cluster token."""

    def __init__(self, gcs, token: str):
        self.gcs = gcs
        self.token = token
        self._stubs: dict[str, object] = {}
        self._tasks = Cached(lambda: _task_table(state.task_rows(gcs)), TASKS_TTL_S)
        self._objects = Cached(lambda: state.object_rows(gcs), OBJECTS_TTL_S)

    def warm(self) -> None:
        """Read the expensive tables once (at start), so even the first page view is
        served from the cache; never raises."""
        for cached in (self._tasks, self._objects):
            try:
                cached.get()
            except Exception as exc:
                log.warning("dashboard: reading the cluster state failed: %s", exc)

    # ---- nodes ------------------------------------------------------------------------
    def nodes(self) -> Page:
        """Every node of the table, alive first, with resources used/total and store use."""
        now = time.time()
        rows = []
        for node_id, record in self.gcs.nodes().items():
            alive = is_alive(record, now)
            free = record.free_resources()
            resources = {name: {"total": total, "used": max(0.0, total - free.get(name, 0.0))}
                         for name, total in sorted(record.resources.items())}
            row = {"node_id": node_id, "alive": alive, "address": record.address,
                   "host": record.host, "is_head": record.is_head, "pid": record.pid,
                   "resources": resources, "death_reason": record.death_reason,
                   "store_capacity": record.store_capacity, "store_used": None,
                   "metrics_export_port": record.metrics_export_port,
                   "last_heartbeat": record.last_heartbeat}
            if alive:
                live = self.node_info(node_id, record)
                if live is not None:
                    row["store_used"] = live["store_used"]
                    row["num_workers"] = live["num_workers"]
            rows.append(row)
        rows.sort(key=lambda r: (not r["alive"], not r["is_head"], r["node_id"]))
        return Page(rows, len(rows))

    def demand(self, nodes: list) -> dict:
        """Tasks and actors waiting for resources, grouped by what they ask for (from the
        task events): {"pending": [...], "infeasible": [...]}, a group being
        {"resources", "count", "names"}; infeasible when no alive node in ``nodes``
        (rows of ``nodes()``) has that much of everything asked."""
        out: dict = {"pending": [], "infeasible": []}
        totals = [{k: v["total"] for k, v in n["resources"].items()} for n in nodes if n["alive"]]
        for group in pending_demand(self._tasks.get().rows):
            fits = any(not missing(group["resources"], total) for total in totals)
            out["pending" if fits else "infeasible"].append(group)
        return out

    def node_info(self, node_id: str, record) -> dict | None:
        """The node scheduler's live figures (GetNodeInfo), None when it does not answer."""
        try:
            stub = self._stubs.get(node_id)
            if stub is None:
                stub = self._stubs[node_id] = self._stub_for(record)
            reply = stub.GetNodeInfo(common_pb2.Empty(), timeout=1.0)  # type: ignore[attr-defined]
        except Exception as exc:
            self._stubs.pop(node_id, None)
            log.debug("GetNodeInfo of %s failed: %s", node_id[:8], exc)
            return None
        return {"store_used": reply.store_used, "store_capacity": reply.store_capacity,
                "num_workers": reply.num_workers, "available": dict(reply.available),
                "total": dict(reply.total)}

    def _stub_for(self, record):
        return log_files.node_stub(record, self.token)

    # ---- actors ----------------------------------------------------------------
    def actors(self, limit=100, offset=0, state: str = "") -> Page:
        """Actors, alive first then newest; ``state`` filters (ALIVE, DEAD, ...)."""
        limit, offset = clamp(limit, offset)
        records = list(self.gcs.all_actors().values())
        counts: dict = {}
        for r in records:
            counts[r.state] = counts.get(r.state, 0) + 1
        if state:
            records = [r for r in records if r.state == state]
        records.sort(key=lambda r: (r.state == "DEAD", -r.time, r.actor_id))
        rows = [{"actor_id": r.actor_id, "class_name": r.class_name, "state": r.state,
                 "name": r.name, "namespace": r.namespace, "node_id": r.node_id, "pid": r.pid,
                 "job_id": r.job_id, "num_restarts": r.num_restarts,
                 "max_restarts": r.max_restarts, "detached": r.detached,
                 "death_cause": r.death_cause, "time": r.time}
                for r in records[offset:offset + limit]]
        return Page(rows, len(records), extra={"by_state": counts})

    # ---- tasks, objects, timeline (task-event state API) ------------------------------
    def tasks(self, limit=100, offset=0, state: str = "") -> Page:
        """Task attempts, newest first; ``state`` filters (RUNNING, FINISHED, FAILED, ...)."""
        limit, offset = clamp(limit, offset)
        table = self._tasks.get()
        rows = [r for r in table.rows if r.get("state") == state] if state else table.rows
        return Page([_task_summary(r) for r in rows[offset:offset + limit]], len(rows),
                    extra={"by_state": table.by_state})

    def task(self, task_id: str) -> dict | None:
        """The latest attempt of one task (by id or id prefix) with its error and
        traceback, and ``attempts``; None when unknown."""
        if not task_id:
            return None
        found = [r for r in self._tasks.get().rows if str(r.get("task_id", "")).startswith(task_id)]
        if not found:
            return None
        found.sort(key=lambda r: r.get("attempt_number") or 0)
        latest = dict(found[-1])
        latest["attempts"] = len(found)
        return latest

    def objects(self, limit=100, offset=0) -> Page:
        """Objects in the cluster, largest first."""
        limit, offset = clamp(limit, offset)
        rows = self._objects.get()
        return Page(rows[offset:offset + limit], len(rows))

    def timeline(self, last: int | None = None) -> list:
        """Chrome-tracing events of task executions ([] when none are recorded); with
        ``last``, only the ``last`` executions that started most recently."""
        rows = [r for r in self._tasks.get().rows if r.get("start_time_ms")]
        if last is not None:
            rows = sorted(rows, key=lambda r: r["start_time_ms"])[-last:]
        return chrome_events(rows, time.time() * 1000.0)

    # ---- logs ----------------------------------------------------------------------------
    def log_files(self) -> Page:
        """The log files of every node: read here when its session directory is on this
        machine, else asked of its scheduler (ListLogs)."""
        rows = []
        unreachable = 0
        for node_id, record in self.gcs.nodes().items():
            directory = self._log_dir(record)
            if directory is not None:
                files = [(f.name, f.size, f.mtime) for f in log_files.list_logs(directory)]
            elif record.alive:
                try:
                    reply = self._stub_for(record).ListLogs(common_pb2.Empty(), timeout=2)
                except Exception as exc:
                    log.debug("ListLogs of %s failed: %s", node_id[:8], exc)
                    unreachable += 1
                    continue
                files = [(f.name, f.size, f.mtime) for f in reply.files]
            else:
                continue
            rows += [{"node_id": node_id, "name": name, "size": size, "mtime": mtime}
                     for name, size, mtime in files]
        rows.sort(key=lambda r: -r["mtime"])
        note = f"{unreachable} node(s) did not answer." if unreachable else ""
        return Page(rows, len(rows), note)

    def log_tail(self, node_id: str, name: str, max_bytes: int = LOG_TAIL_BYTES) -> str | None:
        """The last ``max_bytes`` of one log file; None when there is no such file (the
        name must be a plain file name in that node's log directory)."""
        record = self.gcs.nodes().get(node_id)
        if record is None or not log_files.safe_name(name):
            return None
        directory = self._log_dir(record)
        if directory is not None:
            found = log_files.read_tail(directory, name, max_bytes)
            return None if found is None else found[0].decode(errors="replace")
        try:
            reply = self._stub_for(record).ReadLog(
                node_pb2.ReadLogRequest(name=name, max_bytes=max_bytes), timeout=5)
        except Exception as exc:
            log.debug("ReadLog of %s failed: %s", node_id[:8], exc)
            return None
        return reply.data.decode(errors="replace") if reply.found else None

    @staticmethod
    def _log_dir(record) -> str | None:
        """The node's log directory if it is on this machine and private to us."""
        if not record.session:
            return None
        from raylite.security.files import check_private
        from raylite.session import session_from_root
        directory = session_from_root(record.session).logs
        try:
            check_private(directory, want_dir=True)
        except OSError:
            return None
        return directory


TASK_SUMMARY_FIELDS = ("task_id", "attempt_number", "name", "state", "type", "actor_id",
                       "node_id", "worker_id", "worker_pid", "error_type", "error_message",
                       "creation_time_ms", "start_time_ms", "end_time_ms", "job_id")


def _task_summary(row: dict) -> dict:
    """What a task list shows of an attempt (not its event history)."""
    out = {k: row.get(k) for k in TASK_SUMMARY_FIELDS}
    error = row.get("error_message")
    if error and len(str(error)) > 300:
        out["error_message"] = str(error)[-300:]
    return out
