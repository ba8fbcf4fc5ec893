"""Session directories (logs, sockets, spill) are removed once their session is over,
keeping the newest ``RAYLITE_SESSION_RETENTION`` (default 10) of the dead ones.

Only directories named ``s-*`` directly under the per-user 0700 root, owned by us and
not symlinks, are considered; a session counts as live while the process that made it
(its pid leads the name) or any process naming its path on its command line (a node
scheduler) runs, or when it changed in the last minute (one being set up).
"""
from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass

from raylite.processes import pid_alive

log = logging.getLogger("raylite.session")

RECENT_S = 60.0


def retention() -> int:
    try:
        return max(0, int(os.environ.get("RAYLITE_SESSION_RETENTION", "10")))
    except ValueError:
        return 10


@dataclass(frozen=True)
class SessionDir:
    path: str
    mtime: float
    live: bool


def to_remove(sessions: list[SessionDir], keep: int) -> list[str]:
    """Paths of dead sessions beyond the newest ``keep`` of them (pure)."""
    dead = sorted((s for s in sessions if not s.live), key=lambda s: s.mtime, reverse=True)
    return [s.path for s in dead[keep:]]


def _creator_alive(name: str) -> bool:
    pid = _creator_pid(name)
    return pid > 0 and pid_alive(pid)   # (kill(0, 0) would probe our own process group)


def _creator_pid(name: str) -> int:
    # new_session() names a session f"{pid}{6 hex digits}".
    digits = name[2:-6]
    return int(digits) if digits.isdigit() else 0


def _command_lines() -> list[str]:
    out = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                out.append(f.read().replace(b"\0", b" ").decode(errors="replace") + " ")
        except OSError:
            continue
    return out


def scan(root: str, now: float) -> list[SessionDir]:
    """The session directories under ``root`` that are ours, with their liveness."""
    uid = os.geteuid()
    commands = _command_lines()
    found = []
    for name in os.listdir(root):
        if not name.startswith("s-"):
            continue
        path = os.path.join(root, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid:
            continue
        live = (now - st.st_mtime < RECENT_S or _creator_alive(name)
                or any(path + " " in cmd for cmd in commands))
        found.append(SessionDir(path, st.st_mtime, live))
    return found


def prune_sessions(root: str | None = None, keep: int | None = None) -> list[str]:
    """Remove dead session directories beyond the newest ``keep``; returns them.
    Never raises (a failure is logged at debug level)."""
    from raylite.session import session_root
    try:
        root = root or session_root()   # checks the root is ours and 0700
        keep = retention() if keep is None else keep
        removed = to_remove(scan(root, time.time()), keep)
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
        return removed
    except Exception as err:  # noqa: BLE001 - cleanup must never stop a start
        log.debug("session cleanup failed: %s", err)
        return []


def prune_in_background() -> None:
    """prune_sessions() on a daemon thread, so a start never waits for it."""
    threading.Thread(target=prune_sessions, daemon=True, name="raylite-session-cleanup").start()
