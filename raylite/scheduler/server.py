"""The node scheduler process: a gRPC shell around SchedulerState.

It grants worker leases (the submitter then streams tasks straight to the worker) or
spills them to another node (SchedulerState.place decides), starts and reaps worker
processes, owns the node's shared-memory store and registers its service
(raylite.object_store.service), beats a heartbeat into the GCS, and — for the
embedded cluster — tears everything down when the driver that started it goes away.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import signal
import sys
import time
import uuid
from typing import TYPE_CHECKING

from raylite.gcs.liveness import is_alive
from raylite.gcs.records import NodeRecord
from raylite.object_store.service import ObjectStoreService
from raylite.object_store.store import SharedMemoryStore
from raylite.processes import pid_alive
from raylite.protocol import common_pb2, node_pb2, node_pb2_grpc, objects_pb2_grpc
from raylite.protocol.channels import advertised_host, bind, make_server
from raylite.scheduler import log_files
from raylite.scheduler.heartbeat import Heartbeat
from raylite.scheduler.memory_monitor import MemoryConfig, MemoryMonitor, WorkerRecord
from raylite.scheduler.metrics_endpoint import MetricsServer, NodeSample, RpcLatency, timed_rpc
from raylite.scheduler.pg_cleanup import remove_groups_of
from raylite.scheduler.placement import Peer, group_of
from raylite.scheduler.runtime_envs import RuntimeEnvs
from raylite.scheduler.state import (
    Grant,
    KillWorker,
    LeaseAsk,
    Reject,
    SchedulerState,
    Spill,
    StartWorker,
    Warn,
)
from raylite.scheduler.worker_pool import WorkerProcesses, worker_env

if TYPE_CHECKING:
    from raylite.gcs.client import GcsClient

log = logging.getLogger("raylite.scheduler")


IDLE_WORKER_TIMEOUT_S = 10.0
FAILURE_CAUSES_KEPT = 1024     # why recently killed workers died, by lease id


class NodeScheduler(node_pb2_grpc.NodeSchedulerServicer):

    def __init__(self, cfg, procs: WorkerProcesses | None = None, prestarted: list | None = None):
        self.cfg = cfg
        self.node_id = cfg.node_id
        self.state = SchedulerState(cfg.resources, node_id=cfg.node_id,
                                    max_workers=int(os.environ.get("RAYLITE_MAX_WORKERS") or 0))
        self.store = SharedMemoryStore(cfg.session.shm_dir(cfg.node_id), cfg.object_store_memory,
                                       os.path.join(cfg.session.spill, cfg.node_id[:8]))
        self.object_service = ObjectStoreService(self.store, cfg.node_id)
        self.procs = procs or WorkerProcesses(worker_env(cfg), cfg.session.logs)
        self.addresses: dict[str, common_pb2.Address] = {}
        self.waiters: dict[int, asyncio.Future] = {}
        self.unregistered: set[str] = set(prestarted or ())
        for _ in self.unregistered:
            self.state.worker_starting()
        self.request_ids = itertools.count(1)
        self.gcs: GcsClient = None  # type: ignore[assignment]  # connected once the server is up
        self.stopping = asyncio.Event()
        self.tcp_address = ""
        self.drivers: dict[str, int] = {}
        self.beat: Heartbeat | None = None   # started once the GCS is connected
        self._nodes_read_at = 0.0
        self.envs = RuntimeEnvs(self)
        try:
            memory_config = MemoryConfig.from_env(os.environ)
        except ValueError as exc:
            log.error("bad memory monitor setting (%s); using the defaults", exc)
            memory_config = MemoryConfig()
        self.memory = MemoryMonitor(memory_config, node=f"{cfg.host}, ID: {cfg.node_id}")
        # lease id -> why its worker was killed (asked by the lease holder, see
        # GetWorkerFailureCause); bounded, oldest dropped first.
        self.failure_causes: collections.OrderedDict[bytes, str] = collections.OrderedDict()
        self.rpc_latency = RpcLatency()
        self.metrics: MetricsServer | None = None   # when the node exports metrics

    # ---- actions -------------------------------------------------------------------
    def apply(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Grant):
                fut = self.waiters.pop(action.request_id, None)
                if fut is None or fut.done():
                    self.apply(self.state.lease_returned(action.lease_id, now=time.monotonic()))
                else:
                    fut.set_result(action)
            elif isinstance(action, StartWorker):
                if action.runtime_env:
                    self.envs.start_worker(action.runtime_env)
                else:
                    self.start_worker()
            elif isinstance(action, KillWorker):
                self.procs.kill(action.worker_id)
                self.addresses.pop(action.worker_id, None)
                if action.orphaned_actor:
                    self._actor_lost_owner(action.orphaned_actor)
            elif isinstance(action, Spill):
                fut = self.waiters.pop(action.request_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(action)
            elif isinstance(action, Warn):
                log.warning("%s", action.message)
                sys.stderr.write(f"raylite: {action.message}\n")
            elif isinstance(action, Reject):
                fut = self.waiters.pop(action.request_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(action)

    def _finish_job(self, job_hex: str) -> None:
        """Tell every node the driver of ``job_hex`` went away (they stop its work)."""
        try:
            self.gcs.finish_job(job_hex)
        except Exception as exc:  # the GCS may be going away with the cluster
            log.warning("could not record the end of job %s: %s", job_hex[:8], exc)

    def jobs_finished(self, jobs: list[str]) -> None:
        """Drivers went away somewhere: stop their jobs' non-detached work here."""
        for job_hex in jobs:
            self.apply(self.state.job_finished(bytes.fromhex(job_hex)))

    def _actor_lost_owner(self, actor_id: bytes) -> None:
        """A non-detached actor's owner died, so the actor dies too (as in Ray): record
        it DEAD and free its name. Its owner can no longer do this itself."""
        if self.gcs is None:
            return
        hex_id = actor_id.hex()
        try:
            record = self.gcs.get_actor(hex_id)
            if record is None or record.is_dead:
                return
            record = record.replace(state="DEAD", death_cause="its owner (driver or worker) died",
                                    address=b"", pid=0)
            self.gcs.put_actor(record)
            if record.name:
                self.gcs.release_actor_name(record.namespace, record.name, hex_id)
        except Exception as exc:  # the GCS may be going away with the cluster
            log.warning("could not record actor %s as dead: %s", hex_id[:8], exc)

    def start_worker(self, runtime_env: str = "", extra_env: dict | None = None) -> None:
        worker_id = uuid.uuid4().hex
        try:
            self.procs.spawn(worker_id, extra_env) if extra_env else self.procs.spawn(worker_id)
            self.unregistered.add(worker_id)
            if runtime_env:
                self.envs.of_worker[worker_id] = runtime_env
        except OSError as exc:
            log.error("could not start a worker: %s", exc)
            self.apply(self.state.worker_start_failed(runtime_env))

    # ---- NodeScheduler service ----------------------------------------------------------
    @timed_rpc("RegisterWorker")
    async def RegisterWorker(self, request, context):
        reply = node_pb2.RegisterReply(node_id=self.node_id, store_dir=self.store.directory,
                                       store_capacity=self.store.capacity)
        if request.is_driver:
            return reply
        wid = request.address.worker_id
        self.unregistered.discard(wid)
        self.addresses[wid] = request.address
        self.apply(self.state.worker_registered(wid, request.address.pid, time.monotonic(),
                                                self.envs.registered(wid)))
        return reply

    @timed_rpc("RequestLease")
    async def RequestLease(self, request, context):
        resources = dict(request.resources)
        placement = self.state.place(resources, request.strategy, request.spilled, self._peers)
        if placement.error:
            return node_pb2.LeaseReply(rejected=True, error=placement.error)
        if placement.spill_to:
            return node_pb2.LeaseReply(spill_to=placement.spill_to)
        rid = next(self.request_ids)
        fut = asyncio.get_running_loop().create_future()
        self.waiters[rid] = fut
        ask = LeaseAsk(rid, resources,
                       dict(request.running_resources) if request.for_actor else None,
                       request.for_actor, request.owner_worker_id, request.job_id,
                       request.actor_id, movable=not request.strategy,
                       queued_at=time.monotonic(), bundle=group_of(request.strategy),
                       runtime_env=request.runtime_env, retriable=request.retriable)
        self.apply(self.state.request(ask))
        try:
            outcome = await fut
        except asyncio.CancelledError:
            self.waiters.pop(rid, None)
            self.state.cancel_request(rid)
            raise
        if isinstance(outcome, Reject):
            return node_pb2.LeaseReply(rejected=True, error=outcome.reason,
                                       runtime_env_failed=outcome.runtime_env_failed)
        if isinstance(outcome, Spill):
            return node_pb2.LeaseReply(spill_to=outcome.address)
        lease_id = outcome.lease_id

        def reclaim_if_unheard(_):
            # The requester went away before the grant reached it: take the lease back.
            if context.cancelled():
                self.apply(self.state.lease_returned(lease_id, now=time.monotonic()))
        context.add_done_callback(reclaim_if_unheard)
        return node_pb2.LeaseReply(lease_id=outcome.lease_id, worker=self.addresses[outcome.worker_id],
                                   gpu_ids=outcome.gpu_ids, reusable=placement.alone)

    def _alive_nodes(self) -> dict:
        """The alive nodes (NodeRecords) of the table the heartbeat thread last read:
        no Redis call on the event loop."""
        now = time.time()
        nodes = self.beat.nodes if self.beat is not None else {}
        return {n: info for n, info in nodes.items() if is_alive(info, now)}

    def _peers(self) -> list[Peer]:
        """The alive nodes as placement decisions take them (see peer_from_node)."""
        return [peer_from_node(node_id, info, self.node_id)
                for node_id, info in self._alive_nodes().items()]

    @timed_rpc("ReturnLease")
    async def ReturnLease(self, request, context):
        self.apply(self.state.lease_returned(request.lease_id, request.kill_worker, time.monotonic()))
        return common_pb2.Empty()

    @timed_rpc("NotifyBlocked")
    async def NotifyBlocked(self, request, context):
        self.apply(self.state.set_blocked(request.worker_id, request.blocked))
        return common_pb2.Empty()

    @timed_rpc("KillWorker")
    async def KillWorker(self, request, context):
        wid = request.worker_id
        if not wid and request.lease_id:
            worker = self.state._by_lease(request.lease_id)
            wid = worker.worker_id if worker else ""
        if wid:
            self.procs.kill(wid)
        return common_pb2.Empty()

    async def GetWorkerFailureCause(self, request, context):
        message = self.failure_causes.get(request.lease_id, "")
        return node_pb2.WorkerFailureReply(oom=bool(message), message=message)

    async def ListLogs(self, request, context):
        files = await asyncio.to_thread(log_files.list_logs, self.cfg.session.logs)
        return node_pb2.LogList(files=[node_pb2.LogFile(name=f.name, size=f.size, mtime=f.mtime)
                                       for f in files])

    async def ReadLog(self, request, context):
        found = await asyncio.to_thread(log_files.read_tail, self.cfg.session.logs,
                                        request.name, request.max_bytes)
        if found is None:
            return node_pb2.ReadLogReply(found=False)
        return node_pb2.ReadLogReply(found=True, data=found[0], size=found[1])

    async def WatchDriver(self, request, context):
        driver = request.address.worker_id
        self.drivers[driver] = request.address.pid
        try:
            await self.stopping.wait()
        finally:
            self.drivers.pop(driver, None)
            if not self.stopping.is_set():
                self.apply(self.state.owner_died(driver))
                if self.gcs is not None:   # its placement groups on other nodes
                    asyncio.get_running_loop().create_task(
                        remove_groups_of(driver, self.gcs, self.node_id, self.cfg.token))
                self.store.delete_owned_by(driver)
                if request.job_id:
                    asyncio.get_running_loop().run_in_executor(
                        None, self._finish_job, request.job_id.hex())
                if self.cfg.embedded_driver_pid and request.address.pid == self.cfg.embedded_driver_pid:
                    log.info("embedding driver %s went away; shutting down", driver[:8])
                    self.stopping.set()
        if False:  # pragma: no cover - makes this an async generator
            yield common_pb2.Empty()

    @timed_rpc("GetNodeInfo")
    async def GetNodeInfo(self, request, context):
        return node_pb2.NodeInfoReply(
            node_id=self.node_id, total=self.state.total, available=self.state.available,
            num_workers=self.procs.count(), store_used=self.store.used,
            store_capacity=self.store.capacity)

    # ---- placement group bundles (two-phase; see raylite.scheduler.bundles) -----------
    async def PrepareBundles(self, request, context):
        wanted = [(b.index, dict(b.resources)) for b in request.bundles]
        ok = self.state.prepare_bundles(request.pg_id, wanted, request.owner_worker_id,
                                        request.commit)
        if ok and request.commit:
            self.apply(self.state.schedule())
        return node_pb2.BundlesReply(ok=ok)

    async def CommitBundles(self, request, context):
        ok, actions = self.state.commit_bundles(request.pg_id)
        self.apply(actions)
        return node_pb2.BundlesReply(ok=ok)

    async def CancelBundles(self, request, context):
        self.apply(self.state.cancel_bundles(request.pg_id,
                                             indices=set(request.indices) or None))
        return node_pb2.BundlesReply(ok=True)

    async def Shutdown(self, request, context):
        asyncio.get_running_loop().call_later(0.01, self.stopping.set)
        return common_pb2.Empty()

    def metrics_sample(self) -> NodeSample:
        """The node's counters for a metrics scrape (call on the event loop)."""
        workers = {"idle": 0, "leased": 0, "actor": 0}
        for worker in self.state.workers.values():
            if worker.for_actor and worker.lease_id:
                workers["actor"] += 1
            elif worker.lease_id:
                workers["leased"] += 1
            else:
                workers["idle"] += 1
        workers["starting"] = len(self.unregistered)
        workers["driver"] = len(self.drivers)
        granted = sum(1 for w in self.state.workers.values() if w.lease_id)
        store = self.store
        return NodeSample(
            node_id=self.node_id, total=dict(self.state.total),
            available=dict(self.state.available), workers=workers,
            leases={"PENDING": len(self.state.pending), "GRANTED": granted},
            store_used=store.used, store_capacity=store.capacity,
            spilled_bytes=store.spilled_bytes, num_objects=len(store.objects),
            num_spilled=sum(1 for o in store.objects.values() if o.spilled),
            rpc=self.rpc_latency.snapshot())

    # ---- background loops -------------------------------------------------------------
    async def watch_processes(self) -> None:
        last_reap = last_respill = time.monotonic()
        while not self.stopping.is_set():
            await asyncio.sleep(0.05)
            for wid in self.procs.reap():
                self.addresses.pop(wid, None)
                if wid in self.unregistered:
                    self.unregistered.discard(wid)
                    if wid in self.envs.of_worker:
                        self.apply(self.envs.start_failed(wid))
                    else:
                        self.apply(self.state.worker_start_failed())
                else:
                    self.apply(self.state.worker_died(wid))
                    self.apply(self.state.owner_died(wid))
                    self.store.delete_owned_by(wid)
            pid = self.cfg.embedded_driver_pid
            if pid and not pid_alive(pid):
                log.info("embedding driver pid %d exited; shutting down", pid)
                self.stopping.set()
            now = time.monotonic()
            if self.state.pending and now - last_respill > 0.25:
                last_respill = now
                self.apply(self.state.respill(now, self._peers))
            if now - last_reap > 1.0:
                last_reap = now
                self.apply(self.state.idle_workers_to_reap(now, IDLE_WORKER_TIMEOUT_S))

    async def watch_memory(self) -> None:
        """Every refresh interval: if the node's memory is above the threshold, kill the
        worker the memory monitor picks (one at a time) and remember why for its caller."""
        from raylite.scheduler.memory_reader import NodeMemoryReader, process_rss
        reader = NodeMemoryReader()
        interval = self.memory.config.refresh_ms / 1000.0
        cfg = self.memory.config
        log.info("memory monitor: threshold %.3f of node memory, every %d ms",
                 cfg.threshold, cfg.refresh_ms)
        while not self.stopping.is_set():
            await asyncio.sleep(interval)
            try:
                snap = reader.snapshot()
            except (OSError, ValueError) as exc:
                log.warning("memory monitor stopped: cannot read the node's memory (%s)", exc)
                return
            if not self.memory.killing and not self.memory.over_threshold(snap):
                continue
            leased = [w for w in self.state.workers.values()
                      if w.lease_id is not None and w.registered and w.pid]
            workers = [WorkerRecord(w.worker_id, w.pid, w.owner,
                                    int.from_bytes(w.lease_id or b"", "little"), w.retriable,
                                    w.actor_id, process_rss(w.pid)) for w in leased]
            kill = self.memory.check(snap, workers, time.monotonic())
            if kill is None:
                continue
            victim = kill.victim
            lease_id = next(w.lease_id for w in leased if w.worker_id == victim.worker_id)
            log.warning("%s", kill.message)
            self.failure_causes[lease_id or b""] = kill.message
            while len(self.failure_causes) > FAILURE_CAUSES_KEPT:
                self.failure_causes.popitem(last=False)
            self.procs.kill(victim.worker_id)

    def teardown(self) -> None:
        if self.beat is not None:
            self.beat.stop()
        if self.metrics is not None:
            self.metrics.stop()
        self.procs.kill_all()
        self.object_service.close()
        self.store.cleanup()
        if self.gcs is not None:
            try:
                self.gcs.mark_node_dead(self.node_id, retry=False)  # shutting down: no waiting
            except Exception:
                pass
        if self.cfg.redis_pid:
            try:
                os.kill(self.cfg.redis_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def peer_from_node(node_id: str, info: NodeRecord, self_id: str) -> Peer:
    """A node-table entry (as GcsClient.nodes() returns it) as placement sees it."""
    return Peer(node_id, info.address, info.resources, info.available or {},
                is_self=node_id == self_id)


async def serve(cfg, procs: WorkerProcesses | None = None, prestarted: list | None = None) -> None:
    scheduler = NodeScheduler(cfg, procs, prestarted)
    server = make_server(cfg.token)
    node_pb2_grpc.add_NodeSchedulerServicer_to_server(scheduler, server)
    objects_pb2_grpc.add_ObjectStoreServicer_to_server(scheduler.object_service, server)
    uds_path = cfg.session.scheduler_socket(cfg.node_id)
    scheduler.tcp_address, uds = bind(server, cfg.host, uds_path)
    await server.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, scheduler.stopping.set)
    from raylite.gcs.client import GcsClient  # after the socket is up: drivers wait on it
    from raylite.gcs.signing import signing_key
    scheduler.gcs = GcsClient(cfg.gcs_address, cfg.redis_password, cfg.gcs_socket,
                              signing_key=signing_key(cfg.token))
    scheduler.object_service.gcs = scheduler.gcs
    transfer = scheduler.object_service.start_transfers(cfg.host, cfg.token, scheduler.tcp_address)
    metrics_socket = bind_metrics(cfg)
    metrics_port = metrics_socket.getsockname()[1] if metrics_socket is not None else 0
    scheduler.gcs.register_node(NodeRecord(
        node_id=cfg.node_id, address=scheduler.tcp_address, uds=uds,
        host=advertised_host(cfg.host), resources=dict(cfg.resources), alive=True,
        pid=os.getpid(), store_dir=scheduler.store.directory,
        store_capacity=scheduler.store.capacity, session=cfg.session.root,
        is_head=bool(cfg.is_head), transfer=transfer, available=dict(cfg.resources),
        metrics_export_port=metrics_port))
    scheduler.beat = Heartbeat(scheduler.gcs, cfg.node_id, lambda: scheduler.state.available,
                               on_jobs_finished=lambda jobs: loop.call_soon_threadsafe(
                                   scheduler.jobs_finished, jobs),
                               on_gcs_lost=lambda: loop.call_soon_threadsafe(
                                   scheduler.stopping.set))
    from raylite.observability.store_summary import StoreStatsWriter
    scheduler.beat.extra = StoreStatsWriter(scheduler.gcs, cfg.node_id, scheduler.store)
    scheduler.beat.start()
    if metrics_socket is not None:
        # In a thread: importing the HTTP server and prometheus-client must not hold up
        # drivers registering (connections wait in the socket's backlog meanwhile).
        loop.run_in_executor(None, start_metrics, scheduler, loop, metrics_socket)
    tasks = [asyncio.create_task(scheduler.watch_processes())]
    if scheduler.memory.config.enabled:
        tasks.append(asyncio.create_task(scheduler.watch_memory()))
    if cfg.ready_file:
        with open(cfg.ready_file + ".tmp", "w") as f:
            f.write(scheduler.tcp_address)
        os.replace(cfg.ready_file + ".tmp", cfg.ready_file)
    try:
        await scheduler.stopping.wait()
    finally:
        scheduler.teardown()
        for task in tasks:
            task.cancel()
        await server.stop(0.2)
        if os.path.exists(uds_path):
            os.unlink(uds_path)


