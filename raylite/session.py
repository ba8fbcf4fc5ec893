"""Where a node keeps its files: sockets, logs, spill, and its shared-memory directory.

Paths are short because unix socket paths are limited to 107 bytes.
"""
from __future__ import annotations

import os
import secrets
import stat
import tempfile
from dataclasses import dataclass

from raylite.security.files import private_dir


def _default_root() -> str:
    """RAYLITE_TMPDIR, else $XDG_RUNTIME_DIR/raylite when that directory is ours, else
    /tmp/raylite-<uid>: per user, so no other local user can pre-create it for us."""
    explicit = os.environ.get("RAYLITE_TMPDIR")
    if explicit:
        return os.path.abspath(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        try:
            st = os.lstat(runtime)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077:
                return os.path.join(runtime, "raylite")
        except OSError:
            pass
    return os.path.join(tempfile.gettempdir(), f"raylite-{os.geteuid()}")


SESSION_ROOT = _default_root()
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

    @property
    def code_cache(self) -> str:
        """Functions and job records this node's workers fetched (see FunctionManager)."""
        return os.path.join(self.root, "code")

    def shm_dir(self, node_id: str) -> str:
        return os.path.join(SHM_ROOT, f"{SHM_PREFIX}{self.name}-{node_id[:8]}")

    def scheduler_socket(self, node_id: str) -> str:
        return os.path.join(self.sockets, f"n{node_id[:8]}.sock")

    def worker_socket(self, worker_id: str) -> str:
        return os.path.join(self.sockets, f"w{worker_id[:12]}.sock")

    def make(self) -> SessionPaths:
        """Create (or check) the session's private directories.

        Raises raylite.security.files.InsecurePathError when one exists but is not
        private to this user.
        """
        for path in (self.root, self.sockets, self.logs, self.redis_dir):
            private_dir(path)
        return self


def session_root() -> str:
    """The per-user root, created 0700 if missing.

    Raises InsecurePathError (a PermissionError) when it exists but is a symlink,
    not a directory, owned by another user, or open to group/other.
    """
    return private_dir(SESSION_ROOT)


def new_session() -> SessionPaths:
    """A fresh session directory under the checked per-user root (raises as session_root)."""
    name = f"{os.getpid()}{secrets.token_hex(3)}"
    root = session_root()
    paths = SessionPaths(name, os.path.join(root, f"s-{name}")).make()
    from raylite.observability.sessions import prune_in_background
    prune_in_background()   # dead sessions beyond RAYLITE_SESSION_RETENTION go
    return paths


def session_from_root(root: str) -> SessionPaths:
    name = os.path.basename(root.rstrip("/"))[2:]
    return SessionPaths(name, root)
