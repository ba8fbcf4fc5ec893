"""Shared fixtures for raylite's tests.

``ray_start``: one real local cluster (redis-server, node scheduler, zygote,
workers, /dev/shm store) per test module, started with ``raylite.init`` and shut
down when the module ends. A module may set ``RAY_INIT_KWARGS`` to change how it
is started (default ``num_cpus=2``).

``session_probe``: finds what a cluster session left behind — live processes and
/dev/shm entries — so clean-exit tests can check that nothing remains.

``run_driver``: runs a short driver script in a subprocess (its own cluster) and
returns the completed process with stdout/stderr captured.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import textwrap
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_INIT_KWARGS = {"num_cpus": 2}


@pytest.fixture(scope="module")
def ray_start(request):
    """A real cluster shared by every test of the module; yields ``init``'s context."""
    import raylite as ray
    if ray.is_initialized():
        ray.shutdown()
    kwargs = getattr(request.module, "RAY_INIT_KWARGS", DEFAULT_INIT_KWARGS)
    context = ray.init(**kwargs)
    try:
        yield context
    finally:
        ray.shutdown()


def backing_file(address: int) -> str:
    """The file whose mapping holds ``address`` in the calling process (from
    /proc/self/maps): how tests see that an array is a view of a shared segment."""
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if lo <= address < hi:
                return parts[5] if len(parts) > 5 else ""
    return ""


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is truthy; returns its last truthiness."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(interval)


class SessionProbe:
    """What of a raylite session is still alive on this machine.

    A process belongs to the session when its command line or its environment
    mentions the session directory (node scheduler, zygote and the workers it
    forks carry RAYLITE_SESSION), or it is the session's redis-server (which
    rewrites its title to ``redis-server host:port``), or its pid was recorded
    earlier with ``remember`` (e.g. the driver's descendants before a kill).
    """

    def __init__(self, session_dir: str, gcs_address: str = ""):
        self.session_dir = session_dir.rstrip("/")
        self.name = os.path.basename(self.session_dir)[2:]   # s-<name>
        self.gcs_address = gcs_address
        self.remembered: dict[int, float] = {}   # pid -> create time

    # ---- processes -------------------------------------------------------------
    @staticmethod
    def _read(path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")  # a zombie has already exited

    def _matches(self, pid: int) -> bool:
        marker = self.session_dir.encode()
        cmdline = self._read(f"/proc/{pid}/cmdline")
        if marker in cmdline:
            return True
        environ = self._read(f"/proc/{pid}/environ")
        if b"RAYLITE_SESSION=" + marker in environ:
            return True
        if self.gcs_address and b"redis-server" in cmdline \
                and self.gcs_address.encode() in cmdline:
            return True
        return False

    def remember(self, pids) -> None:
        import psutil
        for pid in pids:
            try:
                self.remembered[pid] = psutil.Process(pid).create_time()
            except psutil.Error:
                pass

    def processes(self) -> list[str]:
        """Descriptions ('pid cmdline') of live processes of the session."""
        import psutil
        me = os.getpid()
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid == me or not self._alive(pid):
                continue
            if self._matches(pid):
                found[pid] = True
        for pid, created in self.remembered.items():
            if pid in found or not self._alive(pid):
                continue
            try:
                if psutil.Process(pid).create_time() == created:
                    found[pid] = True
            except psutil.Error:
                pass
        out = []
        for pid in sorted(found):
            cmd = self._read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace")
            out.append(f"{pid} {cmd.strip()}")
        return out

    # ---- shared memory -------------------------------------------------------------
    def shm_entries(self) -> list[str]:
        """/dev/shm entries (directories and files) that belong to the session."""
        return sorted(glob.glob(f"/dev/shm/raylite-{self.name}-*")
                      + glob.glob(f"/dev/shm/raylite-{self.name}"))

    def leftovers(self) -> tuple[list[str], list[str]]:
        return self.processes(), self.shm_entries()

    def wait_gone(self, timeout: float = 10.0) -> tuple[list[str], list[str]]:
        """Poll until the session has neither processes nor /dev/shm entries;
        returns what is still there at the end (empty lists when clean)."""
        wait_until(lambda: self.leftovers() == ([], []), timeout=timeout, interval=0.1)
        return self.leftovers()


@pytest.fixture
def session_probe():
    """Factory: ``session_probe(session_dir, gcs_address="")`` -> SessionProbe."""
    return SessionProbe


def _driver_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("RAY_ADDRESS", None)
    env.pop("RAYLITE_ADDRESS", None)
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = REPO_ROOT + (os.pathsep + path if path else "")
    return env


def start_driver(script: str, **popen_kwargs) -> subprocess.Popen:
    """Start ``python -c script`` (dedented) with stdout/stderr piped."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], cwd=REPO_ROOT,
                            env=_driver_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen_kwargs)


@pytest.fixture
def run_driver():
    """Factory: ``run_driver(script, timeout=60)`` -> CompletedProcess (text output).

    The driver is killed, and the test fails, when it does not finish in time:
    a hang is a failure, never a wait.
    """
    def run(script: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        proc = start_driver(script)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"driver did not finish within {timeout}s\nstdout:\n{out}\nstderr:\n{err}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return run


@pytest.fixture
def spawn_driver():
    """Factory: ``spawn_driver(script, **popen_kwargs)`` -> Popen; killed at teardown if
    still running."""
    procs = []

    def spawn(script: str, **popen_kwargs) -> subprocess.Popen:
        proc = start_driver(script, **popen_kwargs)
        procs.append(proc)
        return proc
    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.communicate(timeout=10)
        except Exception:
            pass
