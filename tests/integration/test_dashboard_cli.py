"""`raylite start --head` serves the dashboard and every node its /metrics; the URL and
ports are where tools look (current_cluster file, node table); `raylite stop` (the
fixture's teardown, which fails on any leftover process) takes the dashboard down too."""
from __future__ import annotations

import http.client
import json
import os
import urllib.parse

from faults import cli


def _get(url: str, path: str, headers=None) -> tuple[int, str]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_head_serves_dashboard_and_nodes_serve_metrics(local_cluster):
    cluster = local_cluster()
    head = cluster.start_head(num_cpus=1)
    worker = cluster.add_node("second")
    with open(os.path.join(cluster.run_dir, "current_cluster")) as f:
        url = json.load(f)["dashboard_url"]
    assert url.startswith("http://127.0.0.1:")
    status, _ = _get(url, "/api/nodes")
    assert status == 401
    status, body = _get(url, "/api/nodes", {"Authorization": f"Bearer {cluster.token}"})
    assert status == 200
    rows = {r["node_id"]: r for r in json.loads(body)["rows"]}
    assert set(rows) == {head.node_id, worker.node_id}
    assert rows[head.node_id]["is_head"] and not rows[worker.node_id]["is_head"]
    for node_id, row in rows.items():
        port = row["metrics_export_port"]
        assert port > 0
        status, text = _get(f"http://127.0.0.1:{port}", "/metrics")
        assert status == 200
        assert f'raylite_resources{{Name="CPU",NodeId="{node_id}",State="AVAILABLE"}}' in text
    assert 'Name="second"' in _get(f"http://127.0.0.1:{rows[worker.node_id]['metrics_export_port']}",
                                   "/metrics")[1]


def test_dashboard_can_be_turned_off(local_cluster):
    cluster = local_cluster()
    before = set(os.listdir(cluster.run_dir)) if os.path.isdir(cluster.run_dir) else set()
    out = cli(["start", "--head", "--port", "0", "--num-cpus", "1", "--include-dashboard", "false",
               "--metrics-export-port", "-1"], cluster.env, timeout=90).stdout
    assert "dashboard:" not in out
    with open(os.path.join(cluster.run_dir, "current_cluster")) as f:
        assert json.load(f)["dashboard_url"] == ""
    new = [d for d in set(os.listdir(cluster.run_dir)) - before if d.startswith("s-")]
    assert len(new) == 1


def test_embedded_dashboard_dies_with_its_driver(embedded_env):
    """A driver that started a dashboard is SIGKILLed: the dashboard (parent-death
    signal), scheduler, workers and Redis all go; nothing of the cluster is left."""
    import signal
    import subprocess
    import sys
    env, leftovers = embedded_env
    code = ("import raylite as ray, sys\n"
            "ctx = ray.init(num_cpus=1, include_dashboard=True, dashboard_port=0)\n"
            "print(ctx.dashboard_url, flush=True)\n"
            "sys.stdin.read()\n")
    driver = subprocess.Popen([sys.executable, "-c", code], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = driver.stdout.readline().strip()
        assert url.startswith("127.0.0.1:"), url
        status, _ = _get("http://" + url, "/api/nodes")
        assert status == 401
        assert any("raylite.dashboard" in line for line in leftovers.processes())
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    leftovers.assert_gone(what="after the driver was killed")
