"""Small process helpers shared by the launchers, the scheduler and the CLI."""
from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``sig`` to this process when its parent dies (no-op elsewhere).

    Used as a Popen preexec_fn and at worker start, so that no process of ours
    outlives the one that started it, even when that one is SIGKILLed.
    """
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies; exit now if it already has."""
    set_parent_death_signal(signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
