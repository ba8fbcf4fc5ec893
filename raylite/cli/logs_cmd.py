"""`raylite logs`: list the log files of every node, or print/follow one of them.

    raylite logs                          # files per node (session directory logs/)
    raylite logs worker-1a2b3c4d5e6f.log  # a file by name (or a path)
    raylite logs 1a2b3c                   # a worker, actor or task id (a prefix will do)
    raylite logs 12345 --tail 50 --follow # a worker or actor by pid

Nodes write logs into their session directory. Files of nodes on this machine are read
directly; those of nodes on other machines through the node's scheduler (ListLogs /
ReadLog, with the cluster token), --follow included.
"""
from __future__ import annotations

import os
import sys
import time

from raylite.cli.tables import fmt_bytes
from raylite.exceptions import AuthenticationError
from raylite.scheduler import log_files


def log_dirs(nodes: dict) -> list[tuple[str, str, bool]]:
    """(node id, logs directory, readable here) per node, one per session directory."""
    seen: set = set()
    out = []
    for node_id, record in nodes.items():
        if not record.session or record.session in seen:
            continue
        seen.add(record.session)
        path = os.path.join(record.session, "logs")
        out.append((node_id, path, os.path.isdir(path)))
    return out


def worker_id_for(target: str, gcs) -> str | None:
    """The worker id (hex) that ``target`` names: a pid, or a worker, actor or task id
    (or prefix). None when nothing matches."""
    from raylite.protocol import common_pb2
    target = target.lower()
    workers = gcs.worker_infos()
    if target.isdigit():
        for info in workers:
            if str(info.get("pid")) == target:
                return info["worker_id"]
    for info in workers:
        if info.get("worker_id", "").startswith(target):
            return info["worker_id"]
    for actor_id, record in gcs.all_actors().items():
        if actor_id.startswith(target) or (target.isdigit() and str(record.pid) == target):
            if record.address:
                address = common_pb2.Address.FromString(record.address)
                return address.worker_id
    from raylite.util.state import task_rows
    for row in task_rows(gcs):
        if row["task_id"].startswith(target) and row["worker_id"]:
            return row["worker_id"]
    return None


def find_log(target: str, dirs, gcs) -> str | None:
    """The log file ``target`` names (see the module docstring), or None."""
    if os.path.sep in target and os.path.isfile(target):
        return target
    readable = [path for _, path, ok in dirs if ok]
    for path in readable:
        if os.path.isfile(os.path.join(path, target)):
            return os.path.join(path, target)
    worker_id = worker_id_for(target, gcs)
    if worker_id:
        for path in readable:
            candidate = os.path.join(path, f"worker-{worker_id[:12]}.log")
            if os.path.isfile(candidate):
                return candidate
    return None


def cluster_token() -> str:
    """The token to dial node schedulers with: $RAYLITE_TOKEN, else the one `raylite
    start --head` recorded on this machine ("" when neither)."""
    from raylite.cluster import read_current_cluster
    token = os.environ.get("RAYLITE_TOKEN", "")
    if token:
        return token
    try:
        return read_current_cluster().get("token", "")
    except ConnectionError:
        return ""


class RemoteLog:
    """A log file on another machine's node, read through its scheduler."""

    def __init__(self, stub, name: str):
        self.stub, self.name = stub, name

    def read(self, max_bytes: int = log_files.MAX_READ_BYTES):
        """(tail bytes, file size), or None when the node has no such file.
        Raises grpc.RpcError (a raylite error) when the node does not answer."""
        from raylite.protocol import node_pb2
        reply = self.stub.ReadLog(node_pb2.ReadLogRequest(name=self.name, max_bytes=max_bytes),
                                  timeout=10)
        return (reply.data, reply.size) if reply.found else None


def find_remote_log(target: str, nodes: dict, dirs, gcs, token: str) -> RemoteLog | None:
    """The log ``target`` names on a live node whose logs are not on this machine."""
    names = [target] if log_files.safe_name(target) else []
    worker_id = worker_id_for(target, gcs)
    if worker_id:
        names.append(f"worker-{worker_id[:12]}.log")
    for node_id, _, readable in dirs:
        record = nodes[node_id]
        if readable or not record.alive or not token:
            continue
        stub = log_files.node_stub(record, token)
        for name in names:
            try:
                if RemoteLog(stub, name).read(1) is not None:
                    return RemoteLog(stub, name)
            except Exception:
                break   # that node does not answer: try the others
    return None


