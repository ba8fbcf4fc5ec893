"""Which worker the node kills when memory runs low, as a pure decision (no /proc, no
clock, no signals): the scheduler's shell reads the node's memory and its workers,
feeds them in, and carries out the kill this module picks.

Mirrors Ray's memory monitor: when the node's used memory exceeds a fraction of its
total (``RAY_memory_usage_threshold``, default 0.95; ``RAY_min_memory_free_bytes``
optionally raises the bar on big hosts) the node kills one leased worker, then waits
until that one is gone before choosing another. Which one (Ray's group-by-owner
policy): workers whose work can be retried (task ``max_retries`` / actor
``max_restarts`` not 0) before the others; among those, the owner (caller) holding the
most leased workers here, ties going to the owner whose oldest lease is the newest;
within that owner, the most recently leased worker. Drivers are never candidates: they
hold no lease. Unit-tested in tests/unit/test_memory_monitor.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_THRESHOLD = 0.95
DEFAULT_REFRESH_MS = 250
KILL_GRACE_S = 10.0     # a victim not gone after this long no longer blocks the next kill
GiB = 1 << 30


@dataclass(frozen=True)
class MemoryConfig:
    """How the monitor is set (see ``from_env``)."""
    threshold: float = DEFAULT_THRESHOLD     # fraction of total memory
    refresh_ms: int = DEFAULT_REFRESH_MS     # 0: the monitor is off
    min_free_bytes: int = -1                 # -1: unused

    @property
    def enabled(self) -> bool:
        return self.refresh_ms > 0

    def threshold_bytes(self, total: int) -> int:
        """Usage above which the node kills: Ray's max(total x fraction, total - min free)."""
        limit = int(total * self.threshold)
        if self.min_free_bytes >= 0:
            limit = max(limit, total - self.min_free_bytes)
        return limit

    @classmethod
    def from_env(cls, env) -> MemoryConfig:
        """Read Ray's variable names (``RAY_memory_usage_threshold``,
        ``RAY_memory_monitor_refresh_ms``, ``RAY_min_memory_free_bytes``), each also
        accepted with the ``RAYLITE_`` prefix, which wins. Raises ValueError on a value
        that is not a number or a threshold outside [0, 1]."""
        def get(name: str, default: str) -> str:
            return env.get("RAYLITE_" + name) or env.get("RAY_" + name) or default
        threshold = float(get("memory_usage_threshold", str(DEFAULT_THRESHOLD)))
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"memory_usage_threshold must be in [0, 1], got {threshold}")
        return cls(threshold=threshold,
                   refresh_ms=int(get("memory_monitor_refresh_ms", str(DEFAULT_REFRESH_MS))),
                   min_free_bytes=int(get("min_memory_free_bytes", "-1")))


@dataclass(frozen=True)
class MemorySnapshot:
    """The node's memory as the shell read it (bytes)."""
    used: int
    total: int
    source: str = "system"      # "system" (/proc/meminfo) or "cgroup" (a container limit)


@dataclass(frozen=True)
class WorkerRecord:
    """A leased worker, as the decision needs it."""
    worker_id: str
    pid: int
    owner: str                  # the worker id of the lease holder (the caller)
    lease_seq: int              # grows with every grant: the highest is the newest
    retriable: bool
    actor_id: bytes = b""
    rss: int = 0                # bytes, filled in by the shell when it has it


@dataclass(frozen=True)
class Kill:
    """Kill ``victim``; ``message`` is what its caller's error says."""
    victim: WorkerRecord
    message: str


@dataclass
class MemoryMonitor:
    """Decides kills; remembers the one in progress so only one happens at a time."""
    config: MemoryConfig = field(default_factory=MemoryConfig)
    node: str = ""                         # "IP: x, ID: y" for messages
    killing: str = ""                      # worker id of the victim not yet gone
    killed_at: float = 0.0

    def over_threshold(self, snap: MemorySnapshot) -> bool:
        return snap.total > 0 and snap.used > self.config.threshold_bytes(snap.total)

    def check(self, snap: MemorySnapshot, workers: list[WorkerRecord], now: float) -> Kill | None:
        """The worker to kill now, or None (usage below the threshold, a kill still in
        progress, or no leased worker to kill)."""
        if self.killing:
            alive = any(w.worker_id == self.killing for w in workers)
            if alive and now - self.killed_at < KILL_GRACE_S:
                return None
            self.killing = ""
        if not self.over_threshold(snap):
            return None
        victim = choose_victim(workers)
        if victim is None:
            return None
        self.killing, self.killed_at = victim.worker_id, now
        return Kill(victim, self.describe(snap, victim))

    def describe(self, snap: MemorySnapshot, victim: WorkerRecord) -> str:
        """Ray's wording, with the node's figures and the victim's."""
        cfg = self.config
        limit = cfg.threshold_bytes(snap.total)
        why = ("it was the most recently scheduled retriable task" if victim.retriable
               else "it was the most recently scheduled task (none of the running ones "
                    "could be retried)")
        where = f" (IP: {self.node})" if self.node else ""
        kind = "actor" if victim.actor_id else "task"
        rss = f"{victim.rss / GiB:.2f}GB" if victim.rss else "unknown"
        return (f"The {kind}'s worker was killed due to the node running low on memory. "
                f"Memory on the node{where} was {snap.used / GiB:.2f}GB / "
                f"{snap.total / GiB:.2f}GB ({snap.used / snap.total:.6f}), which exceeds "
                f"the memory usage threshold of {limit / snap.total:.6f}"
                f"{' (cgroup limit)' if snap.source == 'cgroup' else ''}. raylite killed "
                f"this worker (ID: {victim.worker_id}, pid {victim.pid}, RSS {rss}) because "
                f"{why}. Consider provisioning more memory on this node or reducing task "
                f"parallelism by requesting more CPUs per task. To adjust the kill "
                f"threshold, set the environment variable `RAY_memory_usage_threshold` when "
                f"starting raylite. To disable worker killing, set the environment variable "
                f"`RAY_memory_monitor_refresh_ms` to zero.")


def choose_victim(workers: list[WorkerRecord]) -> WorkerRecord | None:
    """Ray's group-by-owner policy (see the module docstring); None when empty."""
    if not workers:
        return None
    retriable = [w for w in workers if w.retriable]
    pool = retriable or workers
    groups: dict[str, list[WorkerRecord]] = {}
    for w in pool:
        groups.setdefault(w.owner, []).append(w)
    # Most leased workers first; on a tie, the owner whose earliest lease is latest.
    owner = max(groups, key=lambda o: (len(groups[o]), min(w.lease_seq for w in groups[o])))
    return max(groups[owner], key=lambda w: w.lease_seq)
