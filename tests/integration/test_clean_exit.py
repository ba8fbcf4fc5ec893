"""Clean exit: once a driver is gone — by shutdown(), by leaving without calling it,
or by SIGKILL — no process and no /dev/shm entry of its session remains.

Each test starts its own cluster: in this process for shutdown(), in a subprocess
driver for the others.
"""
from __future__ import annotations

import os
import shutil
import signal

import numpy as np
import psutil
import pytest

import raylite as ray

TEN_MB = 10 * 1024 * 1024

# A driver that keeps busy workers, a large object in /dev/shm and a nested task
# tree alive, reports where its session lives, and then waits to be killed.
BUSY_DRIVER = """
    import os, sys, time
    import numpy as np
    import raylite as ray
    ctx = ray.init(num_cpus=2)

    @ray.remote
    def sleeper():
        import time
        time.sleep(300)

    @ray.remote
    def parent():
        return ray.get(sleeper.remote())

    @ray.remote
    def make_big():
        import numpy as np
        return np.ones(10 * 1024 * 1024, dtype=np.uint8)   # written to /dev/shm by a worker

    big = ray.put(np.ones(10 * 1024 * 1024, dtype=np.uint8))
    big_from_task = make_big.remote()
    assert ray.get(big_from_task).sum() == 10 * 1024 * 1024
    refs = [sleeper.remote(), parent.remote()]
    started = time.monotonic()
    while ray.available_resources().get("CPU", 0) > 0 and time.monotonic() - started < 30:
        time.sleep(0.05)
    print("SESSION", ctx["session_dir"], flush=True)
    print("GCS", ray.api.connection().gcs_address, flush=True)
    print("READY", flush=True)
    {ending}
"""


def _read_session(proc) -> tuple[str, str]:
    session = gcs = ""
    for line in proc.stdout:
        if line.startswith("SESSION "):
            session = line.split(None, 1)[1].strip()
        elif line.startswith("GCS "):
            gcs = line.split(None, 1)[1].strip()
        elif line.strip() == "READY":
            break
    assert session, f"driver did not report its session; stderr:\n{proc.stderr.read()}"
    return session, gcs


def _descendants(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _assert_session_running(probe) -> None:
    processes = probe.processes()
    text = "\n".join(processes)
    assert any("raylite.scheduler" in p for p in processes), text
    assert any("redis-server" in p for p in processes), text
    # scheduler + redis + zygote + at least one worker
    assert len(processes) >= 4, text
    assert probe.shm_entries(), "the session has no /dev/shm store"


def test_shutdown_leaves_no_process_and_no_shm(session_probe):
    if ray.is_initialized():
        ray.shutdown()
    ctx = ray.init(num_cpus=2)
    try:
        probe = session_probe(ctx["session_dir"], ray.api.connection().gcs_address)

        @ray.remote
        def square(x):
            return x * x

        @ray.remote
        def nested(x):
            return ray.get(square.remote(x)) + 1

        big = ray.put(np.ones(TEN_MB, dtype=np.uint8))
        assert ray.get([nested.remote(i) for i in range(4)]) == [1, 2, 5, 10]
        assert ray.get(big).sum() == TEN_MB
        probe.remember(_descendants(os.getpid()))
        _assert_session_running(probe)
        assert any(os.path.isfile(os.path.join(d, f)) for d in probe.shm_entries()
                   for f in os.listdir(d)), "the 10 MB object is not in /dev/shm"
    finally:
        ray.shutdown()
    assert not ray.is_initialized()
    processes, shm = probe.wait_gone(timeout=5)
    assert processes == [], "processes left after shutdown():\n" + "\n".join(processes)
    assert shm == [], f"/dev/shm entries left after shutdown(): {shm}"


def test_init_again_after_shutdown_works(session_probe):
    ctx = ray.init(num_cpus=1)
    try:
        @ray.remote
        def one():
            return 1
        assert ray.get(one.remote()) == 1
        probe = session_probe(ctx["session_dir"], ray.api.connection().gcs_address)
    finally:
        ray.shutdown()
    processes, shm = probe.wait_gone(timeout=5)
    assert processes == [] and shm == [], (processes, shm)


def test_double_init_raises_runtime_error():
    ray.init(num_cpus=1)
    try:
        with pytest.raises(RuntimeError):
            ray.init(num_cpus=1)
        ray.init(num_cpus=1, ignore_reinit_error=True)
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    ray.shutdown()  # a second shutdown is harmless
    assert not ray.is_initialized()


def test_driver_exit_without_shutdown_leaves_nothing(spawn_driver, session_probe):
    proc = spawn_driver(BUSY_DRIVER.replace("{ending}", "sys.exit(0)"))
    session, gcs = _read_session(proc)
    probe = session_probe(session, gcs)
    probe.remember([proc.pid] + _descendants(proc.pid))
    proc.wait(timeout=60)
    processes, shm = probe.wait_gone(timeout=10)
    assert processes == [], "processes left after the driver exited:\n" + "\n".join(processes)
    assert shm == [], f"/dev/shm entries left after the driver exited: {shm}"


def test_sigkilled_driver_leaves_nothing(spawn_driver, session_probe):
    proc = spawn_driver(BUSY_DRIVER.replace("{ending}", "time.sleep(300)"))
    session, gcs = _read_session(proc)
    probe = session_probe(session, gcs)
    probe.remember(_descendants(proc.pid))
    _assert_session_running(probe)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    processes, shm = probe.wait_gone(timeout=10)
    assert processes == [], "processes left after the driver was SIGKILLed:\n" + "\n".join(processes)
    assert shm == [], f"/dev/shm entries left after the driver was SIGKILLed: {shm}"


def test_killed_process_group_leaves_no_shm_after_next_init(spawn_driver, session_probe,
                                                             run_driver):
    """When the driver and everything it started die together (SIGKILL to the
    process group: a CI job cancelled, `timeout -s KILL`, the OOM killer), no
    process is left to clean up. The session's /dev/shm entries must not stay
    there for ever: at the latest the next raylite start on the machine reclaims
    them (or they never outlive their processes)."""
    proc = spawn_driver(BUSY_DRIVER.replace("{ending}", "time.sleep(300)"),
                        start_new_session=True)
    session, gcs = _read_session(proc)
    probe = session_probe(session, gcs)
    probe.remember(_descendants(proc.pid))
    _assert_session_running(probe)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    try:
        processes, _ = probe.wait_gone(timeout=5)
        assert processes == [], "\n".join(processes)
        result = run_driver("""
            import raylite as ray
            ray.init(num_cpus=1)
            ray.shutdown()
        """)
        assert result.returncode == 0, result.stderr
        processes, shm = probe.wait_gone(timeout=5)
        assert shm == [], f"/dev/shm entries of a killed session were never reclaimed: {shm}"
    finally:
        # Checked above; do not leave this test's own debris in /dev/shm.
        for entry in probe.shm_entries():
            shutil.rmtree(entry, ignore_errors=True)
