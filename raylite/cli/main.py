"""`raylite start --head | --address`, `raylite stop`; status, list, get, summary, timeline,
memory and logs are registered from their own modules (status_cmd, state_cmds, ...).

`start` launches long-lived processes in their own session (they outlive the shell);
the head records its address and secrets in a 0600 file so local drivers can
`ray.init(address="auto")`.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import time
import uuid

from raylite.exceptions import AuthenticationError
from raylite.processes import pid_alive
from raylite.security.files import append_private, write_secret
from raylite.security.tokens import connect_gcs, redis_password, token_from_environment
from raylite.session import CURRENT_CLUSTER_FILE, SESSION_ROOT, new_session, session_root

TOKEN_ON_ARGV = ("raylite start: --token is not accepted: a command line is readable by every "
                 "local user (/proc/*/cmdline). Pass the cluster token in the RAYLITE_TOKEN "
                 "environment variable or with --token-file PATH (a file of mode 0600).")


def _parse_resources(text: str) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError as err:
        raise SystemExit(f"--resources must be JSON, e.g. '{{\"x\": 1}}': {err}") from None
    if not isinstance(value, dict):
        raise SystemExit("--resources must be a JSON object")
    return value


def cmd_start(args) -> int:
    from raylite.cluster import detect_gpus
    from raylite.gcs.redis_server import start_redis
    from raylite.scheduler.launch import start_scheduler

    if not args.head and not args.address:
        print("raylite start needs --head or --address=HOST:PORT", file=sys.stderr)
        return 2
    if args.token:
        print(TOKEN_ON_ARGV, file=sys.stderr)
        return 2
    try:
        token = token_from_environment(args.token_file)
    except (OSError, ValueError) as err:
        print(f"raylite start: cannot use the token file: {err}", file=sys.stderr)
        return 2
    if not args.head and not token:
        print("joining a cluster needs its token: set RAYLITE_TOKEN or pass --token-file PATH",
              file=sys.stderr)
        return 2
    from raylite.cli.tls_flags import join_hint, recorded, tls_from_arguments
    from raylite.security.exposure import warn_if_exposed
    tls = tls_from_arguments(args)   # exits 2 on incomplete files or a key others can read
    warn_if_exposed(args.host, tls=tls is not None)
    from raylite.object_store.store import sweep_stale_stores
    from raylite.session import SHM_PREFIX, SHM_ROOT
    sweep_stale_stores(SHM_ROOT, SHM_PREFIX)
    session = new_session()
    total = {"CPU": float(args.num_cpus if args.num_cpus is not None else os.cpu_count() or 1),
             "GPU": float(args.num_gpus if args.num_gpus is not None else detect_gpus())}
    from raylite.cluster import default_memory_resource
    total["memory"] = float(default_memory_resource())
    total.update({k: float(v) for k, v in _parse_resources(args.resources).items()})
    total = {k: v for k, v in total.items() if v}
    node_id = uuid.uuid4().hex
    if args.head:
        token = token or secrets.token_hex(16)
        redis_proc, port, sock = start_redis(session.redis_dir, redis_password(token), args.host,
                                             args.port, tie_to_parent=False)
        from raylite.protocol.channels import advertised_host
        gcs_address = f"{advertised_host(args.host)}:{port}"
        gcs_socket = sock
    else:
        gcs_address, gcs_socket, redis_proc = args.address, "", None
    try:
        from raylite.gcs.signing import signing_key
        connect_gcs(gcs_address, redis_password(token), unix_socket=gcs_socket or None,
                    connect_timeout=15, signing_key=signing_key(token)).close()
    except AuthenticationError as err:
        print(f"raylite start: {err}", file=sys.stderr)
        _stop_redis(redis_proc)
        return 1
    except Exception as err:
        print(f"cannot reach the GCS at {gcs_address}: {err}", file=sys.stderr)
        return 1
    ready = os.path.join(session.root, "scheduler.ready")
    sched = start_scheduler(session=session, node_id=node_id, token=token, gcs_address=gcs_address,
                            redis_password=redis_password(token), gcs_socket=gcs_socket, host=args.host,
                            resources=total, object_store_memory=args.object_store_memory or 0,
                            head=args.head, detached=True, ready_file=ready,
                            metrics_export_port=args.metrics_export_port)
    deadline = time.monotonic() + 30
    while not os.path.exists(ready):
        if sched.poll() is not None or time.monotonic() > deadline:
            print(f"the node scheduler failed to start; see {session.logs}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    with open(ready) as f:
        address = f.read().strip()
    _remember_session(session.root, redis_proc.pid if redis_proc else 0)
    from raylite.cli.observe_flags import start_head_dashboard
    dashboard_url = start_head_dashboard(args, session=session, token=token, gcs_socket=gcs_socket,
                                         redis_password=redis_password(token),
                                         gcs_address=gcs_address, scheduler_pid=sched.pid)
    if args.head:
        assert redis_proc is not None  # the head started Redis above
        session_root()
        token_file = os.path.join(session.root, "token")
        write_secret(token_file, token + "\n")
        write_secret(CURRENT_CLUSTER_FILE, json.dumps(
            {"gcs_address": gcs_address, "password": redis_password(token), "token": token,
             "token_file": token_file, "session": session.root, "redis_pid": redis_proc.pid,
             "dashboard_url": dashboard_url, **recorded(tls)}))
        print(f"raylite head started: GCS at {gcs_address}, node scheduler at {address}")
        print("  connect a driver here:   ray.init(address=\"auto\")")
        # Never the token itself: terminals and CI logs are not secret.
        print(f"  cluster token (mode 0600): {token_file}")
        if dashboard_url:
            print(f"  dashboard:               {dashboard_url}  (log in with the token)")
        print(f"  join another node:       raylite start --token-file={token_file} "
              f"--address={gcs_address}")
        if join_hint(tls):
            print(join_hint(tls))
    else:
        print(f"raylite node {node_id[:8]} joined {gcs_address} (scheduler at {address})")
    if args.block:
        try:
            while sched.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            sched.send_signal(signal.SIGTERM)
            sched.wait(10)
    return 0


STARTED_FILE = os.path.join(SESSION_ROOT, "started_sessions")


def _remember_session(root: str, redis_pid: int) -> None:
    append_private(STARTED_FILE, json.dumps({"session": root, "redis_pid": redis_pid}) + "\n")


def _stop_redis(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except Exception:
            proc.kill()


def _started() -> list[dict]:
    try:
        with open(STARTED_FILE) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def _started_sessions() -> list[str]:
    return [entry["session"] for entry in _started()]


def _our_processes(everything: bool) -> list[tuple[int, str]]:
    """(pid, cmdline) of the schedulers and redis servers `raylite start` launched here
    (with ``everything``: every raylite process, embedded clusters included)."""
    sessions = _started_sessions()
    redis_pids = {entry["redis_pid"] for entry in _started() if entry.get("redis_pid")}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "redis-server" in cmd and int(entry) in redis_pids:
            found.append((int(entry), cmd))
            continue
        ours = ("raylite.scheduler" in cmd or "raylite.core.worker_main" in cmd
                or "raylite.dashboard" in cmd)
        if ours and (everything or any(root + " " in cmd + " " for root in sessions)):
            found.append((int(entry), cmd))
    return found


def cmd_stop(args) -> int:
    procs = _our_processes(args.force)
    sig = signal.SIGKILL if args.force else signal.SIGTERM
    # Schedulers first: they tear down their workers and shared memory.
    order = sorted(procs, key=lambda p: 0 if "raylite.scheduler " in p[1] else 1)
    for pid, _ in order:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(pid_alive(pid) for pid, _ in procs):
        time.sleep(0.1)
    for pid, _ in procs:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    import glob
    import shutil

    from raylite.session import SHM_PREFIX, SHM_ROOT, session_from_root
    if args.force:
        leftovers = glob.glob(os.path.join(SHM_ROOT, SHM_PREFIX + "*"))
    else:
        leftovers = [p for root in _started_sessions()
                     for p in glob.glob(session_from_root(root).shm_dir("") + "*")]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    for path in (CURRENT_CLUSTER_FILE, STARTED_FILE):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    print(f"stopped {len(procs)} raylite process(es)")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="raylite", description="raylite cluster control")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="start a head node (--head) or join a cluster (--address)")
    s.add_argument("--head", action="store_true")
    s.add_argument("--address", default="", help="GCS address HOST:PORT of the head to join")
    s.add_argument("--port", type=int, default=6379, help="GCS (Redis) port on the head")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind and advertise (default loopback only)")
    s.add_argument("--num-cpus", type=float, default=None)
    s.add_argument("--num-gpus", type=float, default=None)
    s.add_argument("--resources", default="{}", help="JSON dict of custom resources")
    s.add_argument("--object-store-memory", type=int, default=0)
    s.add_argument("--token", default="", help=argparse.SUPPRESS)  # refused: see TOKEN_ON_ARGV
    s.add_argument("--token-file", default="",
                   help="file (mode 0600) holding the cluster token; else $RAYLITE_TOKEN; "
                        "a head generates one when neither is given")
    s.add_argument("--block", action="store_true", help="stay in the foreground")
    from raylite.cli.tls_flags import add_tls_arguments
    add_tls_arguments(s)
    from raylite.cli.observe_flags import add_start_flags
    add_start_flags(s)
    s.set_defaults(fn=cmd_start)
    s = sub.add_parser("stop", help="stop the raylite nodes `raylite start` launched here")
    s.add_argument("--force", action="store_true",
                   help="SIGKILL every raylite process on this machine, embedded clusters too")
    s.set_defaults(fn=cmd_stop)
    from raylite.cli import logs_cmd, memory_cmd, state_cmds, status_cmd
    for module in (status_cmd, state_cmds, memory_cmd, logs_cmd):
        module.register(sub)
    args = p.parse_args(argv)
    from raylite.security.files import InsecurePathError
    try:
        return args.fn(args)
    except InsecurePathError as err:
        print(f"raylite {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
