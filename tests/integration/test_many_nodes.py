"""Six CLI nodes on one machine (issue 14, point 5, scaled down from 20): they start,
`raylite status` shows every one, a few thousand tasks spread over all of them, and
`raylite stop` leaves no process and no /dev/shm segment (the local_cluster fixture's
teardown checks; see faults.py). The 20-node run is benchmarks/bench_many_nodes.py."""
from __future__ import annotations

import textwrap

NODES = 6
CPUS = 0.5      # fractional: six nodes share this machine's cores


def test_six_nodes_run_thousands_of_tasks_on_every_node_and_stop_cleanly(local_cluster):
    cluster = local_cluster()
    cluster.start_head(num_cpus=CPUS)
    for i in range(NODES - 1):
        cluster.add_node(f"n{i}", num_cpus=CPUS)
    lines = cluster.run_driver(textwrap.dedent(f"""
        import collections, time
        import raylite as ray
        ray.init(address="auto")
        deadline = time.monotonic() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < {NODES}:
            assert time.monotonic() < deadline, ray.nodes()   # a bounded wait
            time.sleep(0.1)

        @ray.remote(num_cpus={CPUS}, scheduling_strategy="SPREAD")
        def where(i):
            return i, ray.get_runtime_context().get_node_id()

        out = ray.get([where.remote(i) for i in range(3000)])
        assert [i for i, _ in out] == list(range(3000))
        per_node = collections.Counter(node for _, node in out)
        print("nodes_used", len(per_node))
        print("alive", sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]) == sorted(per_node))
    """), timeout=300)
    assert f"nodes_used {NODES}" in lines and "alive True" in lines, lines
    status = cluster.status()
    alive = [line for line in status.splitlines() if line.startswith("node ") and "ALIVE" in line]
    assert len(alive) == NODES, status
    assert {line.split()[1] for line in alive} == {n.node_id[:8] for n in cluster.nodes}


def test_the_node_table_version_moves_with_membership_only(tmp_path):
    """What the heartbeat's TableSchedule rests on, against a real redis-server: a beat
    returns the table version, which moves on a join, a death and a revival, never on
    a beat."""
    from raylite.gcs.client import GcsClient
    from raylite.gcs.records import NodeRecord
    from raylite.gcs.redis_server import start_redis

    proc, port, _ = start_redis(str(tmp_path / "redis"), "pw")
    gcs = GcsClient(f"127.0.0.1:{port}", "pw", retry_s=0.3)
    try:
        assert gcs.heartbeat("n1", {"CPU": 1.0}) == 0          # never set: 0
        gcs.register_node(NodeRecord(node_id="n1", address="127.0.0.1:1"))
        joined = gcs.heartbeat("n1", {"CPU": 1.0})
        assert joined >= 1 and gcs.heartbeat("n1", None) == joined
        gcs.mark_node_dead("n1", "test")
        dead = gcs.heartbeat("n1", None)
        gcs.revive_node("n1")
        assert joined < dead < gcs.heartbeat("n1", None)
    finally:
        gcs.close()
        proc.terminate()
        proc.wait(10)
