"""A pre-imported template process that forks workers in milliseconds.

A fresh Python worker spends ~0.3 s importing grpc, redis and raylite; actors and
nested tasks need new workers often. The zygote imports everything once (creating
no threads, channels or servers, so forking is safe) and forks a worker per request.

Protocol (line-oriented JSON over its stdin/stdout, with the node scheduler):
  in:  {"worker_id": ..., "env": {...}, "log": path}
  out: {"spawned": worker_id, "pid": n}  |  {"exited": pid, "status": n}
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys

from raylite.processes import set_parent_death_signal


def preload() -> None:
    """Import everything a worker needs (no threads, channels or servers)."""
    _preload()


def _preload() -> None:
    import email.parser  # noqa: F401  (http.client's, imported lazily on a worker's way up)

    import grpc  # noqa: F401
    import grpc._channel  # noqa: F401  (sync channels: every worker opens one to its node)
    import grpc._simple_stubs  # noqa: F401
    import grpc.aio  # noqa: F401
    import grpc.experimental  # noqa: F401

    import raylite.cluster  # noqa: F401
    import raylite.core.core_worker  # noqa: F401
    import raylite.core.log_forward  # noqa: F401
    import raylite.core.worker_main  # noqa: F401
    import raylite.gcs.client  # noqa: F401
    import raylite.gcs.signing  # noqa: F401
    import raylite.runtime_env.worker  # noqa: F401


def _share_with_children() -> None:
    """Make forked workers share as many of the zygote's pages as they can.

    A forked page stays shared until either process writes to it. The collector writes
    to every object it examines (its reference-count bookkeeping), so one collection in
    a worker would copy most of the heap the zygote built: freezing moves what exists
    now out of its reach for good (module-level objects, never garbage anyway; no
    collection first: it would cost the first worker ~20 ms at cold start).
    """
    import gc
    gc.freeze()


def _child(request: dict) -> None:
    os.environ.update(request["env"])
    os.environ["RAYLITE_WORKER_ID"] = request["worker_id"]
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr  # type: ignore[misc]
    from raylite.core import worker_main
    try:
        if "RAYLITE_RUNTIME_ENV" in os.environ:   # a worker for a runtime_env: enter it
            _enter_runtime_env()
        worker_main.main()
    finally:
        os._exit(0)


def _enter_runtime_env() -> None:
    from raylite.runtime_env.worker import enter
    try:
        enter()
    except OSError:   # e.g. its working_dir was removed: fail to start, loudly
        import traceback
        traceback.print_exc()
        os._exit(1)


class ForkedZygote:
    """A zygote forked from the (already importing) node scheduler: the Popen-like
    handle the worker pool talks to."""

    def __init__(self, pid: int, stdin, stdout):
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout=None):
        while self.poll() is None:
            import time
            time.sleep(0.01)
        return self.returncode


def fork_zygote(log_path: str) -> ForkedZygote:
    """Fork a zygote from this process, which must have imported what workers need
    and must not have started threads, channels or servers yet."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(to_child_r, 0)
            os.dup2(from_child_w, 1)
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.dup2(log, 2)
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w, log):
                os.close(fd)
            sys.stdin = os.fdopen(0, "r")
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            main(preloaded=False)  # imports the worker modules while the parent serves
        finally:
            os._exit(0)
    os.close(to_child_r)
    os.close(from_child_w)
    return ForkedZygote(pid, os.fdopen(to_child_w, "wb"), os.fdopen(from_child_r, "rb"))


def main(preloaded: bool = False) -> int:
    set_parent_death_signal(signal.SIGKILL)
    if not preloaded:
        _preload()
    _share_with_children()
    out = sys.stdout
    inp = sys.stdin.fileno()
    buffer = b""
    while True:
        ready, _, _ = select.select([inp], [], [], 0.05)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            out.write(json.dumps({"exited": pid, "status": status}) + "\n")
            out.flush()
        if not ready:
            continue
        chunk = os.read(inp, 65536)
        if not chunk:
            return 0  # the scheduler went away
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(request)
            out.write(json.dumps({"spawned": request["worker_id"], "pid": pid}) + "\n")
            out.flush()


if __name__ == "__main__":
    sys.exit(main())
