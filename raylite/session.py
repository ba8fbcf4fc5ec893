"""Where a node keeps its files: sockets, logs, spill, and its shared-memory directory.

Paths are short because unix socket paths are limited to 107 bytes.
"""
from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass

SESSION_ROOT = os.environ.get("RAYLITE_TMPDIR") or os.path.join(tempfile.gettempdir(), "raylite-run")
SHM_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
SHM_PREFIX = "raylite-"
CURRENT_CLUSTER_FILE = os.path.join(SESSION_ROOT, "current_cluster")


@dataclass
class SessionPaths:
    name: str
    root: str

    @property
    def sockets(self) -> str:
        return os.path.join(self.root, "s")

    @property
    def logs(self) -> str:
        return os.path.join(self.root, "logs")

    @property
    def spill(self) -> str:
        return os.path.join(self.root, "spill")

    @property
    def redis_dir(self) -> str:
        return os.path.join(self.root, "redis")

    def shm_dir(self, node_id: str) -> str:
        return os.path.join(SHM_ROOT, f"{SHM_PREFIX}{self.name}-{node_id[:8]}")

    def scheduler_socket(self, node_id: str) -> str:
        return os.path.join(self.sockets, f"n{node_id[:8]}.sock")

    def worker_socket(self, worker_id: str) -> str:
        return os.path.join(self.sockets, f"w{worker_id[:12]}.sock")

    def make(self) -> SessionPaths:
        for path in (self.root, self.sockets, self.logs, self.redis_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        return self


def new_session() -> SessionPaths:
    name = f"{os.getpid()}{secrets.token_hex(3)}"
    os.makedirs(SESSION_ROOT, mode=0o700, exist_ok=True)
    return SessionPaths(name, os.path.join(SESSION_ROOT, f"s-{name}")).make()


def session_from_root(root: str) -> SessionPaths:
    name = os.path.basename(root.rstrip("/"))[2:]
    return SessionPaths(name, root)
