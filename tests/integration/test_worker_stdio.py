"""A worker's standard streams stay what the node gave it: fd 2 is the worker's log file
for its whole life, so processes a task starts inherit a working stderr.

Regression: the forked worker replaced the zygote's sys.stderr, whose collection closed
fd 2; the next socket then took fd 2, children started without a stderr (Python's
input() then fails, which broke gymnasium's MuJoCo import through glfw), and anything
written to fd 2 went into that socket."""
from __future__ import annotations

import os
import stat

import raylite as ray


def test_worker_fd2_is_a_file_and_children_inherit_a_working_stderr():
    ray.init(num_cpus=1)
    try:
        @ray.remote
        def probe():
            import subprocess
            import sys
            child = subprocess.run(
                [sys.executable, "-c",
                 "import sys; print(input().strip()); sys.stderr.write('to stderr')"],
                input="hello", stdout=subprocess.PIPE, text=True,
                check=False, timeout=60)
            return os.fstat(2).st_mode, child.returncode, child.stdout

        mode, code, out = ray.get(probe.remote(), timeout=120)
    finally:
        ray.shutdown()
    assert not stat.S_ISSOCK(mode)
    assert stat.S_ISREG(mode)
    assert (code, out.strip()) == (0, "hello")
