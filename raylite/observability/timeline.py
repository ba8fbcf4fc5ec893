"""Task rows -> Chrome tracing events (chrome://tracing, Perfetto, ray.timeline()).

One complete event ("ph": "X") per execution that started, on process = node and
thread = worker (numeric ids, named by metadata events), times in microseconds.
Pure: rows come from raylite.observability.task_table.
"""
from __future__ import annotations

_COLORS = {"FINISHED": "thread_state_running", "FAILED": "terrible",
           "RUNNING": "thread_state_iowait"}


def chrome_events(rows: list[dict], now_ms: float) -> list[dict]:
    """The trace; a task still running ends at ``now_ms``."""
    events: list[dict] = []
    pids: dict[str, int] = {}
    tids: dict[tuple, int] = {}
    for row in sorted(rows, key=lambda r: r.get("start_time_ms") or 0):
        start = row.get("start_time_ms")
        if start is None:
            continue
        node = row.get("node_id") or "unknown"
        if node not in pids:
            pids[node] = len(pids) + 1
            events.append({"name": "process_name", "ph": "M", "pid": pids[node], "tid": 0,
                           "args": {"name": f"Node {node[:12]}"}})
        pid = pids[node]
        worker_pid = row.get("worker_pid") or 0
        tkey = (node, row.get("worker_id") or "")
        if tkey not in tids:
            tids[tkey] = int(worker_pid) or (len(tids) + 1)
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tids[tkey],
                           "args": {"name": f"worker {tkey[1][:12]} pid={worker_pid}"}})
        end = row.get("end_time_ms") or now_ms
        event = {"cat": "task" if row["type"] != "ACTOR_TASK" else "actor_task",
                 "name": row["name"] or row["task_id"], "ph": "X", "pid": pid,
                 "tid": tids[tkey], "ts": start * 1000.0, "dur": max(0.0, (end - start) * 1000.0),
                 "args": {"task_id": row["task_id"], "attempt_number": row["attempt_number"],
                          "state": row["state"], "job_id": row["job_id"],
                          "actor_id": row["actor_id"], "node_id": row["node_id"],
                          "worker_id": row["worker_id"], "worker_pid": worker_pid}}
        if row.get("error_type"):
            event["args"]["error_type"] = row["error_type"]
        color = _COLORS.get(row["state"])
        if color:
            event["cname"] = color
        events.append(event)
    return events
