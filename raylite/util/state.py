"""The state API, as Ray's ``ray.util.state``: list, get and summarize cluster state.

Every ``list_*`` takes ``address`` (None/"auto": this process's cluster, else the one
started on this machine, or "host:port" with RAYLITE_TOKEN), ``filters`` (a list of
``(key, "=" | "!=", value)``), ``limit`` (default 100), ``detail`` (all columns) and
returns rows that are dicts with attribute access, with Ray's field names. Tasks come
from the task events (raylite.core.task_events; up to a second behind), actors,
nodes and jobs from the GCS tables, objects from reports every process sends while
someone lists them (the first call waits for them, about 1.5 s).

Every function raises ConnectionError when no cluster can be reached and ValueError
for a bad filter.
"""
from __future__ import annotations

import os
import time

import msgpack

from raylite.observability import filters as flt
from raylite.observability import task_table
from raylite.observability.connect import open_gcs

DEFAULT_LIMIT = flt.DEFAULT_LIMIT
OBJECT_REPORT_WAIT_S = 1.5      # a process reports within one task-event round (1 s)
OBJECT_REPORTS_FOR_S = 60.0     # processes keep reporting this long after a listing
WORKER_STALE_S = 10.0           # a worker entry not refreshed this long is a dead process
MAX_DEAD_WORKERS = 1000         # older entries of dead processes are forgotten


def _max_jobs() -> int:
    try:
        return max(1, int(os.environ.get("RAYLITE_TASK_EVENTS_MAX_JOBS", "100")))
    except ValueError:
        return 100


