"""How long the dashboard's pages take on a cluster that ran many tasks (default
100k): each page and API call is fetched twice (the first may read every task event;
the second is served from the dashboard's cache while it refreshes). Prints seconds;
asserts nothing. Usage: python benchmarks/dashboard_pages.py [NUM_TASKS]"""
from __future__ import annotations

import http.client
import sys
import time

import raylite as ray
from raylite.core import global_state


def fetch(host: str, port: int, path: str, token: str) -> tuple[int, int, float]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=120)
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, len(body), time.perf_counter() - start


def main(num_tasks: int) -> None:
    context = ray.init(num_cpus=2, include_dashboard=True, dashboard_port=0)
    host, port = context.dashboard_url.split(":")
    token = global_state.connection().worker.token

    @ray.remote
    def tiny(i):
        return i

    start = time.perf_counter()
    for first in range(0, num_tasks, 10_000):
        ray.get([tiny.remote(i) for i in range(first, min(num_tasks, first + 10_000))])
    print(f"{num_tasks} tasks ran in {time.perf_counter() - start:.1f} s")
    time.sleep(3)   # task events are sent about once a second
    status, _, seconds = fetch(host, int(port), "/tasks", token)   # the cache was warmed
    print(f"first /tasks view after the run: {seconds:.3f} s (served from the cache)")
    time.sleep(5)   # let its background refresh finish
    for path in ("/nodes", "/actors", "/tasks", "/tasks?state=FINISHED&offset=5000",
                 "/api/tasks?limit=1000", "/objects", "/logs", "/timeline", "/api/timeline"):
        for attempt in ("first", "again"):
            status, size, seconds = fetch(host, int(port), path, token)
            print(f"{path:<40} {attempt:<6} {status} {size / 1024:9.1f} KiB {seconds:7.3f} s")
    node = next(iter(global_state.connection().gcs.alive_nodes().values()))
    for attempt in ("first", "again"):   # the node counts tasks by state (cached 10 s)
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", node.metrics_export_port, timeout=120)
        conn.request("GET", "/metrics")
        size = len(conn.getresponse().read())
        conn.close()
        print(f"{'/metrics of the node':<40} {attempt:<6} 200 {size / 1024:9.1f} KiB "
              f"{time.perf_counter() - start:7.3f} s")
    ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