def follow_remote(remote: RemoteLog, size: int, poll_s: float = 0.5) -> None:
    """Print what is appended to a remote log until interrupted."""
    while True:
        time.sleep(poll_s)
        now = remote.read(1)
        if now is None:
            return
        grown = now[1] - size
        if grown > 0:
            data, size = remote.read(grown)
            sys.stdout.write(data.decode(errors="replace"))
            sys.stdout.flush()
        elif grown < 0:   # rotated or truncated: start over from its end
            size = now[1]


def tail_lines(path: str, n: int) -> list[str]:
    """The last ``n`` lines of a file (reads at most the last few MiB)."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - (4 << 20)))
        data = f.read()
    lines = data.decode(errors="replace").splitlines()
    return lines[-n:] if n > 0 else lines


def follow(path: str, poll_s: float = 0.2) -> None:
    """Print what is appended to ``path`` until interrupted."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        while True:
            chunk = f.read()
            if chunk:
                sys.stdout.write(chunk.decode(errors="replace"))
                sys.stdout.flush()
            else:
                time.sleep(poll_s)


def cmd_logs(args) -> int:
    from raylite.observability.connect import open_gcs
    try:
        gcs, close = open_gcs(args.address or None)
    except (ConnectionError, AuthenticationError) as err:
        print(f"raylite logs: {err}", file=sys.stderr)
        return 1
    try:
        nodes = gcs.nodes()
        dirs = log_dirs(nodes)
        if not args.target:
            for node_id, path, ok in dirs:
                if args.node_id and not node_id.startswith(args.node_id):
                    continue
                record = nodes[node_id]
                print(f"node {node_id[:8]} ({record.host or record.address}"
                      f"{'' if record.alive else ', dead'}): {path}")
                files = ([(f.name, f.size) for f in log_files.list_logs(path)] if ok
                         else _remote_listing(record))
                if files is None:
                    print("  (on another machine, which did not answer)")
                    continue
                for name, size in sorted(files):
                    print(f"  {name:<40} {fmt_bytes(size)}")
            return 0
        found = find_log(args.target, dirs, gcs)
        remote = None if found else find_remote_log(args.target, nodes, dirs, gcs, cluster_token())
    finally:
        if close:
            gcs.close()
    if remote is not None:
        return _print_remote(remote, args)
    if found is None:
        print(f"raylite logs: no log file for {args.target!r} on any node "
              "(run `raylite logs` to list them)", file=sys.stderr)
        return 1
    for line in tail_lines(found, args.tail):
        print(line)
    if args.follow:
        try:
            follow(found)
        except KeyboardInterrupt:
            pass
    return 0


def _remote_listing(record) -> list[tuple[str, int]] | None:
    """(name, size) of a live remote node's log files, None when it cannot be asked."""
    from raylite.protocol import common_pb2
    token = cluster_token()
    if not record.alive or not token:
        return None
    try:
        reply = log_files.node_stub(record, token).ListLogs(common_pb2.Empty(), timeout=10)
    except Exception:
        return None
    return [(f.name, f.size) for f in reply.files]


def _print_remote(remote: RemoteLog, args) -> int:
    got = remote.read()
    if got is None:
        print(f"raylite logs: {remote.name} is gone", file=sys.stderr)
        return 1
    data, size = got
    lines = data.decode(errors="replace").splitlines()
    for line in lines[-args.tail:] if args.tail > 0 else lines:
        print(line)
    if args.follow:
        try:
            follow_remote(remote, size)
        except KeyboardInterrupt:
            pass
    return 0


def register(sub) -> None:
    s = sub.add_parser("logs", help="list log files per node, or print one (by name, worker, "
                                    "actor or task id, or pid)")
    s.add_argument("target", nargs="?", default="")
    s.add_argument("--tail", type=int, default=1000, help="last N lines (0: all)")
    s.add_argument("--follow", "-f", action="store_true")
    s.add_argument("--node-id", default="", help="only this node (id prefix) when listing")
    s.add_argument("--address", default="")
    s.set_defaults(fn=cmd_logs)
