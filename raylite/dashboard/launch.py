"""Starting the dashboard process (used by ``raylite start --head`` and ``init``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

DEFAULT_PORT = 8265   # Ray's


def start_dashboard(*, session, token: str, gcs_address: str, redis_password: str,
                    gcs_socket: str = "", host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                    watch_pid: int = 0, embedded_driver_pid: int = 0,
                    detached: bool = False) -> tuple[subprocess.Popen, str]:
    """Spawn ``python -m raylite.dashboard``; returns (process, ready file path).
    Raises OSError when the process cannot start."""
    env = dict(os.environ)
    env["RAYLITE_TOKEN"] = token
    env["RAYLITE_GCS_PASSWORD"] = redis_password
    ready = os.path.join(session.root, f"dashboard.{os.getpid()}.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    # --session names the node's session so `raylite stop` finds this process.
    args = [sys.executable, "-m", "raylite.dashboard", "--session", session.root,
            "--gcs", gcs_address, "--host", host,
            "--port", str(port), "--ready-file", ready]
    if gcs_socket:
        args += ["--gcs-socket", gcs_socket]
    if watch_pid:
        args += ["--watch-pid", str(watch_pid)]
    if embedded_driver_pid:
        args += ["--embedded-driver-pid", str(embedded_driver_pid)]
    log = os.open(os.path.join(session.logs, "dashboard.log"),
                  os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                close_fds=True, start_new_session=detached, umask=0o077)
    finally:
        os.close(log)
    return proc, ready


def wait_dashboard(proc: subprocess.Popen, ready: str, timeout: float = 30.0) -> str:
    """The dashboard's URL once it listens. Raises RuntimeError when it failed to start
    or did not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(ready):
        if proc.poll() is not None:
            raise RuntimeError(f"the dashboard exited (code {proc.returncode}) before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the dashboard did not start within {timeout:.0f} s")
        time.sleep(0.05)
    with open(ready) as f:
        info = json.load(f)
    os.unlink(ready)
    if "error" in info:
        raise RuntimeError(f"the dashboard did not start: {info['error']}")
    return info["url"]
