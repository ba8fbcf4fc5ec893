"""What `raylite status` shows, as plain data (also ``raylite.util.state.cluster_status``).

Demand comes from the task events: tasks and actors the owners submitted that no
worker has started yet, grouped by the resources they ask for; a group no alive
node could ever hold is infeasible (it waits for a node to join, as in Ray).
"""
from __future__ import annotations


def cluster_status(gcs) -> dict:
    """Everything `raylite status` prints, as plain data."""
    from raylite.observability.task_table import pending_demand
    from raylite.scheduler.resources import missing
    from raylite.util.state import node_rows, task_rows
    nodes = node_rows(gcs)
    total: dict = {}
    used: dict = {}
    for node in nodes:
        node["resources_used"] = {}
        if node["state"] != "ALIVE":
            continue
        for k, v in node["resources_total"].items():
            free = node["resources_available"].get(k, v)
            node["resources_used"][k] = v - free
            total[k] = total.get(k, 0) + v
            used[k] = used.get(k, 0) + v - free
    alive_totals = [n["resources_total"] for n in nodes if n["state"] == "ALIVE"]
    pending: list[dict] = []
    infeasible: list[dict] = []
    for group in pending_demand(task_rows(gcs)):
        fits = any(not missing(group["resources"], t) for t in alive_totals)
        (pending if fits else infeasible).append(group)
    return {"nodes": nodes, "resources": {"total": total, "used": used},
            "pending_demand": pending, "infeasible_demand": infeasible,
            "object_store": {"used": sum(n["object_store_used"] for n in nodes),
                             "capacity": sum(n["object_store_capacity"] or 0 for n in nodes
                                             if n["state"] == "ALIVE"),
                             "spilled_bytes": sum(n["spilled_bytes"] for n in nodes)}}