class StateRow(dict):
    """A row: a dict whose keys also read as attributes (``task.state``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


ACTOR_COLUMNS = ("actor_id", "class_name", "state", "job_id", "name", "node_id", "pid",
                 "ray_namespace")
ACTOR_DETAIL = ("serialized_runtime_env", "required_resources", "death_cause", "is_detached",
                "placement_group_id", "repr_name", "num_restarts", "max_restarts", "call_site")
NODE_COLUMNS = ("node_id", "node_ip", "is_head_node", "state", "state_message", "node_name",
                "resources_total", "labels")
NODE_DETAIL = ("resources_available", "address", "start_time_ms", "end_time_ms",
               "object_store_used", "object_store_capacity", "spilled_bytes")
WORKER_COLUMNS = ("worker_id", "is_alive", "worker_type", "exit_type", "node_id", "ip", "pid")
WORKER_DETAIL = ("exit_detail", "worker_launch_time_ms", "start_time_ms", "end_time_ms", "job_id")
JOB_COLUMNS = ("job_id", "submission_id", "type", "status", "entrypoint", "message",
               "error_type", "driver_info")
JOB_DETAIL = ("start_time", "end_time", "namespace", "cwd")
OBJECT_COLUMNS = ("object_id", "object_size", "task_status", "attempt_number", "reference_type",
                  "call_site", "type", "pid", "ip")
OBJECT_DETAIL = ("node_id", "worker_id", "is_owner", "in_store", "spilled", "is_error")
PG_COLUMNS = ("placement_group_id", "name", "creator_job_id", "state")
PG_DETAIL = ("bundles", "is_detached", "stats", "strategy")


def _finish(rows, filters, columns, detail_columns, detail, limit) -> list[StateRow]:
    allowed = set(columns) | set(detail_columns)
    rows = flt.apply_filters(rows, filters, allowed)
    return [StateRow(r) for r in flt.select(rows, columns, detail_columns, detail, limit)]


def _with_gcs(address, read):
    gcs, close = open_gcs(address)
    try:
        return read(gcs)
    finally:
        if close:
            gcs.close()


# ---- raw readers (all columns, every row) ----------------------------------------------
def _flush_own_events() -> None:
    from raylite.core import task_events
    recorder = task_events.RECORDER
    if recorder is not None:
        try:
            recorder.flush()
        except Exception:
            pass


def task_rows(gcs) -> list[dict]:
    """Every recorded task attempt, merged (see raylite.observability.task_table)."""
    _flush_own_events()
    _forget_old_jobs(gcs)
    batches, jobs = [], []
    for job, blob in gcs.task_events():
        try:
            batches.append(msgpack.unpackb(blob, raw=False))
        except Exception:
            continue
        jobs.append(job)
    rows = task_table.merge_entries(batches, jobs)
    dead = {a for a, r in gcs.all_actors().items() if r.state == "DEAD"}
    if dead:
        task_table.apply_actor_deaths(rows, dead)
    return rows


def _forget_old_jobs(gcs) -> None:
    """Keep the task events of the newest RAYLITE_TASK_EVENTS_MAX_JOBS (100) jobs."""
    jobs = gcs.task_event_jobs()
    limit = _max_jobs()
    if len(jobs) <= limit:
        return
    started = {job_id: r.start for job_id, r in gcs.all_jobs().items()}
    jobs.sort(key=lambda j: started.get(j, 0.0))
    gcs.drop_task_events(jobs[:len(jobs) - limit])


def actor_rows(gcs) -> list[dict]:
    rows = []
    for actor_id, r in gcs.all_actors().items():
        rows.append({"actor_id": actor_id, "class_name": r.class_name, "state": r.state,
                     "job_id": r.job_id or None, "name": r.name, "node_id": r.node_id or None,
                     "pid": r.pid or None, "ray_namespace": r.namespace,
                     "serialized_runtime_env": None, "required_resources": r.extra.get("resources", {}),
                     "death_cause": r.death_cause or None, "is_detached": r.detached,
                     "placement_group_id": r.extra.get("placement_group_id"),
                     "repr_name": r.extra.get("repr_name", ""), "num_restarts": r.num_restarts,
                     "max_restarts": r.max_restarts, "call_site": r.extra.get("call_site")})
    return rows


def node_rows(gcs) -> list[dict]:
    from raylite.gcs.liveness import is_alive
    now = time.time()
    stats = gcs.store_stats()
    rows = []
    for node_id, r in gcs.nodes().items():
        alive = is_alive(r, now)
        store = stats.get(node_id, {})
        host = r.address.rsplit(":", 1)[0] if r.address else r.host
        rows.append({"node_id": node_id, "node_ip": host, "is_head_node": r.is_head,
                     "state": "ALIVE" if alive else "DEAD",
                     "state_message": None if alive else (r.death_reason or "missed heartbeats"),
                     "node_name": r.host or host, "resources_total": dict(r.resources),
                     "labels": {}, "resources_available": r.free_resources() if alive else {},
                     "address": r.address, "start_time_ms": r.extra.get("start_time_ms"),
                     "end_time_ms": None, "object_store_used": store.get("used", 0),
                     "object_store_capacity": store.get("capacity", r.store_capacity),
                     "spilled_bytes": store.get("spilled_bytes", 0)})
    return rows


def worker_rows(gcs) -> list[dict]:
    from raylite.gcs.liveness import is_alive
    now = time.time()
    nodes = gcs.nodes()
    rows = []
    for info in gcs.worker_infos():
        node = nodes.get(info.get("node_id", ""))
        ended = info.get("end_time_ms")
        alive = (not ended and now - info.get("last_seen", 0) < WORKER_STALE_S
                 and node is not None and is_alive(node, now))
        exit_type = None if alive else ("INTENDED_SYSTEM_EXIT" if ended else "SYSTEM_ERROR")
        rows.append({"worker_id": info.get("worker_id"), "is_alive": alive,
                     "worker_type": info.get("worker_type", "WORKER"), "exit_type": exit_type,
                     "node_id": info.get("node_id"), "ip": info.get("ip"), "pid": info.get("pid"),
                     "exit_detail": None, "worker_launch_time_ms": info.get("start_time_ms"),
                     "start_time_ms": info.get("start_time_ms"),
                     "end_time_ms": ended or (None if alive else int(info.get("last_seen", 0) * 1000)),
                     "job_id": info.get("job_id")})
    dead = sorted((r for r in rows if not r["is_alive"]), key=lambda r: r["end_time_ms"] or 0)
    if len(dead) > MAX_DEAD_WORKERS:
        gone = dead[:len(dead) - MAX_DEAD_WORKERS]
        gcs.forget_workers([r["worker_id"] for r in gone])
        ids = {r["worker_id"] for r in gone}
        rows = [r for r in rows if r["worker_id"] not in ids]
    return rows


def job_rows(gcs) -> list[dict]:
    drivers = {w["job_id"]: w for w in worker_rows(gcs)
               if w["worker_type"] == "DRIVER" and w.get("job_id")}
    rows = []
    for job_id, r in gcs.all_jobs().items():
        driver = drivers.get(job_id)
        if driver is None:
            status = "UNKNOWN"
        elif driver["is_alive"]:
            status = "RUNNING"
        else:
            status = "SUCCEEDED" if driver["exit_type"] == "INTENDED_SYSTEM_EXIT" else "FAILED"
        rows.append({"job_id": job_id, "submission_id": None, "type": "DRIVER", "status": status,
                     "entrypoint": "", "message": None, "error_type": None,
                     "driver_info": {"id": job_id, "pid": r.driver_pid,
                                     "node_ip_address": (driver or {}).get("ip")},
                     "start_time": int(r.start * 1000) if r.start else None,
                     "end_time": (driver or {}).get("end_time_ms"), "namespace": r.namespace,
                     "cwd": r.cwd})
    return rows


def object_rows(gcs, wait_s: float = OBJECT_REPORT_WAIT_S) -> list[dict]:
    """Objects reported by every live process, with spilled copies marked."""
    fresh = gcs.want_object_reports(OBJECT_REPORTS_FOR_S)
    from raylite.core import task_events
    recorder = task_events.RECORDER
    if recorder is not None:
        try:
            recorder.flush()   # this process reports at once
        except Exception:
            pass
    if not fresh:
        time.sleep(wait_s)
    spilled = set()
    for stats in gcs.store_stats().values():
        spilled.update(stats.get("spilled_ids", ()))
    rows = []
    for blob in gcs.object_reports():
        try:
            report = msgpack.unpackb(blob, raw=False)
        except Exception:
            continue
        for obj in report:
            obj.setdefault("attempt_number", 0)
            obj["spilled"] = obj["object_id"] in spilled
            rows.append(obj)
    rows.sort(key=lambda o: o.get("object_size", 0), reverse=True)
    return rows


def placement_group_rows(gcs) -> list[dict]:
    """Placement groups from the GCS client of raylite.util.placement_group; [] in a
    build without them."""
    read = getattr(gcs, "all_placement_groups", None)
    if read is None:
        return []
    rows = []
    for pg_id, r in read().items():
        nodes = list(getattr(r, "bundle_nodes", None) or [])
        bundles = [{"bundle_id": f"{pg_id}:{i}", "node_id": (nodes[i] if i < len(nodes) else "")
                    or None, "unit_resources": dict(b)} for i, b in enumerate(r.bundles)]
        rows.append({"placement_group_id": pg_id, "name": r.name,
                     "creator_job_id": r.job_id or None, "state": r.state, "bundles": bundles,
                     "is_detached": r.detached, "strategy": r.strategy,
                     "stats": {"scheduling_attempt": getattr(r, "attempts", 0),
                               "created_at": getattr(r, "created_at", 0.0)}})
    return rows


# ---- public API (Ray's names) ---------------------------------------------------------
def _lister(reader, columns, detail_columns):
    def list_fn(address: str | None = None, filters=None, limit: int = DEFAULT_LIMIT,
                timeout: int = 30, detail: bool = False, raise_on_missing_output: bool = True,
                _explain: bool = False) -> list[StateRow]:
        return _finish(_with_gcs(address, reader), filters, columns, detail_columns, detail, limit)
    return list_fn


list_tasks = _lister(task_rows, task_table.TASK_COLUMNS, task_table.TASK_DETAIL_COLUMNS)
list_actors = _lister(actor_rows, ACTOR_COLUMNS, ACTOR_DETAIL)
list_nodes = _lister(node_rows, NODE_COLUMNS, NODE_DETAIL)
list_workers = _lister(worker_rows, WORKER_COLUMNS, WORKER_DETAIL)
list_jobs = _lister(job_rows, JOB_COLUMNS, JOB_DETAIL)
list_objects = _lister(object_rows, OBJECT_COLUMNS, OBJECT_DETAIL)
list_placement_groups = _lister(placement_group_rows, PG_COLUMNS, PG_DETAIL)
list_tasks.__doc__ = "Task attempts (Ray's TaskState fields); see the module docstring."
list_actors.__doc__ = "Actors (Ray's ActorState fields)."
list_nodes.__doc__ = "Nodes (Ray's NodeState fields, plus object-store use with detail)."
list_workers.__doc__ = "Driver and worker processes (Ray's WorkerState fields)."
list_jobs.__doc__ = "Jobs, one per driver (Ray's JobState fields)."
list_objects.__doc__ = "Objects referenced in the cluster (Ray's ObjectState fields)."
list_placement_groups.__doc__ = "Placement groups ([] until any are recorded)."

KINDS = {"tasks": list_tasks, "actors": list_actors, "nodes": list_nodes,
         "workers": list_workers, "jobs": list_jobs, "objects": list_objects,
         "placement-groups": list_placement_groups, "placement_groups": list_placement_groups}
_ID_FIELDS = {"tasks": "task_id", "actors": "actor_id", "nodes": "node_id",
              "workers": "worker_id", "jobs": "job_id", "objects": "object_id",
              "placement-groups": "placement_group_id", "placement_groups": "placement_group_id"}


def get(kind: str, id: str, address: str | None = None, timeout: int = 30):
    """The row of one ``kind`` ("tasks", "actors", ...) whose id is (or starts with)
    ``id``, with every column; None when there is none. For tasks, a list of its
    attempts (as Ray's get_task). Raises ValueError for an unknown kind."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; one of {sorted(KINDS)}")
    field = _ID_FIELDS[kind]
    rows = [r for r in KINDS[kind](address, limit=None, detail=True)
            if str(r.get(field) or "").startswith(id.lower())]
    if kind == "tasks":
        return rows or None
    return rows[0] if rows else None


def get_task(id, address: str | None = None, timeout: int = 30):
    """The attempts of a task (by id, prefix, or an ObjectRef it returned), or None."""
    if not isinstance(id, str):
        id = id.task_id().hex()
    return get("tasks", id, address)


def get_actor(id: str, address: str | None = None, timeout: int = 30):
    return get("actors", id, address)


def get_node(id: str, address: str | None = None, timeout: int = 30):
    return get("nodes", id, address)


def get_worker(id: str, address: str | None = None, timeout: int = 30):
    return get("workers", id, address)


def get_job(id: str, address: str | None = None, timeout: int = 30):
    return get("jobs", id, address)


def get_objects(id: str, address: str | None = None, timeout: int = 30) -> list:
    """Every reference to the object (one per process holding it)."""
    return [r for r in list_objects(address, limit=None, detail=True)
            if r["object_id"].startswith(id.lower())]


def get_placement_group(id: str, address: str | None = None, timeout: int = 30):
    return get("placement-groups", id, address)


def cluster_status(address: str | None = None) -> dict:
    """What `raylite status --json` prints: nodes (with resources used and object-store
    use), cluster totals, pending and infeasible demand, object-store totals."""
    from raylite.observability.cluster_status import cluster_status as read
    return _with_gcs(address, read)


def summarize_tasks(address: str | None = None, timeout: int = 30, **_ignored) -> dict:
    """Ray's TaskSummaries: per function or class name, counts by state; plus
    ``dropped_events``, task events dropped under load (those tasks may be missing)."""
    def read(gcs):
        summary = task_table.summarize_tasks(task_rows(gcs))
        summary["dropped_events"] = sum(gcs.dropped_task_events().values())
        return summary
    return _with_gcs(address, read)


def summarize_actors(address: str | None = None, timeout: int = 30, **_ignored) -> dict:
    """Ray's ActorSummaries: per class, counts by state."""
    summary: dict[str, dict] = {}
    rows = _with_gcs(address, actor_rows)
    for row in rows:
        group = summary.setdefault(row["class_name"], {"class_name": row["class_name"],
                                                       "state_counts": {}})
        group["state_counts"][row["state"]] = group["state_counts"].get(row["state"], 0) + 1
    return {"summary": summary, "total_actors": len(rows), "summary_by": "class"}


def summarize_objects(address: str | None = None, timeout: int = 30, **_ignored) -> dict:
    """Ray's ObjectSummaries: per call site, counts, sizes and reference kinds."""
    rows = _with_gcs(address, object_rows)
    summary: dict[str, dict] = {}
    for row in rows:
        group = summary.setdefault(row["call_site"], {
            "total_objects": 0, "total_size_mb": 0.0, "total_num_workers": set(),
            "total_num_nodes": set(), "task_state_counts": {}, "ref_type_counts": {}})
        group["total_objects"] += 1
        group["total_size_mb"] += max(row["object_size"], 0) / 2**20
        group["total_num_workers"].add(row["worker_id"])
        group["total_num_nodes"].add(row["node_id"])
        for name, key in (("task_state_counts", "task_status"), ("ref_type_counts", "reference_type")):
            group[name][row[key]] = group[name].get(row[key], 0) + 1
    for group in summary.values():
        group["total_num_workers"] = len(group["total_num_workers"])
        group["total_num_nodes"] = len(group["total_num_nodes"])
    from raylite.core.task_events import RECORD_SITES
    return {"summary": summary, "total_objects": len(rows),
            "total_size_mb": sum(max(r["object_size"], 0) for r in rows) / 2**20,
            "callsite_enabled": RECORD_SITES, "summary_by": "callsite"}


__all__ = ["list_tasks", "list_actors", "list_objects", "list_nodes", "list_workers", "list_jobs",
           "list_placement_groups", "get_task", "get_actor", "get_node", "get_worker", "get_job",
           "get_objects", "get_placement_group", "summarize_tasks", "summarize_actors",
           "summarize_objects", "get", "cluster_status", "StateRow"]
