"""Task-event entries merged into one row per task attempt, with Ray's TaskState fields.

Pure: entries come in as decoded maps (raylite.core.task_events writes them); the
owner and the executing worker each send their own, possibly in several rounds.
"""
from __future__ import annotations

# Later states win regardless of clocks (the owner's and worker's may differ).
STATE_RANK = {"NIL": -1, "PENDING_ARGS_AVAIL": 0, "PENDING_NODE_ASSIGNMENT": 1,
              "SUBMITTED_TO_WORKER": 2, "RUNNING": 3, "FINISHED": 4, "FAILED": 4}

# Ray's TaskState columns; those after DETAIL_FROM appear with detail=True only.
TASK_COLUMNS = ("task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type",
                "func_or_class_name", "parent_task_id", "node_id", "worker_id", "worker_pid",
                "error_type")
TASK_DETAIL_COLUMNS = ("language", "required_resources", "runtime_env_info",
                       "placement_group_id", "events", "profiling_data", "creation_time_ms",
                       "start_time_ms", "end_time_ms", "task_log_info", "error_message",
                       "is_debugger_paused", "call_site", "traceback")

TYPE_NAMES = {0: "NORMAL_TASK", 1: "ACTOR_CREATION_TASK", 2: "ACTOR_TASK"}


_TEMPLATE = {"task_id": "", "attempt_number": 0, "name": "", "state": "NIL", "job_id": "",
             "actor_id": None, "type": "NORMAL_TASK", "func_or_class_name": "",
             "parent_task_id": None, "node_id": None, "worker_id": None, "worker_pid": None,
             "error_type": None, "language": "PYTHON", "required_resources": {},
             "runtime_env_info": None, "placement_group_id": None, "events": None,
             "profiling_data": None, "creation_time_ms": None, "start_time_ms": None,
             "end_time_ms": None, "task_log_info": None, "error_message": None,
             "is_debugger_paused": None, "call_site": None, "traceback": None}


def merge_entries(batches, job_ids=None) -> list[dict]:
    """One row per (task_id, attempt_number), in first-seen order, from decoded event
    batches ({"where": {...} | None, "events": [...]}, see TaskEventBuffer.take);
    ``job_ids`` gives each batch's job (hex), else "".
    """
    rows: dict[tuple, dict] = {}
    seen: dict[tuple, list] = {}     # (task, attempt) -> [(state, ms), ...]
    types = TYPE_NAMES
    for index, batch in enumerate(batches):
        if not isinstance(batch, dict):
            continue
        where = batch.get("where") or {}
        job = job_ids[index] if job_ids is not None else ""
        for event in batch.get("events", ()):
            kind, task_id, attempt, ts = event[0], event[1], event[2], event[3]
            key = (task_id, attempt)
            row = rows.get(key)
            if row is None:
                row = rows[key] = dict(_TEMPLATE)
                row["task_id"] = task_id.hex()
                row["attempt_number"] = attempt
                row["job_id"] = job
                states = seen[key] = []
            else:
                states = seen[key]
            ms = int(ts * 1000)
            if kind == 2:
                state, error_type, message, tb, by_owner, began = event[4:10]
                row["end_time_ms"] = ms
                states.append((state, ms))
                if not by_owner:
                    row["name"] = event[10]
                    row["type"] = types.get(event[11], "NORMAL_TASK")
                    if event[12]:
                        row["actor_id"] = event[12].hex()
                if began is not None and row["start_time_ms"] is None:
                    row["start_time_ms"] = int(began * 1000)
                    states.append(("RUNNING", row["start_time_ms"]))
                if state == "FAILED":
                    row["error_type"] = error_type
                    row["error_message"] = message
                    row["traceback"] = tb or row["traceback"]
                if by_owner:
                    continue
            else:
                row["name"] = event[4]
                row["type"] = types.get(event[5], "NORMAL_TASK")
                if event[6]:
                    row["actor_id"] = event[6].hex()
                if kind == 0:
                    row["call_site"] = event[7] or None
                    row["required_resources"] = event[8] or {}
                    row["creation_time_ms"] = ms
                    states.append(("PENDING_NODE_ASSIGNMENT", ms))
                    continue
                if row["start_time_ms"] is None:   # else the end event brought it
                    row["start_time_ms"] = ms
                    states.append(("RUNNING", ms))
            if where:
                row["node_id"] = where.get("node_id")
                row["worker_id"] = where.get("worker_id")
                row["worker_pid"] = where.get("worker_pid")
    rank = STATE_RANK
    for key, row in rows.items():
        states = seen[key]
        if len(states) > 1:
            states.sort(key=lambda e: (rank.get(e[0], 0), e[1]))
        row["events"] = [{"state": s, "created_ms": t} for s, t in states]
        if states:
            row["state"] = states[-1][0]
        row["func_or_class_name"] = row["name"]
    return list(rows.values())


def apply_actor_deaths(rows: list[dict], dead_actor_ids: set) -> None:
    """A task still pending or running on an actor that died will never finish."""
    for row in rows:
        if row["actor_id"] in dead_actor_ids and row["state"] not in ("FINISHED", "FAILED"):
            row["state"] = "FAILED"
            row["error_type"] = row["error_type"] or "ACTOR_DIED"


def summarize_tasks(rows: list[dict]) -> dict:
    """Ray's TaskSummaries as a dict: per function or class name, state counts."""
    summary: dict[str, dict] = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for row in rows:
        key = row["name"] or row["func_or_class_name"]
        group = summary.setdefault(key, {"func_or_class_name": key, "type": row["type"],
                                         "state_counts": {}})
        counts = group["state_counts"]
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        totals[row["type"]] = totals.get(row["type"], 0) + 1
    return {"summary": summary, "total_tasks": totals["NORMAL_TASK"],
            "total_actor_tasks": totals["ACTOR_TASK"],
            "total_actor_scheduled": totals["ACTOR_CREATION_TASK"], "summary_by": "func_name"}


def pending_demand(rows: list[dict]) -> list[dict]:
    """Tasks and actors waiting for resources, grouped by the resources they ask:
    [{"resources": {...}, "count": n, "names": [...]}], largest count first."""
    groups: dict[tuple, dict] = {}
    for row in rows:
        if row["state"] != "PENDING_NODE_ASSIGNMENT" or not row["required_resources"]:
            continue
        key = tuple(sorted(row["required_resources"].items()))
        group = groups.setdefault(key, {"resources": dict(key), "count": 0, "names": []})
        group["count"] += 1
        if row["name"] not in group["names"] and len(group["names"]) < 5:
            group["names"].append(row["name"])
    return sorted(groups.values(), key=lambda g: -g["count"])
