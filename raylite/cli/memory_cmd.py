"""`raylite memory`: every referenced object by size, as Ray's `ray memory`.

Rows come from the object reports every process sends while someone lists objects
(raylite.util.state.list_objects); call sites are recorded only with
RAYLITE_RECORD_REF_CREATION_SITES=1 (else "disabled").
"""
from __future__ import annotations

import sys

from raylite.cli.tables import dump_json, fmt_bytes, table
from raylite.exceptions import AuthenticationError

GROUP_BY = {"node": "node_id", "node_address": "node_id", "stack_trace": "call_site",
            "owner": "worker_id", "none": None}
SORT_BY = {"object_size": ("object_size", True), "reference_type": ("reference_type", False),
           "pid": ("pid", False)}


def memory_rows(objects: list[dict]) -> list[dict]:
    """The columns `raylite memory` shows, per object reference."""
    return [{"object_id": o["object_id"], "size": fmt_bytes(o["object_size"]),
             "owner": f"{o['type'].lower()} pid={o['pid']}" + ("" if o.get("is_owner") else " (borrower)"),
             "node": (o.get("node_id") or "")[:8],
             "where": _where(o),
             "reference_type": o["reference_type"], "call_site": o["call_site"]}
            for o in objects]


def _where(obj: dict) -> str:
    if obj.get("task_status") == "PENDING":
        return "pending"
    if obj.get("in_store"):
        return "spilled" if obj.get("spilled") else "pinned in store"
    return "inline" if obj.get("object_size", -1) >= 0 else "elsewhere"


def sort_objects(objects: list[dict], sort_by: str) -> list[dict]:
    """Sorted by a SORT_BY key (largest objects first for object_size)."""
    key, reverse = SORT_BY[sort_by]
    return sorted(objects, key=lambda o: (o.get(key) is None, o.get(key) or 0), reverse=reverse)


def cmd_memory(args) -> int:
    from raylite.observability.cluster_status import cluster_status
    from raylite.observability.connect import open_gcs
    from raylite.util.state import object_rows
    try:
        gcs, close = open_gcs(args.address or None)
    except (ConnectionError, AuthenticationError) as err:
        print(f"raylite memory: {err}", file=sys.stderr)
        return 1
    try:
        objects = sort_objects(object_rows(gcs), args.sort_by)
        nodes = cluster_status(gcs)["nodes"]
    finally:
        if close:
            gcs.close()
    group_key = GROUP_BY[args.group_by]
    if args.json:
        print(dump_json({"objects": objects, "nodes": [
            {k: n[k] for k in ("node_id", "object_store_used", "object_store_capacity",
                               "spilled_bytes")} for n in nodes]}))
        return 0
    print("======== object references ========")
    groups: dict = {}
    for o in objects[: args.limit] if args.limit else objects:
        groups.setdefault(o.get(group_key) if group_key else "", []).append(o)
    for name, members in groups.items():
        if group_key:
            total = sum(max(o["object_size"], 0) for o in members)
            print(f"--- {args.group_by} {name or '-'}: {len(members)} objects, {fmt_bytes(total)}")
        print(table(memory_rows(members)))
    if not objects:
        print("(no objects referenced)")
    print("======== object stores ========")
    for n in nodes:
        if n["state"] == "ALIVE":
            print(f"node {n['node_id'][:8]}: {fmt_bytes(n['object_store_used'])} / "
                  f"{fmt_bytes(n['object_store_capacity'])} used, "
                  f"{fmt_bytes(n['spilled_bytes'])} spilled")
    total = sum(max(o["object_size"], 0) for o in objects)
    print(f"{len(objects)} references, {fmt_bytes(total)} in all")
    return 0


def register(sub) -> None:
    s = sub.add_parser("memory", help="objects by size, owner, node, reference kind, call site")
    # Ray's spellings (NODE_ADDRESS, STACK_TRACE, OBJECT_SIZE, ...) work too.
    s.add_argument("--group-by", type=str.lower, choices=sorted(GROUP_BY), default="node")
    s.add_argument("--sort-by", type=str.lower, choices=sorted(SORT_BY), default="object_size")
    s.add_argument("--limit", type=int, default=1000)
    s.add_argument("--json", action="store_true")
    s.add_argument("--address", default="")
    s.set_defaults(fn=cmd_memory)
