"""A node's log files, as the node scheduler serves them to `raylite logs` and the
dashboard on other machines (ListLogs / ReadLog) and as local readers open them.

Only plain file names inside the node's own logs directory are served: no path
separators, no dot files, no symlinks (opened with O_NOFOLLOW), so a caller holding
the token still cannot read anything else of the node.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass

MAX_READ_BYTES = 4 << 20   # one reply; callers ask for a tail, not a whole file


@dataclass(frozen=True)
class LogFile:
    name: str
    size: int
    mtime: float


def safe_name(name: str) -> bool:
    """True for a plain file name (what a logs directory holds), nothing else."""
    return bool(name) and "/" not in name and "\0" not in name and not name.startswith(".")


def list_logs(directory: str) -> list[LogFile]:
    """The regular files of ``directory``, newest first; [] when it cannot be read."""
    out = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        try:
            st = os.lstat(os.path.join(directory, name))
        except OSError:
            continue
        if safe_name(name) and stat.S_ISREG(st.st_mode):
            out.append(LogFile(name, st.st_size, st.st_mtime))
    out.sort(key=lambda f: -f.mtime)
    return out


def read_tail(directory: str, name: str, max_bytes: int) -> tuple[bytes, int] | None:
    """(the last ``max_bytes`` (at most MAX_READ_BYTES) of the file, its size), or None
    when ``name`` is not a plain regular file of ``directory``."""
    if not safe_name(name):
        return None
    try:
        fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            return None
        want = min(max_bytes if max_bytes > 0 else MAX_READ_BYTES, MAX_READ_BYTES)
        f.seek(max(0, st.st_size - want))
        return f.read(want), st.st_size


def node_stub(record, token: str):
    """A blocking, authenticated NodeScheduler stub for the node of ``record`` (its unix
    socket when that is on this machine, else its TCP address)."""
    from raylite.protocol import node_pb2_grpc
    from raylite.protocol.channels import AuthedStub, sync_channel, use_cluster_token
    use_cluster_token(token)
    target = record.address
    if record.uds and os.path.exists(record.uds[len("unix:"):]):
        target = record.uds
    return AuthedStub(node_pb2_grpc.NodeSchedulerStub(sync_channel(target)), token)
