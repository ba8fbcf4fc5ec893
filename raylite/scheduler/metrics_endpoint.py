"""The node's Prometheus endpoint: ``GET /metrics`` on the node scheduler.

Each node scheduler serves its own metrics (as each Ray node exports on its
``--metrics-export-port``): leases, workers, resources, object store and spilling,
actors on this node, the handling time of the scheduler's RPCs, the user metrics of
``raylite.util.metrics`` recorded on this node, and (on the head) the cluster's tasks by
state from the task events. The port is recorded in the node's GCS record
(``NodeRecord.metrics_export_port``) so tools can find it.

The port is bound at start (a plain socket: the node registers with it), and the HTTP
server (prometheus-client's WSGI exposition) is built and served on a thread of its
own, so neither its imports nor a scrape run on the scheduler's event loop: the scheduler's own counters are read
on the loop through ``run_coroutine_threadsafe`` (one consistent sample), the GCS
(actors, user metrics) from the scrape thread.

Security: Prometheus scrapes without credentials, so on a loopback address (the
default) no token is asked. Bound beyond this machine, every request must carry the
cluster token as ``Authorization: Bearer <token>`` (Prometheus: ``authorization:
credentials_file``); anything else gets 401 before any metric is read.
"""
from __future__ import annotations

import asyncio
import bisect
import functools
import hmac
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger("raylite.scheduler.metrics")

# Milliseconds: lease grants range from microseconds (an idle worker) to seconds
# (waiting for a worker to start or for resources to free up).
RPC_BUCKETS_MS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
                  1000.0, 2500.0, 10000.0)

# Every system metric is exported under both prefixes: raylite_ (ours) and ray_ (the
# names Ray's Grafana dashboards and alerts already use).
PREFIXES = ("raylite_", "ray_")


class RpcLatency:
    """Handling time per RPC method, bucketed as a Prometheus histogram.

    Written only on the scheduler's event loop (no lock); a scrape reads a copy taken
    on that loop too."""

    def __init__(self, bounds: tuple = RPC_BUCKETS_MS):
        self.bounds = tuple(bounds)
        self.series: dict[str, list] = {}   # method -> [bucket counts (last: +Inf), sum ms]

    def observe(self, method: str, ms: float) -> None:
        entry = self.series.get(method)
        if entry is None:
            entry = self.series[method] = [[0] * (len(self.bounds) + 1), 0.0]
        entry[0][bisect.bisect_left(self.bounds, ms)] += 1
        entry[1] += ms

    def snapshot(self) -> dict:
        """method -> (per-bucket counts, sum in ms)."""
        return {method: (list(counts), total) for method, (counts, total) in self.series.items()}


def timed_rpc(method: str):
    """Decorate an async gRPC handler of an object with an ``rpc_latency`` (RpcLatency)
    so its handling time is observed; the handler's result and errors pass through."""
    def wrap(handler):
        @functools.wraps(handler)
        async def timed(self, request, context):
            start = time.perf_counter()
            try:
                return await handler(self, request, context)
            finally:
                self.rpc_latency.observe(method, (time.perf_counter() - start) * 1000.0)
        return timed
    return wrap


@dataclass
class NodeSample:
    """What one scrape reads from the scheduler, taken on its event loop."""

    node_id: str
    total: dict
    available: dict
    workers: dict               # kind (idle, leased, actor, starting, driver) -> count
    leases: dict                # state (PENDING, GRANTED) -> count
    store_used: int
    store_capacity: int
    spilled_bytes: int
    num_objects: int
    num_spilled: int
    rpc: dict = field(default_factory=dict)   # RpcLatency.snapshot()


