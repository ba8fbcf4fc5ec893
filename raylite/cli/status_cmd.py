"""`raylite status [--json]`: nodes, resources, pending and infeasible demand, object stores
(the data: raylite.observability.cluster_status)."""
from __future__ import annotations

import sys

from raylite.cli.tables import dump_json, fmt_bytes
from raylite.exceptions import AuthenticationError
from raylite.observability.cluster_status import cluster_status


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
