"""`raylite logs` and the dashboard read the logs of nodes on other machines through
the node's scheduler (ListLogs / ReadLog, cluster token required). A real CLI cluster;
the reader is told every node's directory is not on this machine, so the RPC path is
the one used; a path outside the logs directory and a wrong token are refused."""
from __future__ import annotations

SCRIPT = r"""
import os, raylite as ray
from raylite.cli import logs_cmd
from raylite.observability.connect import open_gcs
from raylite.protocol import node_pb2
from raylite.scheduler import log_files

ray.init(address="auto")

@ray.remote
def speak():
    print("remote log line 42", flush=True)
    return os.getpid()

pid = ray.get(speak.remote(), timeout=60)
gcs, _ = open_gcs()
nodes = gcs.nodes()
dirs = [(node_id, path, False) for node_id, path, _ in logs_cmd.log_dirs(nodes)]
token = logs_cmd.cluster_token()
names = sorted(name for node_id, _, _ in dirs
               for name, _ in (logs_cmd._remote_listing(nodes[node_id]) or []))
print("listed", any(n.startswith("scheduler-") for n in names),
      any(n.startswith("worker-") for n in names))
remote = None
for _ in range(50):   # the worker's print reaches its log file a moment later
    remote = logs_cmd.find_remote_log(str(pid), nodes, dirs, gcs, token)
    if remote is not None and b"remote log line 42" in remote.read()[0]:
        break
    import time; time.sleep(0.1)
print("worker log", remote is not None and b"remote log line 42" in remote.read()[0])
record = next(iter(nodes.values()))
stub = log_files.node_stub(record, token)
print("traversal", stub.ReadLog(node_pb2.ReadLogRequest(name="../current_cluster")).found)
try:
    log_files.node_stub(record, "wrong-token").ListLogs(node_pb2.common__pb2.Empty(), timeout=10)
    print("wrong token accepted")
except Exception as err:
    print("wrong token refused", type(err).__name__)
"""


def test_logs_of_other_machines_are_read_through_the_scheduler(local_cluster):
    cluster = local_cluster()
    cluster.start_head(num_cpus=1)
    lines = cluster.run_driver(SCRIPT, timeout=120)
    assert "listed True True" in lines, lines
    assert "worker log True" in lines, lines
    assert "traversal False" in lines, lines
    assert any(line.startswith("wrong token refused") for line in lines), lines
