"""The dashboard and the node metrics endpoint over HTTP, on a real local cluster:
nothing without the cluster token, the login cookie, the JSON API, log tails, and the
Prometheus exposition (resources, actors, RPC latencies, user metrics)."""
from __future__ import annotations

import http.client
import json
import time
import urllib.parse

import pytest

import raylite as ray
from raylite.core import global_state
from raylite.util import metrics

RAY_INIT_KWARGS = {"num_cpus": 2, "include_dashboard": True, "dashboard_port": 0}


@pytest.fixture(scope="module")
def cluster(ray_start):
    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    class Counter:
        def __init__(self):
            self.n = 0

        def inc(self):
            self.n += 1
            return self.n

    assert ray.get([square.remote(i) for i in range(20)]) == [i * i for i in range(20)]
    counters = [Counter.options(name=f"dash-counter-{i}").remote() for i in range(2)]
    assert ray.get([c.inc.remote() for c in counters]) == [1, 1]
    metrics.Counter("dash_test_events", description="events", tag_keys=("kind",)).inc(
        5, tags={"kind": "x"})
    metrics.snapshot()   # sends this process's buffered updates
    url = urllib.parse.urlsplit("http://" + ray_start.dashboard_url)
    yield {"host": url.hostname, "port": url.port, "counters": counters,
           "token": global_state.connection().worker.token,
           "gcs": global_state.connection().gcs}


