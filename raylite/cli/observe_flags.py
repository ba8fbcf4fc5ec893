"""The observability flags of ``raylite start``: the node's Prometheus endpoint
(``--metrics-export-port``) and the head's web dashboard (``--include-dashboard``,
``--dashboard-host``, ``--dashboard-port``), kept here so main.py only registers them."""
from __future__ import annotations

import argparse
import sys


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_start_flags(parser: argparse.ArgumentParser) -> None:
    from raylite.dashboard.launch import DEFAULT_PORT
    parser.add_argument("--metrics-export-port", type=int, default=0,
                        help="port of this node's Prometheus /metrics (0: any free port, "
                             "-1: none); bound on --host, recorded in the node table")
    parser.add_argument("--include-dashboard", type=_bool, default=True, metavar="BOOL",
                        help="serve the web dashboard from the head (default true)")
    parser.add_argument("--dashboard-host", default="127.0.0.1",
                        help="address the dashboard binds (default loopback only)")
    parser.add_argument("--dashboard-port", type=int, default=DEFAULT_PORT,
                        help=f"dashboard port (default {DEFAULT_PORT}; 0: any free port)")


def start_head_dashboard(args, *, session, token: str, redis_password: str, gcs_address: str,
                         gcs_socket: str, scheduler_pid: int) -> str:
    """Start the head's dashboard (it exits with the head scheduler); returns its URL, ''
    when disabled or when it could not start (one line on stderr: the cluster runs on)."""
    if not args.head or not args.include_dashboard:
        return ""
    from raylite.dashboard.launch import start_dashboard, wait_dashboard
    try:
        proc, ready = start_dashboard(session=session, token=token, gcs_address=gcs_address,
                                      redis_password=redis_password, gcs_socket=gcs_socket,
                                      host=args.dashboard_host, port=args.dashboard_port,
                                      watch_pid=scheduler_pid, detached=True)
        return wait_dashboard(proc, ready)
    except (OSError, RuntimeError) as err:
        print(f"raylite start: no dashboard: {err} (see {session.logs}/dashboard.log)",
              file=sys.stderr)
        return ""
