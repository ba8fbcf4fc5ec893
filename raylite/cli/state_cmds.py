"""`raylite list|get|summary|timeline`: the state API (raylite.util.state) on the command line.

Each command reads the cluster started on this machine (or --address with
RAYLITE_TOKEN), prints a table or, with --json, JSON for scripts, and exits 1 with
one line on stderr when no cluster can be reached.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

from raylite.cli.tables import dump_json, table
from raylite.exceptions import AuthenticationError

KIND_NAMES = ["tasks", "actors", "objects", "nodes", "workers", "jobs", "placement-groups"]
GET_KINDS = {"task": "tasks", "actor": "actors", "object": "objects", "node": "nodes",
             "worker": "workers", "job": "jobs", "placement-group": "placement-groups"}
GET_KINDS.update({k: k for k in KIND_NAMES})


def _failed(command: str, err: BaseException) -> int:
    print(f"raylite {command}: {err}", file=sys.stderr)
    return 1


def cmd_list(args) -> int:
    from raylite.observability.filters import parse_filter
    from raylite.util import state
    try:
        filters = [parse_filter(f) for f in args.filter]
        rows = state.KINDS[args.kind](args.address or None, filters=filters,
                                      limit=args.limit, detail=args.detail)
    except ValueError as err:
        return _failed("list", err)
    except (ConnectionError, AuthenticationError) as err:
        return _failed("list", err)
    if args.json:
        print(dump_json(rows))
        return 0
    if not rows:
        print(f"no {args.kind}")
        return 0
    if args.detail:
        for row in rows:
            print(dump_json(row))
    else:
        print(table(rows))
    if args.limit is not None and len(rows) == args.limit:
        print(f"(showing the first {args.limit}; pass --limit N for more)", file=sys.stderr)
    return 0


def cmd_get(args) -> int:
    from raylite.util import state
    try:
        found = state.get(GET_KINDS[args.kind], args.id, args.address or None)
    except (ValueError, ConnectionError, AuthenticationError) as err:
        return _failed("get", err)
    if not found:
        print(f"raylite get: no {args.kind} with id {args.id}", file=sys.stderr)
        return 1
    print(dump_json(found))
    return 0


def cmd_summary(args) -> int:
    from raylite.util import state
    fn = {"tasks": state.summarize_tasks, "actors": state.summarize_actors,
          "objects": state.summarize_objects}[args.kind]
    try:
        summary = fn(args.address or None)
    except (ConnectionError, AuthenticationError) as err:
        return _failed("summary", err)
    if args.json:
        print(dump_json(summary))
        return 0
    groups = summary["summary"]
    if args.kind == "tasks":
        print(f"total tasks: {summary['total_tasks']}, actor tasks: "
              f"{summary['total_actor_tasks']}, actors scheduled: {summary['total_actor_scheduled']}")
        if summary.get("dropped_events"):
            print(f"({summary['dropped_events']} task events were dropped under load: "
                  "some tasks may be missing)")
        rows = [{"func_or_class_name": k, "type": g["type"], "state_counts": g["state_counts"]}
                for k, g in groups.items()]
    elif args.kind == "actors":
        print(f"total actors: {summary['total_actors']}")
        rows = [{"class_name": k, "state_counts": g["state_counts"]} for k, g in groups.items()]
    else:
        print(f"total objects: {summary['total_objects']}, "
              f"{summary['total_size_mb']:.2f} MiB, call sites "
              f"{'recorded' if summary['callsite_enabled'] else 'disabled'}")
        rows = [{"call_site": k, "total_objects": g["total_objects"],
                 "total_size_mb": round(g["total_size_mb"], 3),
                 "ref_type_counts": g["ref_type_counts"]} for k, g in groups.items()]
    print(table(rows))
    return 0


def cmd_timeline(args) -> int:
    import json

    from raylite.observability.connect import open_gcs
    from raylite.observability.timeline import chrome_events
    from raylite.util.state import task_rows
    try:
        gcs, close = open_gcs(args.address or None)
    except (ConnectionError, AuthenticationError) as err:
        return _failed("timeline", err)
    try:
        events = chrome_events(task_rows(gcs), time.time() * 1000)
    finally:
        if close:
            gcs.close()
    path = args.output or os.path.join(
        tempfile.gettempdir(), time.strftime("raylite-timeline-%Y-%m-%d_%H-%M-%S.json"))
    with open(path, "w") as f:
        json.dump(events, f)
    executions = sum(1 for e in events if e["ph"] == "X")
    print(f"wrote {executions} task executions to {path}; open it in https://ui.perfetto.dev "
          "or chrome://tracing")
    return 0


def register(sub) -> None:
    """Add list, get, summary and timeline to the CLI's subparsers."""
    s = sub.add_parser("list", help="list tasks, actors, objects, nodes, workers, jobs, "
                                    "placement-groups")
    s.add_argument("kind", choices=KIND_NAMES)
    s.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="keep rows where KEY=VALUE (or KEY!=VALUE); repeatable")
    s.add_argument("--limit", type=int, default=100)
    s.add_argument("--detail", action="store_true", help="every column")
    s.add_argument("--json", action="store_true")
    s.add_argument("--address", default="")
    s.set_defaults(fn=cmd_list)
    s = sub.add_parser("get", help="one task, actor, object, node, worker, job or placement group")
    s.add_argument("kind", choices=sorted(GET_KINDS))
    s.add_argument("id", help="the id, or a prefix of it")
    s.add_argument("--address", default="")
    s.set_defaults(fn=cmd_get)
    s = sub.add_parser("summary", help="tasks, actors or objects summarized")
    s.add_argument("kind", choices=["tasks", "actors", "objects"])
    s.add_argument("--json", action="store_true")
    s.add_argument("--address", default="")
    s.set_defaults(fn=cmd_summary)
    s = sub.add_parser("timeline", help="Chrome-tracing JSON of task and actor-method executions")
    s.add_argument("--output", "-o", default="", help="file to write (default: a file in /tmp)")
    s.add_argument("--address", default="")
    s.set_defaults(fn=cmd_timeline)