def metric_families(sample: NodeSample, actors: Iterable, user_metrics: dict,
                    tasks: dict, bounds: tuple = RPC_BUCKETS_MS) -> list:
    """The Prometheus metric families of one scrape (pure: no I/O).

    ``actors``: ActorRecords on this node; ``user_metrics``: raylite.util.metrics'
    snapshot (only this node's series are exported); ``tasks``: (name, state, node id)
    -> count (the head exports the whole cluster's; node id '' for tasks not placed yet).
    """
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    out: list = []
    node = sample.node_id
    for prefix in PREFIXES:
        g = GaugeMetricFamily(prefix + "resources", "Logical resources of this node by state",
                              labels=["Name", "State", "NodeId"])
        for name, total in sorted(sample.total.items()):
            free = float(sample.available.get(name, 0.0))
            g.add_metric([name, "USED", node], max(0.0, float(total) - free))
            g.add_metric([name, "AVAILABLE", node], free)
        out.append(g)
        g = GaugeMetricFamily(prefix + "object_store_memory",
                              "Object store bytes on this node by location",
                              labels=["Location", "NodeId"])
        g.add_metric(["MMAP_SHM", node], float(sample.store_used))
        g.add_metric(["SPILLED", node], float(sample.spilled_bytes))
        out.append(g)
        out.append(_gauge(prefix + "object_store_capacity_bytes",
                          "Shared-memory object store capacity", node, sample.store_capacity))
        out.append(_gauge(prefix + "object_store_available_memory",
                          "Free shared-memory object store bytes", node,
                          max(0, sample.store_capacity - sample.store_used)))
        out.append(_gauge(prefix + "spilled_bytes", "Bytes of objects spilled to disk", node,
                          sample.spilled_bytes))
        g = GaugeMetricFamily(prefix + "object_store_num_local_objects",
                              "Objects in this node's store", labels=["State", "NodeId"])
        g.add_metric(["IN_MEMORY", node], float(sample.num_objects - sample.num_spilled))
        g.add_metric(["SPILLED", node], float(sample.num_spilled))
        out.append(g)
        g = GaugeMetricFamily(prefix + "workers", "Worker processes by kind",
                              labels=["Kind", "NodeId"])
        for kind, n in sorted(sample.workers.items()):
            g.add_metric([kind, node], float(n))
        out.append(g)
        g = GaugeMetricFamily(prefix + "leases", "Worker leases by state",
                              labels=["State", "NodeId"])
        for state, n in sorted(sample.leases.items()):
            g.add_metric([state, node], float(n))
        out.append(g)
        g = GaugeMetricFamily(prefix + "actors", "Actors on this node by state",
                              labels=["Name", "State", "NodeId"])
        counts: dict = {}
        for record in actors:
            key = (record.class_name, record.state)
            counts[key] = counts.get(key, 0) + 1
        for (name, state), n in sorted(counts.items()):
            g.add_metric([name, state, node], float(n))
        out.append(g)
        g = GaugeMetricFamily(prefix + "tasks", "Tasks by state (from the task events)",
                              labels=["Name", "State", "NodeId"])
        for (name, state, task_node), n in sorted(tasks.items()):
            g.add_metric([name, state, task_node], float(n))
        out.append(g)
        h = HistogramMetricFamily(prefix + "grpc_server_req_process_time_ms",
                                  "Handling time of the node scheduler's RPCs (ms)",
                                  labels=["Method", "NodeId"])
        for method, (counts, total) in sorted(sample.rpc.items()):
            h.add_metric([method, node], _cumulative(bounds, counts), total)
        out.append(h)
    # User metrics: Ray exports them as ray_<name>; raylite_<name> too.
    for name, entry in sorted(user_metrics.items()):
        series = [s for s in entry.get("series", ()) if s.get("node_id") == node]
        if not series:
            continue
        tag_keys = sorted({k for s in series for k in s["tags"]})
        for prefix in PREFIXES:
            full = prefix + name
            kind = entry.get("type")
            doc = entry.get("description", "")
            if kind == "histogram":
                hist = HistogramMetricFamily(full, doc, labels=tag_keys)
                for s in series:
                    hist.add_metric([str(s["tags"].get(k, "")) for k in tag_keys],
                                    _cumulative(entry.get("boundaries", ()), s["buckets"]),
                                    s.get("sum", 0.0))
                out.append(hist)
                continue
            family = (CounterMetricFamily(full, doc, labels=tag_keys) if kind == "counter"
                      else GaugeMetricFamily(full, doc, labels=tag_keys))
            for s in series:
                family.add_metric([str(s["tags"].get(k, "")) for k in tag_keys], float(s["value"]))
            out.append(family)
    return out


def _gauge(name: str, doc: str, node: str, value) -> object:
    from prometheus_client.core import GaugeMetricFamily
    g = GaugeMetricFamily(name, doc, labels=["NodeId"])
    g.add_metric([node], float(value))
    return g


def _cumulative(bounds, counts) -> list:
    """Prometheus buckets [(le, cumulative count)] from per-bucket counts (last: +Inf)."""
    running = 0
    out = []
    for bound, n in zip(list(bounds) + ["+Inf"], counts):
        running += int(n)
        out.append((str(float(bound)) if bound != "+Inf" else "+Inf", running))
    return out


