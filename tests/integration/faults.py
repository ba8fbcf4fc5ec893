"""Real-process fault injection: a multi-node cluster on 127.0.0.1 started with the
`raylite` CLI, and the means to kill pieces of it for real.

Everything here goes through what a user has: the CLI (``python -m raylite.cli.main``),
drivers as subprocesses (``ray.init(address="auto")``), and the operating system
(/proc, signals). Nothing imports raylite's internals, so these helpers survive
refactors of the core.

How processes are found (no raylite API exposes pids):
- each `raylite start` creates one new session directory under ``$RAYLITE_TMPDIR``;
  the node's scheduler is the process whose command line is
  ``python -m raylite.scheduler --session <that dir> --node-id <id> ...`` and whose
  parent is not such a process (the zygote and the workers it forks inherit the same
  command line, since they are forks);
- a node's zygote and workers are the scheduler's descendants (walking the parent
  pid of every /proc entry);
- the head's redis-server pid is in ``$RAYLITE_TMPDIR/current_cluster`` and its config
  (port, append-only file) in ``<head session>/redis/redis.conf``.

A hang is a failure, never a wait: every step has a hard time limit. The /proc
helpers and the leak check (``Leftovers``) live in proctree.py.
"""
from __future__ import annotations

import glob
import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field

import pytest
from proctree import (
    Leftovers,
    alive,
    all_pids,
    children_running,
    cmdline,
    descendants,
    parent_pid,
    sigkill_all,
    wait_dead,
    wait_until,
)

from raylite.gcs.redis_server import find_redis_server

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Fast failure detection once it exists (issue 10 point 1); ignored by code that
# does not know these settings yet.
FAST_DETECTION_ENV = {"RAYLITE_HEARTBEAT_INTERVAL_S": "0.2", "RAYLITE_NODE_TIMEOUT_S": "2"}


