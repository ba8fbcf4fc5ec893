"""Starting, watching and killing the node's worker processes.

Workers are forked by the zygote (fast) when it is up; otherwise started directly.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from raylite.processes import pid_alive


def worker_env(cfg) -> dict:
    """What every worker of a node finds in its environment (secrets included)."""
    env = {"RAYLITE_SESSION": cfg.session.root, "RAYLITE_NODE_ID": cfg.node_id,
           "RAYLITE_TOKEN": cfg.token, "RAYLITE_GCS": cfg.gcs_address,
           "RAYLITE_GCS_PASSWORD": cfg.redis_password,
           "RAYLITE_SCHEDULER": "unix:" + cfg.session.scheduler_socket(cfg.node_id),
           "RAYLITE_HOST": cfg.host, "RAYLITE_STORE_DIR": cfg.session.shm_dir(cfg.node_id)}
    if cfg.gcs_socket:
        env["RAYLITE_GCS_SOCKET"] = cfg.gcs_socket
    from raylite.security import cluster_tls
    if cluster_tls.enabled():   # derived once here, so workers need not import cryptography
        env.update(cluster_tls.for_token(cfg.token).environment(cfg.token))
    # As Ray does: one BLAS/OpenMP thread per worker unless the user chose otherwise.
    # Workers already run one per CPU; more threads each only fight over the cores.
    if "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = "1"
    return env


class WorkerProcesses:
    """The OS side of the worker pool, keyed by worker id."""

    def __init__(self, env_base: dict, log_dir: str, use_zygote: bool = True,
                 fork_zygote: bool = False):
        self.env_base = env_base
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}   # started directly
        self.pids: dict[str, int] = {}                 # forked by the zygote
        self._pending: set[str] = set()                # asked of the zygote, pid not known yet
        self._exited: set[int] = set()
        self._lock = threading.Lock()
        self.zygote: Any = None  # a ForkedZygote, or the zygote's Popen
        if use_zygote and os.environ.get("RAYLITE_NO_ZYGOTE") != "1":
            self._start_zygote(fork_zygote)

    def _env(self, worker_id: str, extra: dict | None = None) -> dict:
        env = dict(self.env_base)
        if extra:   # a runtime_env's variables; the cluster's own wiring still wins
            env.update(extra)
            env.update((k, v) for k, v in self.env_base.items() if k.startswith("RAYLITE_"))
        env["RAYLITE_WORKER_ID"] = worker_id
        return env

    def _log_path(self, worker_id: str) -> str:
        return os.path.join(self.log_dir, f"worker-{worker_id[:12]}.log")

    def _start_zygote(self, fork: bool) -> None:
        log_path = os.path.join(self.log_dir, "zygote.log")
        if fork:
            # This process has already imported everything: fork instead of booting
            # another interpreter (saves ~0.3 s of CPU at start-up).
            from raylite.scheduler.zygote import fork_zygote
            self.zygote = fork_zygote(log_path)
        else:
            env = dict(os.environ)
            env.update(self.env_base)
            log = open(log_path, "ab")
            try:
                self.zygote = subprocess.Popen([sys.executable, "-m", "raylite.scheduler.zygote"],
                                               env=env, stdin=subprocess.PIPE,
                                               stdout=subprocess.PIPE, stderr=log, close_fds=True)
            finally:
                log.close()
        threading.Thread(target=self._read_zygote, daemon=True, name="raylite-zygote").start()

    def _read_zygote(self) -> None:
        for line in self.zygote.stdout:
            msg = json.loads(line)
            with self._lock:
                if "spawned" in msg:
                    self._pending.discard(msg["spawned"])
                    self.pids[msg["spawned"]] = msg["pid"]
                else:
                    self._exited.add(msg["exited"])
        with self._lock:  # zygote gone: its workers died with it (parent-death signal)
            self._exited.update(self.pids.values())
            self._pending.clear()

    def spawn(self, worker_id: str, extra_env: dict | None = None) -> None:
        """Start a worker (``extra_env``: a runtime_env's variables, see
        raylite.runtime_env.node). Raises OSError when it cannot be started."""
        if self.zygote is not None and self.zygote.poll() is None:
            request = {"worker_id": worker_id, "env": self._env(worker_id, extra_env),
                       "log": self._log_path(worker_id)}
            with self._lock:
                self._pending.add(worker_id)
            try:
                self.zygote.stdin.write((json.dumps(request) + "\n").encode())
                self.zygote.stdin.flush()
                return
            except (BrokenPipeError, OSError):
                with self._lock:
                    self._pending.discard(worker_id)
        env = dict(os.environ)
        env.update(self._env(worker_id, extra_env))
        log = open(self._log_path(worker_id), "ab")
        try:
            # A runtime_env's working_dir is the cwd (so first on sys.path, with -m).
            self.procs[worker_id] = subprocess.Popen(
                [sys.executable, "-u", "-m", "raylite.core.worker_main"], env=env,
                cwd=(extra_env or {}).get("RAYLITE_RUNTIME_ENV_CWD"),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True)
        finally:
            log.close()

    def pid(self, worker_id: str) -> int:
        proc = self.procs.get(worker_id)
        return proc.pid if proc else self.pids.get(worker_id, 0)

    def count(self) -> int:
        return len(self.procs) + len(self.pids) + len(self._pending)

    def reap(self) -> list[str]:
        """Ids of workers whose process has exited since the last call."""
        dead = [wid for wid, proc in self.procs.items() if proc.poll() is not None]
        for wid in dead:
            self.procs.pop(wid, None)
        with self._lock:
            if self._exited:
                for wid, pid in list(self.pids.items()):
                    if pid in self._exited:
                        dead.append(wid)
                        del self.pids[wid]
                self._exited.clear()
        return dead

    def kill(self, worker_id: str, sig: int = signal.SIGKILL) -> None:
        pid = self.pid(worker_id)
        if pid:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def kill_all(self, grace: float = 0.5) -> None:
        import time
        pids = [p.pid for p in self.procs.values() if p.poll() is None] + list(self.pids.values())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids):
            time.sleep(0.02)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs.values():
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        if self.zygote is not None:
            self.zygote.kill()
            self.zygote.wait()
        self.procs.clear()
        self.pids.clear()


