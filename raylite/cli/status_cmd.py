"""`raylite status [--json]`: nodes, resources, pending and infeasible demand, object stores.

Demand comes from the task events: tasks and actors the owners submitted that no
worker has started yet, grouped by the resources they ask for; a group no alive
node could ever hold is infeasible (it waits for a node to join, as in Ray).
"""
from __future__ import annotations

import sys

from raylite.cli.tables import dump_json, fmt_bytes
from raylite.exceptions import AuthenticationError


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


def _amount(key: str, value: float) -> str:
    return fmt_bytes(value) if key in ("memory", "object_store_memory") else f"{value:g}"


def _resources(req: dict) -> str:
    return ", ".join(f"{k}: {_amount(k, v)}" for k, v in sorted(req.items()))


def render(status: dict) -> str:
    out = ["======== raylite cluster status ========"]
    for n in status["nodes"]:
        head = "  (head)" if n["is_head_node"] else ""
        why = f"  ({n['state_message']})" if n["state_message"] else ""
        out.append(f"node {n['node_id'][:8]}  {n['state']:<5}  {n['address']}{head}{why}")
        if n["state"] == "ALIVE":
            res = ", ".join(f"{_amount(k, n['resources_used'].get(k, 0))}/{_amount(k, v)} {k}"
                            for k, v in sorted(n["resources_total"].items()))
            out.append(f"    resources used/total: {res}")
            out.append(f"    object store: {fmt_bytes(n['object_store_used'])} / "
                       f"{fmt_bytes(n['object_store_capacity'])} used, "
                       f"{fmt_bytes(n['spilled_bytes'])} spilled")
    out.append("Resources (used / total):")
    for k, v in sorted(status["resources"]["total"].items()):
        out.append(f"  {_amount(k, status['resources']['used'].get(k, 0))}/{_amount(k, v)} {k}")
    store = status["object_store"]
    out.append(f"Object store: {fmt_bytes(store['used'])} / {fmt_bytes(store['capacity'])} used, "
               f"{fmt_bytes(store['spilled_bytes'])} spilled")
    out.append("Pending demand:")
    if not status["pending_demand"]:
        out.append("  (no pending tasks or actors)")
    for g in status["pending_demand"]:
        out.append(f"  {{{_resources(g['resources'])}}} * {g['count']} ({', '.join(g['names'])})")
    out.append("Infeasible demand (no node has these resources; waiting for one to join):")
    if not status["infeasible_demand"]:
        out.append("  (none)")
    for g in status["infeasible_demand"]:
        out.append(f"  {{{_resources(g['resources'])}}} * {g['count']} ({', '.join(g['names'])})")
    return "\n".join(out)


def cmd_status(args) -> int:
    from raylite.observability.connect import open_gcs
    try:
        gcs, close = open_gcs(args.address or None)
    except (ConnectionError, AuthenticationError) as err:
        print(f"raylite status: {err}", file=sys.stderr)
        return 1
    try:
        status = cluster_status(gcs)
    finally:
        if close:
            gcs.close()
    print(dump_json(status) if args.json else render(status))
    return 0


def register(sub) -> None:
    s = sub.add_parser("status", help="nodes, resource use, pending/infeasible demand, object stores")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--address", default="")
    s.set_defaults(fn=cmd_status)
