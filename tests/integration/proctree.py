"""What runs on this machine, read from /proc: process trees, liveness, and what a
cluster left behind (processes and /dev/shm entries). Helpers of faults.py."""
from __future__ import annotations

import glob
import os
import signal

import pytest

from tests.conftest import wait_until  # noqa: F401  (re-exported for faults.py)


# ---- /proc -------------------------------------------------------------------------------
def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def cmdline(pid: int) -> list[str]:
    return [part.decode(errors="replace") for part in _read(f"/proc/{pid}/cmdline").split(b"\0") if part]


def _stat(pid: int) -> tuple[str, int]:
    """(state letter, parent pid) of ``pid``; ("X", 0) when it is gone."""
    raw = _read(f"/proc/{pid}/stat").decode(errors="replace")
    try:
        fields = raw.rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (IndexError, ValueError):
        return "X", 0


def parent_pid(pid: int) -> int:
    """The parent of ``pid`` (0 when it is gone)."""
    return _stat(pid)[1]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has already exited)."""
    return _stat(pid)[0] not in ("X", "Z")


def start_time(pid: int) -> int:
    """Clock ticks since boot at which ``pid`` started (tells a reused pid apart)."""
    raw = _read(f"/proc/{pid}/stat").decode(errors="replace")
    try:
        return int(raw.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return -1


def all_pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for pid in all_pids():
        state, ppid = _stat(pid)
        if state not in ("X", "Z"):
            out.setdefault(ppid, []).append(pid)
    return out


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children, grandchildren, ...)."""
    kids = children_map()
    out, todo = [], list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def children_running(parent: int, marker: str) -> list[int]:
    """Direct children of ``parent`` whose command line contains ``marker``."""
    return [p for p in children_map().get(parent, []) if marker in " ".join(cmdline(p))]


def sigkill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_dead(pids, timeout: float = 10.0) -> None:
    """Fails the test when one of ``pids`` still runs after ``timeout``."""
    pids = list(pids)
    if not wait_until(lambda: not any(alive(p) for p in pids), timeout):
        left = [f"{p} {' '.join(cmdline(p))}" for p in pids if alive(p)]
        pytest.fail(f"processes still alive {timeout}s after SIGKILL: {left}")


# ---- leftovers ---------------------------------------------------------------------------
class Leftovers:
    """What of the clusters under one RAYLITE_TMPDIR still exists on this machine.

    A process belongs to them when its command line or environment mentions the run
    directory (schedulers, zygotes, workers, drivers), when it is one of their
    redis-servers (its title is ``redis-server HOST:PORT``), or when its pid was
    seen earlier in a node's process tree (``remember``)."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir.rstrip("/")
        self.gcs_addresses: set[str] = set()
        self.remembered: dict[int, int] = {}   # pid -> start time

    def remember(self, pids) -> None:
        for pid in pids:
            self.remembered.setdefault(pid, start_time(pid))

    def processes(self) -> list[str]:
        me = os.getpid()
        marker = self.run_dir.encode()
        found = {}
        for pid in all_pids():
            if pid == me or not alive(pid):
                continue
            cmd = _read(f"/proc/{pid}/cmdline")
            hit = marker in cmd or marker in _read(f"/proc/{pid}/environ")
            hit = hit or (b"redis-server" in cmd and any(a.encode() in cmd for a in self.gcs_addresses))
            hit = hit or (pid in self.remembered and self.remembered[pid] == start_time(pid))
            if hit:
                found[pid] = " ".join(cmdline(pid))
        return [f"{pid} {cmd}" for pid, cmd in sorted(found.items())]

    def shm_entries(self) -> list[str]:
        out = []
        for session in glob.glob(os.path.join(self.run_dir, "s-*")):
            name = os.path.basename(session)[2:]
            out += glob.glob(f"/dev/shm/raylite-{name}-*") + glob.glob(f"/dev/shm/raylite-{name}")
        return sorted(out)

    def wait_gone(self, timeout: float = 15.0) -> tuple[list[str], list[str]]:
        """Poll until nothing is left; returns (processes, shm entries) still there."""
        wait_until(lambda: not self.processes() and not self.shm_entries(), timeout, 0.1)
        return self.processes(), self.shm_entries()

    def assert_gone(self, timeout: float = 15.0, what: str = "") -> None:
        procs, shm = self.wait_gone(timeout)
        assert not procs and not shm, (f"left behind {what}: processes={procs} /dev/shm={shm}")
