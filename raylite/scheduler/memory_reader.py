"""Reading the node's memory and a worker's resident size from /proc and cgroup v2, for
the memory monitor (memory_monitor.py decides; this only reads). The parsers take
file contents, so they are unit-tested without a machine to read.
"""
from __future__ import annotations

import os

from raylite.scheduler.memory_monitor import MemorySnapshot

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
CGROUP_ROOT = "/sys/fs/cgroup"


def parse_meminfo(text: str) -> tuple[int, int]:
    """(total, available) bytes from /proc/meminfo's text. Raises ValueError when
    either line is missing."""
    fields = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            fields[name] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    if "MemTotal" not in fields or "MemAvailable" not in fields:
        raise ValueError("MemTotal/MemAvailable missing from /proc/meminfo")
    return fields["MemTotal"], fields["MemAvailable"]


def parse_cgroup_path(text: str) -> str:
    """The cgroup v2 path of a process from /proc/<pid>/cgroup ('' when it has none)."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return ""


def cgroup_usage(limit_text: str, current_text: str, stat_text: str) -> tuple[int, int] | None:
    """(used, limit) bytes of a cgroup v2 from memory.max, memory.current and
    memory.stat; None when it has no limit ("max"). Like Ray, page cache the kernel can
    drop at once (inactive_file) does not count as used."""
    limit_text = limit_text.strip()
    if not limit_text or limit_text == "max":
        return None
    inactive = 0
    for line in stat_text.splitlines():
        name, _, value = line.partition(" ")
        if name == "inactive_file":
            inactive = int(value)
            break
    used = max(0, int(current_text.strip()) - inactive)
    return used, int(limit_text)


def choose(total: int, available: int, cgroup: tuple[int, int] | None) -> MemorySnapshot:
    """The snapshot to judge by: the cgroup's figures when its limit is below the
    machine's memory, else the machine's."""
    if cgroup is not None and 0 < cgroup[1] < total:
        return MemorySnapshot(used=cgroup[0], total=cgroup[1], source="cgroup")
    return MemorySnapshot(used=max(0, total - available), total=total)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


class NodeMemoryReader:
    """Reads this node's MemorySnapshot; finds its cgroup once."""

    def __init__(self) -> None:
        self.cgroup_dir = ""
        try:
            path = parse_cgroup_path(_read("/proc/self/cgroup"))
            candidate = os.path.join(CGROUP_ROOT, path.lstrip("/"))
            if path and os.path.exists(os.path.join(candidate, "memory.max")):
                self.cgroup_dir = candidate
        except OSError:
            pass

    def snapshot(self) -> MemorySnapshot:
        """Raises OSError/ValueError when /proc/meminfo cannot be read."""
        total, available = parse_meminfo(_read("/proc/meminfo"))
        cgroup = None
        if self.cgroup_dir:
            try:
                cgroup = cgroup_usage(_read(os.path.join(self.cgroup_dir, "memory.max")),
                                      _read(os.path.join(self.cgroup_dir, "memory.current")),
                                      _read(os.path.join(self.cgroup_dir, "memory.stat")))
            except (OSError, ValueError):
                cgroup = None
        return choose(total, available, cgroup)


def process_rss(pid: int) -> int:
    """Resident bytes of ``pid`` (0 when it is gone)."""
    try:
        return int(_read(f"/proc/{pid}/statm").split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0
