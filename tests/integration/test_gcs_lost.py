"""A node whose GCS is gone for good leaves instead of living on as an orphan (as Ray's
raylet does after gcs_rpc_server_reconnect_timeout_s): Redis SIGKILLed and never
restarted, the scheduler and every process below it exit; a short outage (shorter
than the timeout) is survived, as test_node_faults checks with its Redis restarts."""
from __future__ import annotations

from faults import alive, wait_until


def test_nodes_leave_when_the_gcs_never_comes_back(local_cluster):
    cluster = local_cluster()
    cluster.env["RAYLITE_GCS_RECONNECT_TIMEOUT_S"] = "2"
    head = cluster.start_head(num_cpus=1)
    other = cluster.add_node("b", num_cpus=1)
    pids = head.tree() + other.tree()
    assert all(alive(pid) for pid in pids)
    cluster.kill_redis()
    assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30), \
        f"still running 30 s after the GCS died: {[p for p in pids if alive(p)]}"