def bind_metrics(cfg):
    """The bound socket of the node's /metrics, None when off or when the port cannot be
    bound (one line on stderr; the node runs on without metrics)."""
    if cfg.metrics_export_port < 0:
        return None
    from raylite.scheduler.metrics_endpoint import bind_metrics_socket
    try:
        return bind_metrics_socket(cfg.host, cfg.metrics_export_port)
    except OSError as exc:
        log.warning("the metrics endpoint could not bind %s:%s: %s", cfg.host,
                    cfg.metrics_export_port, exc)
        sys.stderr.write(f"raylite: no metrics endpoint: cannot bind {cfg.host}:"
                         f"{cfg.metrics_export_port} ({exc})\n")
        return None


def start_metrics(scheduler: NodeScheduler, loop: asyncio.AbstractEventLoop, sock) -> None:
    """Serve the node's /metrics (raylite.scheduler.metrics_endpoint) on ``sock``."""
    from raylite.scheduler.metrics_endpoint import (
        NodeCollector,
        sample_on_loop,
        task_counts_reader,
    )
    cfg = scheduler.cfg
    # Tasks are counted once for the cluster, by the head (or the embedded node): every
    # node reading every task event would multiply the cost.
    cluster_wide = bool(cfg.is_head or cfg.embedded_driver_pid)
    collector = NodeCollector(sample_on_loop(loop, scheduler.metrics_sample), scheduler.gcs,
                              scheduler.node_id, cluster_wide,
                              task_counts_reader(scheduler.gcs) if cluster_wide else None)
    try:
        server = MetricsServer(collector, sock, cfg.token)
    except Exception as exc:   # e.g. prometheus-client missing: the node runs on without
        log.warning("the metrics endpoint did not start: %s", exc)
        sys.stderr.write(f"raylite: no metrics endpoint: {exc}\n")
        sock.close()
        return
    scheduler.metrics = server
    log.info("metrics at http://%s:%d/metrics", cfg.host, server.port)
