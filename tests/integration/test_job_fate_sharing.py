"""A driver's non-detached work on *other* nodes ends with its job (as in Ray): when the
driver exits -- cleanly or by SIGKILL -- the actors it created on a second node are
killed and their resources freed at once, so the next driver can use them; a
detached actor of the same job lives on. Real CLI cluster, real processes."""
from __future__ import annotations

import pytest
from faults import alive, wait_until

FIRST = """
import sys, raylite as ray
ray.init(address="auto", namespace="fate")

@ray.remote(resources={"B": 1}, num_cpus=0)
class Holder:
    def pid(self):
        import os
        return os.getpid()

h = Holder.remote()
keep = Holder.options(name="kept", lifetime="detached", resources={"KEEP": 1}).remote()
print("pids", ray.get(h.pid.remote(), timeout=60), ray.get(keep.pid.remote(), timeout=60),
      flush=True)
sys.stdin.readline()
"""

SECOND = """
import raylite as ray
ray.init(address="auto", namespace="fate")

@ray.remote(resources={"B": 1}, num_cpus=0)
class Holder:
    def ok(self):
        return "got B"

# Bounded well below the old ~40 s: B is free only if the first job's actor was stopped.
print(ray.get(Holder.remote().ok.remote(), timeout=20), flush=True)
print("detached", ray.get(ray.get_actor("kept").__ray_ready__.remote(),
                          timeout=20), flush=True)
"""


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_actor_on_another_node_dies_with_its_driver(local_cluster, how):
    cluster = local_cluster()
    cluster.start_head(num_cpus=1)
    cluster.add_node("b", num_cpus=1, resources={"B": 1, "KEEP": 1})
    first = cluster.driver(FIRST, name="first")
    pids = first.expect("pids").split()
    actor_pid, detached_pid = int(pids[1]), int(pids[2])
    if how == "exit":
        first.send()
        assert first.finish(60) == 0
    else:
        first.kill()
    assert wait_until(lambda: not alive(actor_pid), timeout=20), \
        "the first job's actor on node b was not killed when its driver went away"
    lines = cluster.run_driver(SECOND, timeout=90)
    assert "got B" in lines
    assert alive(detached_pid), "a detached actor must outlive its job"