# ---- the CLI -----------------------------------------------------------------------------
def cli(args: list[str], env: dict, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m raylite.cli.main ARGS``; fails the test on a hang (or a non-zero
    exit when ``check``)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "raylite.cli.main", *args], check=False, env=env,
                              cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"raylite {' '.join(args)} did not finish within {timeout}s:\n{err.stdout}\n{err.stderr}")
    if check and proc.returncode != 0:
        pytest.fail(f"raylite {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def base_env(run_dir: str) -> dict:
    """Environment for the CLI and drivers of one isolated cluster: its own
    RAYLITE_TMPDIR (sessions, current_cluster and started_sessions files), this
    checkout on PYTHONPATH, fast failure detection."""
    env = dict(os.environ)
    for name in ("RAY_ADDRESS", "RAYLITE_ADDRESS", "RAYLITE_TOKEN", "RAYLITE_GCS_PASSWORD"):
        env.pop(name, None)
    env["RAYLITE_TMPDIR"] = run_dir
    env["PYTHONUNBUFFERED"] = "1"
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
    env.update(FAST_DETECTION_ENV)
    return env


# ---- drivers -----------------------------------------------------------------------------
class Driver:
    """A driver script in a subprocess, with its output read as it comes.

    ``expect(prefix)`` waits (bounded) for a stdout line; ``send(line)`` writes to its
    stdin (scripts use it to wait for the test, e.g. after a kill); ``finish()`` waits
    (bounded) for the exit. On a hang the driver is SIGKILLed and the test fails with
    everything it printed.
    """

    def __init__(self, script: str, env: dict, name: str = "driver"):
        self.name = name
        self.proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env,
                                     cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self.err: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines, self._queue),
                         daemon=True).start()
        self._err_thread = threading.Thread(target=self._pump, args=(self.proc.stderr, self.err, None),
                                            daemon=True)
        self._err_thread.start()

    @staticmethod
    def _pump(stream, sink: list, q) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            if q is not None:
                q.put(line.rstrip("\n"))
        if q is not None:
            q.put(None)

    def output(self) -> str:
        return ("stdout:\n" + "\n".join(self.lines) + "\nstderr:\n" + "\n".join(self.err[-80:]))

    def expect(self, prefix: str, timeout: float = 60) -> str:
        """The next stdout line that starts with ``prefix`` (earlier lines are kept in
        ``lines``). Fails the test when the driver exits or stays silent too long."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self._queue.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
            if line == "" and time.monotonic() >= deadline:
                self.kill()
                pytest.fail(f"{self.name}: no line starting with {prefix!r} within {timeout}s\n"
                            + self.output())
            if line is None:
                self.proc.wait(5)
                self._err_thread.join(5)
                pytest.fail(f"{self.name} exited ({self.proc.returncode}) before printing {prefix!r}\n"
                            + self.output())
            if line.startswith(prefix):
                return line

    def send(self, line: str = "go") -> None:
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def finish(self, timeout: float = 60) -> int:
        """Wait for the exit; returns the exit code. Fails the test on a hang."""
        try:
            self.proc.wait(timeout)
            hung = False
        except subprocess.TimeoutExpired:
            hung = True
        if hung:   # (failing outside the except keeps the report free of the chained error)
            self.kill()
            self._err_thread.join(5)
            pytest.fail(f"{self.name} did not finish within {timeout}s (hang)\n" + self.output())
        self._err_thread.join(5)
        return self.proc.returncode

    def finish_ok(self, timeout: float = 60) -> list[str]:
        """Wait for a clean exit (code 0); returns the stdout lines."""
        code = self.finish(timeout)
        if code != 0:
            pytest.fail(f"{self.name} exited with {code}\n" + self.output())
        return self.lines

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass


# ---- a CLI cluster -----------------------------------------------------------------------
@dataclass
class Node:
    """One `raylite start`: its node id, session directory and scheduler pid."""
    name: str
    node_id: str
    session: str
    scheduler_pid: int
    is_head: bool
    killed: bool = False
    killed_at: float = 0.0                 # time.monotonic() of the kill
    killed_pids: list[int] = field(default_factory=list)

    def tree(self) -> list[int]:
        """The scheduler and its live descendants (zygote, workers)."""
        if not alive(self.scheduler_pid):
            return []
        return [self.scheduler_pid] + descendants(self.scheduler_pid)


class LocalCluster:
    """A head and more nodes on 127.0.0.1, started with the CLI in an isolated
    RAYLITE_TMPDIR; see the module docstring for how pids are found."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        os.makedirs(run_dir, mode=0o700, exist_ok=True)  # raylite refuses a shared root
        self.env = base_env(run_dir)
        self.nodes: list[Node] = []
        self.gcs_address = ""
        self.token = ""
        self.redis_pid = 0
        self.redis_conf = ""
        self.redis_restarts: list[subprocess.Popen] = []
        self.drivers: list[Driver] = []
        self.leftovers = Leftovers(run_dir)
        self.stopped = False

    # ---- starting ----------------------------------------------------------------
    def _sessions(self) -> set[str]:
        return set(glob.glob(os.path.join(self.run_dir, "s-*")))

    def _start(self, args: list[str], name: str, is_head: bool) -> tuple[Node, str]:
        before = self._sessions()
        out = cli(["start", *args], self.env, timeout=90).stdout
        new = self._sessions() - before
        assert len(new) == 1, f"expected one new session dir for {name}, got {new}\n{out}"
        session = new.pop()
        sched = self._find_scheduler(session)
        argv = cmdline(sched)
        node_id = argv[argv.index("--node-id") + 1]
        node = Node(name=name, node_id=node_id, session=session, scheduler_pid=sched, is_head=is_head)
        self.nodes.append(node)
        self.leftovers.remember(node.tree())
        return node, out

    @staticmethod
    def _find_scheduler(session: str) -> int:
        def roots():
            matches = set()
            for pid in all_pids():
                argv = cmdline(pid)
                if "raylite.scheduler" in argv and session in argv and alive(pid):
                    matches.add(pid)
            return [p for p in matches if parent_pid(p) not in matches]
        found: list[int] = []

        def look() -> bool:
            found[:] = roots()
            return bool(found)
        wait_until(look, 10)
        assert len(found) == 1, f"expected one scheduler process for {session}, found {found}"
        return found[0]

    def start_head(self, num_cpus: float = 1, resources: dict | None = None) -> Node:
        args = ["--head", "--port", "0", "--num-cpus", str(num_cpus)]
        if resources:
            args += ["--resources", json.dumps(resources)]
        node, out = self._start(args, "head", True)
        # The head prints the path of its 0600 token file, never the token.
        join = next(line for line in out.splitlines() if "--token-file=" in line)
        with open(join.split("--token-file=")[1].split()[0]) as f:
            self.token = f.read().strip()
        self.gcs_address = join.split("--address=")[1].split()[0]
        self.leftovers.gcs_addresses.add(self.gcs_address)
        with open(os.path.join(self.run_dir, "current_cluster")) as f:
            self.redis_pid = int(json.load(f)["redis_pid"])
        self.redis_conf = os.path.join(node.session, "redis", "redis.conf")
        self.leftovers.remember([self.redis_pid])
        self.env["RAYLITE_TOKEN"] = self.token
        return node

    def add_node(self, name: str, num_cpus: float = 1, resources: dict | None = None) -> Node:
        """Join a node; ``resources`` defaults to ``{name: 1}`` so tasks can target it."""
        resources = {name: 1} if resources is None else resources
        args = ["--address", self.gcs_address, "--num-cpus", str(num_cpus),
                "--resources", json.dumps(resources)]
        node, _ = self._start(args, name, False)
        return node

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    @property
    def head(self) -> Node:
        return next(n for n in self.nodes if n.is_head)

    # ---- faults ------------------------------------------------------------------
    def kill_node(self, node: Node) -> list[int]:
        """A whole node dies: SIGKILL its scheduler and every descendant (zygote,
        workers) at once, then wait (bounded) until none runs. Returns the pids."""
        pids = node.tree()
        assert pids, f"node {node.name} has no live scheduler to kill"
        self.leftovers.remember(pids)
        try:
            # `raylite start` gives the scheduler a session of its own: one signal to
            # the process group reaches the whole node at the same instant.
            if os.getpgid(node.scheduler_pid) == node.scheduler_pid:
                os.killpg(node.scheduler_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        sigkill_all(pids)  # and any descendant that left the group
        node.killed, node.killed_at, node.killed_pids = True, time.monotonic(), pids
        wait_dead(pids)
        return pids

    def kill_redis(self) -> int:
        """SIGKILL the GCS's redis-server (the running one); returns its pid."""
        pid = self.redis_pid
        assert alive(pid), f"redis-server {pid} is not running"
        os.kill(pid, signal.SIGKILL)
        wait_dead([pid])
        return pid

    def restart_redis(self, timeout: float = 15) -> int:
        """Start redis-server again from the head's config: same port, same password,
        same append-only file. Returns the new pid (stopped again at teardown).

        The port may be briefly taken when redis-server starts (e.g. by a client's
        TCP self-connect to the port while nothing listened), so a server that
        exits at once is started again, within ``timeout``."""
        import redis
        host, port = self.gcs_address.rsplit(":", 1)
        from raylite.security.tokens import REDIS_USER, redis_password
        client = redis.Redis(host=host, port=int(port), username=REDIS_USER,
                             password=redis_password(self.token), socket_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                proc = subprocess.Popen([find_redis_server(), self.redis_conf],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, close_fds=True,
                                        start_new_session=True)
                self.redis_restarts.append(proc)
                self.leftovers.remember([proc.pid])
                if wait_until(lambda p=proc: p.poll() is not None or _ping(client), 5, 0.05) \
                        and proc.poll() is None:
                    break
                if proc.poll() is None:
                    proc.kill()
                if time.monotonic() > deadline:
                    pytest.fail(f"redis-server did not come back on {self.gcs_address} within "
                                f"{timeout}s; see {os.path.dirname(self.redis_conf)}/redis.log")
                time.sleep(0.2)
        finally:
            client.close()
        self.redis_pid = proc.pid
        return proc.pid

    # ---- drivers and status ----------------------------------------------------------
    def driver(self, script: str, name: str = "driver") -> Driver:
        d = Driver(script, self.env, name)
        self.drivers.append(d)
        return d

    def run_driver(self, script: str, timeout: float = 90) -> list[str]:
        """Run a driver to completion (exit 0 within ``timeout``); its stdout lines."""
        return self.driver(script).finish_ok(timeout)

    def status(self, timeout: float = 30) -> str:
        return cli(["status"], self.env, timeout=timeout).stdout

    def status_of(self, node: Node, timeout: float = 30) -> str:
        """'ALIVE' or 'DEAD' as `raylite status` shows ``node``."""
        for line in self.status(timeout).splitlines():
            if line.startswith(f"node {node.node_id[:8]}"):
                return "ALIVE" if "ALIVE" in line else "DEAD"
        return "MISSING"

    # ---- teardown ----------------------------------------------------------------
    def stop(self, check: bool = True) -> None:
        """Kill leftover drivers, `raylite stop`, stop restarted redis servers, then
        (``check``) fail when any process of the cluster or /dev/shm entry remains."""
        if self.stopped:
            return
        self.stopped = True
        for d in self.drivers:
            d.kill()
        for node in self.nodes:
            self.leftovers.remember(node.tree())
        cli(["stop"], self.env, timeout=60, check=False)
        for proc in self.redis_restarts:  # `raylite stop` only knows the first redis pid
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        if check:
            self.leftovers.assert_gone(what="after `raylite stop`")


def _ping(client) -> bool:
    import redis
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False


# ---- an embedded cluster (ray.init() in the driver) --------------------------------------
def embedded_scheduler(driver: Driver, timeout: float = 20) -> int:
    """The pid of the node scheduler that ``ray.init()`` started inside ``driver``."""
    found: list[int] = []

    def look() -> bool:
        found[:] = children_running(driver.pid, "raylite.scheduler")
        return bool(found)
    wait_until(look, timeout)
    assert len(found) == 1, f"expected one scheduler child of the driver, got {found}\n{driver.output()}"
    return found[0]
