"""Starting a node scheduler process (used by ray.init() and `raylite start`)."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def start_scheduler(*, session, node_id: str, token: str, gcs_address: str, redis_password: str,
                    gcs_socket: str = "", host: str = "127.0.0.1", resources: dict,
                    object_store_memory: int = 0, embedded_driver_pid: int = 0, redis_pid: int = 0,
                    head: bool = False, detached: bool = False, ready_file: str = "",
                    prestart: int = -1, metrics_export_port: int = -1) -> subprocess.Popen:
    """Spawn ``python -m raylite.scheduler``; secrets travel in its environment.

    An embedded scheduler dies with the driver (parent-death signal) and cleans up;
    a detached one (``raylite start``) runs in its own session. ``metrics_export_port``:
    -1 serves no /metrics, 0 any free port. Raises OSError when
    the process cannot start.
    """
    env = dict(os.environ)
    env["RAYLITE_TOKEN"] = token
    env["RAYLITE_GCS_PASSWORD"] = redis_password
    args = [sys.executable, "-m", "raylite.scheduler", "--session", session.root,
            "--node-id", node_id, "--gcs", gcs_address, "--host", host,
            "--resources", json.dumps(resources), "--object-store-memory", str(object_store_memory),
            "--prestart", str(prestart)]
    if gcs_socket:
        args += ["--gcs-socket", gcs_socket]
    if embedded_driver_pid:
        # It sets its own parent-death signal: no preexec_fn, since forking a process
        # whose gRPC threads are running (a second init) is not safe.
        args += ["--embedded-driver-pid", str(embedded_driver_pid)]
    if redis_pid:
        args += ["--redis-pid", str(redis_pid)]
    if head:
        args.append("--head")
    if metrics_export_port >= 0:
        args += ["--metrics-export-port", str(metrics_export_port)]
    if ready_file:
        args += ["--ready-file", ready_file]
    log = os.open(os.path.join(session.logs, f"scheduler-{node_id[:8]}.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        # umask 077: everything the node writes (logs, spill, sockets) and everything
        # its workers write is private to this user.
        return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                close_fds=True, start_new_session=detached, umask=0o077)
    finally:
        os.close(log)