class NodeCollector:
    """A prometheus-client collector over a live node scheduler."""

    def __init__(self, sample: Callable[[], NodeSample], gcs, node_id: str, cluster_wide: bool,
                 tasks: Callable[[], dict] | None = None):
        self.sample = sample
        self.gcs = gcs
        self.node_id = node_id
        self.cluster_wide = cluster_wide   # also reports what no node holds yet
        self.tasks = tasks or (lambda: {})

    def _actors(self) -> list:
        # Pending actors have no node yet: the head reports them.
        return [r for r in self.gcs.all_actors().values()
                if r.node_id == self.node_id or (self.cluster_wide and not r.node_id)]

    def _user_metrics(self) -> dict:
        from raylite.util.metrics_buffer import aggregate
        return aggregate(*self.gcs.read_metrics())

    def collect(self):
        sample = self.sample()
        actors: list = []
        user: dict = {}
        tasks: dict = {}
        for what, read in (("actors", self._actors), ("user metrics", self._user_metrics),
                           ("tasks", self.tasks)):
            try:
                value = read()
            except Exception as exc:   # the GCS may be away: export what this node knows
                log.warning("metrics: could not read %s: %s", what, exc)
                continue
            if what == "actors":
                actors = value
            elif what == "user metrics":
                user = value
            else:
                tasks = value
        yield from metric_families(sample, actors, user, tasks)


def task_counts_reader(gcs, ttl_s: float = 10.0) -> Callable[[], dict]:
    """A reader of the cluster's tasks by (name, state, node id), from the task events of
    the state API (raylite.util.state), cached ``ttl_s`` seconds since merging every
    recorded event is not free."""
    from raylite.util.state import task_rows
    cache: dict = {"at": float("-inf"), "counts": {}}

    def read() -> dict:
        now = time.monotonic()
        if now - cache["at"] >= ttl_s:
            counts: dict = {}
            for row in task_rows(gcs):
                key = (row.get("name") or row.get("func_or_class_name") or "",
                       row.get("state") or "", row.get("node_id") or "")
                counts[key] = counts.get(key, 0) + 1
            cache["at"], cache["counts"] = now, counts
        return cache["counts"]
    return read


def sample_on_loop(loop: asyncio.AbstractEventLoop, take: Callable[[], NodeSample],
                   timeout: float = 5.0) -> Callable[[], NodeSample]:
    """A function, callable from any thread, that runs ``take`` on ``loop`` (which owns
    the state it reads) and returns its result. Raises TimeoutError when the loop does
    not answer within ``timeout`` seconds."""
    async def on_loop() -> NodeSample:
        return take()

    def sample() -> NodeSample:
        return asyncio.run_coroutine_threadsafe(on_loop(), loop).result(timeout)
    return sample


def bearer_ok(header: str, token: str) -> bool:
    """True when an Authorization header carries ``Bearer <token>`` (constant-time)."""
    scheme, _, value = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def bind_metrics_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host:port`` (0: a free port) at once, cheaply, so the node
    can record the port when it registers; MetricsServer serves it later. Raises
    OSError when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=64)


class MetricsServer:
    """The HTTP server of /metrics on a daemon thread, over a socket from
    bind_metrics_socket. ``port`` is the bound port."""

    def __init__(self, collector, sock: socket.socket, token: str):
        from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

        from prometheus_client import CollectorRegistry, make_wsgi_app

        from raylite.security.exposure import is_loopback
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        app = make_wsgi_app(registry)
        host, port = sock.getsockname()[:2]
        need_token = not is_loopback(host)

        def guarded(environ, start_response):
            if need_token and not bearer_ok(environ.get("HTTP_AUTHORIZATION", ""), token):
                start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                    ("WWW-Authenticate", "Bearer")])
                return [b"the cluster token is required (Authorization: Bearer <token>)\n"]
            return app(environ, start_response)

        class Quiet(WSGIRequestHandler):
            def log_message(self, format, *args):  # noqa: A002  (the base class's name)
                pass

        class Threading(socketserver.ThreadingMixIn, WSGIServer):
            daemon_threads = True

        # Serve the socket bound earlier: skip the server's own bind and take what its
        # server_bind would have recorded.
        self.httpd = Threading((host, port), Quiet, bind_and_activate=False)
        self.httpd.socket.close()
        self.httpd.socket = sock
        self.httpd.server_name, self.httpd.server_port = host, port
        self.httpd.setup_environ()
        self.httpd.set_app(guarded)
        self.port = int(port)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True,
                                       name="raylite-metrics-http")
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