def _get(cluster, path, headers=None, method="GET", body=None):
    conn = http.client.HTTPConnection(cluster["host"], cluster["port"], timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def _bearer(cluster) -> dict:
    return {"Authorization": f"Bearer {cluster['token']}"}


def test_init_reports_the_dashboard_url(ray_start):
    assert ray_start.dashboard_url.startswith("127.0.0.1:")   # host:port, as in Ray
    assert ray_start["webui_url"] == ray_start.dashboard_url


@pytest.mark.parametrize("path", ["/nodes", "/actors", "/tasks", "/objects", "/logs",
                                  "/timeline", "/"])
def test_pages_without_the_token_redirect_to_login(cluster, path):
    status, headers, body = _get(cluster, path)
    assert status == 303 and headers["Location"].startswith("/login")
    node_id = global_state.connection().worker.node_id
    assert node_id not in body


@pytest.mark.parametrize("path", ["/api/nodes", "/api/actors", "/api/tasks", "/api/objects",
                                  "/api/logs", "/api/timeline"])
def test_api_without_the_token_is_refused(cluster, path):
    status, _, body = _get(cluster, path)
    assert status == 401 and "token" in json.loads(body)["error"]
    status, _, _ = _get(cluster, path, {"Authorization": "Bearer wrong"})
    assert status == 401
    status, _, _ = _get(cluster, path, {"Cookie": "raylite_dashboard=" + "0" * 64})
    assert status == 401


def test_wrong_token_on_login_is_refused(cluster):
    status, headers, _ = _get(cluster, "/nodes?token=wrong")
    assert status == 401 and "Set-Cookie" not in headers
    form = urllib.parse.urlencode({"token": "wrong", "next": "/nodes"})
    status, headers, body = _get(cluster, "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                                 "POST", form)
    assert status == 401 and "not the cluster token" in body and "Set-Cookie" not in headers


def test_token_link_sets_a_strict_httponly_cookie_and_drops_the_token(cluster):
    status, headers, _ = _get(cluster, f"/actors?state=ALIVE&token={cluster['token']}")
    assert status == 303
    assert headers["Location"] == "/actors?state=ALIVE"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert cluster["token"] not in cookie
    value = cookie.split(";")[0]
    status, headers, body = _get(cluster, "/actors?state=ALIVE", {"Cookie": value})
    assert status == 200 and "dash-counter-0" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]


def test_api_nodes_and_actors(cluster):
    status, _, body = _get(cluster, "/api/nodes", _bearer(cluster))
    assert status == 200
    rows = json.loads(body)["rows"]
    node = rows[0]
    assert node["alive"] and node["resources"]["CPU"]["total"] == 2.0
    assert node["store_capacity"] > 0 and node["store_used"] is not None
    assert node["metrics_export_port"] > 0
    status, _, body = _get(cluster, "/api/actors?state=ALIVE&limit=1", _bearer(cluster))
    data = json.loads(body)
    assert data["total"] == 2 and len(data["rows"]) == 1
    assert data["rows"][0]["class_name"] == "Counter"
    assert data["by_state"]["ALIVE"] == 2


def test_logs_are_listed_and_tailed_only_inside_the_log_directory(cluster):
    status, _, body = _get(cluster, "/api/logs", _bearer(cluster))
    files = json.loads(body)["rows"]
    scheduler_log = next(f for f in files if f["name"].startswith("scheduler-"))
    query = urllib.parse.urlencode({"node": scheduler_log["node_id"], "name": scheduler_log["name"]})
    status, _, text = _get(cluster, "/api/logs?" + query, _bearer(cluster))
    assert status == 200 and "metrics at http://" in text
    for name in ("../token", "/etc/passwd", ".hidden", "nope.log"):
        query = urllib.parse.urlencode({"node": scheduler_log["node_id"], "name": name})
        status, _, _ = _get(cluster, "/api/logs?" + query, _bearer(cluster))
        assert status == 404


def _eventually(read, check, timeout: float = 30.0):
    """``read()`` until ``check(value)`` holds (task events arrive within a second or so)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_api_tasks_pages_and_filters(cluster):
    def read(path):
        return json.loads(_get(cluster, path, _bearer(cluster))[2])
    data = _eventually(lambda: read("/api/tasks?state=FINISHED&limit=5"),
                       lambda d: d["total"] >= 24)
    assert data["total"] >= 24 and len(data["rows"]) == 5    # 20 squares, 2 creations, 2 incs
    assert all(r["state"] == "FINISHED" for r in data["rows"])
    names = {r["name"] for r in read("/api/tasks?limit=1000")["rows"]}
    assert any(n.endswith("square") for n in names) and "Counter.inc" in names
    second = read("/api/tasks?state=FINISHED&limit=5&offset=5")["rows"]
    assert not {r["task_id"] for r in second} & {r["task_id"] for r in data["rows"]}
    one = data["rows"][0]["task_id"]
    status, _, body = _get(cluster, f"/api/tasks/{one}", _bearer(cluster))
    assert status == 200 and json.loads(body)["task_id"] == one
    status, _, _ = _get(cluster, "/api/tasks/ffffffffffffffff", _bearer(cluster))
    assert status == 404


def test_infeasible_work_is_shown_on_the_nodes_page(cluster):
    @ray.remote(resources={"dash_test_nowhere": 1})
    def stuck():
        return 1

    ref = stuck.remote()   # stays pending: no node has the resource (as in Ray)
    data = _eventually(lambda: json.loads(_get(cluster, "/api/nodes", _bearer(cluster))[2]),
                       lambda d: d["demand"]["infeasible"], timeout=30)
    group = data["demand"]["infeasible"][0]
    assert group["resources"].get("dash_test_nowhere") == 1 and group["count"] == 1
    status, _, body = _get(cluster, "/nodes", _bearer(cluster))
    assert "Waiting for resources" in body and "dash_test_nowhere" in body
    ray.cancel(ref)


def test_timeline_downloads_as_json(cluster):
    status, headers, body = _get(cluster, "/api/timeline?download=1", _bearer(cluster))
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    assert isinstance(json.loads(body), list)


def _scrape(port: int, headers=None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def test_metrics_endpoint_of_the_node(cluster):
    node = next(iter(cluster["gcs"].alive_nodes().values()))
    assert node.metrics_export_port > 0
    deadline = time.monotonic() + 30
    while True:   # user metrics reach the GCS within a flush interval
        status, text = _scrape(node.metrics_export_port)
        if 'ray_dash_test_events_total{kind="x"} 5.0' in text or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200
    nid = node.node_id
    assert 'ray_dash_test_events_total{kind="x"} 5.0' in text
    assert 'raylite_dash_test_events_total{kind="x"} 5.0' in text
    assert f'raylite_resources{{Name="CPU",NodeId="{nid}",State="AVAILABLE"}}' in text
    assert f'raylite_actors{{Name="Counter",NodeId="{nid}",State="ALIVE"}} 2.0' in text
    assert f'ray_actors{{Name="Counter",NodeId="{nid}",State="ALIVE"}} 2.0' in text
    assert f'raylite_object_store_capacity_bytes{{NodeId="{nid}"}}' in text
    assert f'raylite_workers{{Kind="actor",NodeId="{nid}"}} 2.0' in text
    lease_count = next(line for line in text.splitlines() if line.startswith(
        f'raylite_grpc_server_req_process_time_ms_count{{Method="RequestLease",NodeId="{nid}"}}'))
    assert float(lease_count.split()[-1]) >= 3   # the tasks' lease(s) and two actors
    # Tasks by state, from the task events (the embedded node counts the cluster's).
    def finished(text):
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("raylite_tasks{") and 'State="FINISHED"' in line
                   and "square" in line)
    text = _eventually(lambda: _scrape(node.metrics_export_port)[1],
                       lambda t: finished(t) >= 20, timeout=40)
    assert finished(text) == 20


def test_metrics_beyond_loopback_require_the_token():
    from raylite.scheduler.metrics_endpoint import MetricsServer, bind_metrics_socket

    class Empty:
        def collect(self):
            return []
    server = MetricsServer(Empty(), bind_metrics_socket("0.0.0.0", 0), "secret-token")
    try:
        status, _ = _scrape(server.port)
        assert status == 401
        status, _ = _scrape(server.port, {"Authorization": "Bearer nope"})
        assert status == 401
        status, _ = _scrape(server.port, {"Authorization": "Bearer secret-token"})
        assert status == 200
    finally:
        server.stop()
