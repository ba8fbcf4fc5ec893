"""Bringing a driver up: start the embedded cluster or join a running one, and tear
it down again. Used by ``raylite.init``/``shutdown``."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import uuid

from raylite.security.tokens import connect_gcs, is_auth_failure, redis_password, wrong_token
from raylite.session import CURRENT_CLUSTER_FILE, new_session, session_from_root


def detect_gpus() -> int:
    """Count NVIDIA GPUs visible to this process without importing CUDA libraries."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        pass
    import shutil
    if shutil.which("nvidia-smi"):  # sandboxes may hide /proc/driver/nvidia
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
            return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
        except (OSError, subprocess.SubprocessError):
            return 0
    return 0


def default_memory_resource() -> int:
    """The 'memory' resource a node offers: 70% of RAM, as Ray reports it."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.7)
    except (ValueError, OSError):
        return 1 << 30


class ClusterHandle:
    """What a driver holds while initialized."""

    def __init__(self, *, worker, gcs, session, embedded: bool, procs=(), log_printer=None,
                 watch_task=None, gcs_address: str = "", in_worker: bool = False):
        self.in_worker = in_worker
        self.dashboard_url = ""
        self.worker = worker
        self.gcs = gcs
        self.session = session
        self.embedded = embedded
        self.procs = list(procs)
        self.log_printer = log_printer
        self.watch_task = watch_task
        self.gcs_address = gcs_address

    def context(self) -> RayContext:
        return RayContext(self)

    def node_list(self) -> list[dict]:
        from raylite.gcs.liveness import is_alive
        out = []
        now = time.time()
        for node_id, info in self.gcs.nodes().items():
            alive = is_alive(info, now)
            out.append({"NodeID": node_id, "Alive": alive, "alive": alive,
                        "NodeManagerAddress": info.host, "NodeManagerPort": info.port,
                        "NodeName": info.host, "Resources": dict(info.resources),
                        "ObjectStoreSocketName": info.store_dir, "IsHead": info.is_head})
        return out

    def resources(self, available: bool) -> dict:
        from raylite.protocol import common_pb2
        totals: dict = {}
        for node_id, info in self.gcs.alive_nodes().items():
            if available:
                if node_id == self.worker.node_id:
                    live = self.worker.scheduler.GetNodeInfo(common_pb2.Empty())
                    amounts = dict(live.available)
                    store_free = live.store_capacity - live.store_used
                else:
                    amounts = info.free_resources()
                    store_free = info.store_capacity
            else:
                amounts = dict(info.resources)
                store_free = info.store_capacity
            amounts["object_store_memory"] = float(store_free)
            amounts[f"node:{info.host}"] = 1.0
            for key, value in amounts.items():
                totals[key] = totals.get(key, 0.0) + float(value)
        if available:
            totals = {k: v for k, v in totals.items() if v > 1e-9}
        return totals

    def shutdown(self) -> None:
        from raylite.protocol import node_pb2
        if self.in_worker:
            return  # a worker process belongs to its node, not to user code
        if self.log_printer is not None:
            time.sleep(0.02)  # let the last worker lines arrive
            self.log_printer.stop()
        worker = self.worker
        if self.embedded:
            try:
                worker.scheduler.Shutdown(node_pb2.ShutdownRequest(), timeout=2)
            except Exception:
                pass
        worker.shutdown()
        for proc in self.procs:
            _stop(proc)
        self.gcs.close()
        if self.embedded:
            _remove_session_files(self.session)


    def scheduler_lost(self) -> None:
        """The node scheduler this driver is attached to died. For the embedded cluster
        that is the whole cluster: stop its Redis and remove its store and files now,
        so nothing is left even if this driver is killed next."""
        if not self.embedded or self.worker.shutting_down:
            return
        sys.stderr.write("raylite: the node scheduler of this local cluster died; stopping "
                         "its Redis and removing its files (calls that need it will fail)\n")
        for proc in self.procs:
            _stop(proc, grace=1.0)
        shutil.rmtree(self.session.shm_dir(self.worker.node_id), ignore_errors=True)
        _remove_session_files(self.session)


class RayContext(dict):
    """What ``init`` returns (dict-like, as in Ray)."""

    def __init__(self, cluster: ClusterHandle):
        super().__init__(address=cluster.gcs_address, node_id=cluster.worker.node_id,
                         session_dir=cluster.session.root, webui_url=cluster.dashboard_url)
        self.address_info = dict(self)
        self.dashboard_url = cluster.dashboard_url

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        from raylite.api import shutdown
        shutdown()

    def disconnect(self):
        from raylite.api import shutdown
        shutdown()


def _stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=2)
        except ProcessLookupError:
            pass


def _remove_session_files(session) -> None:
    for path in (session.sockets, session.spill, session.redis_dir):
        shutil.rmtree(path, ignore_errors=True)


def _log_tail(session, name: str) -> str:
    try:
        with open(os.path.join(session.logs, name), "rb") as f:
            return f.read()[-2000:].decode(errors="replace")
    except OSError:
        return ""


def start_embedded_cluster(*, num_cpus, num_gpus, resources, object_store_memory, namespace,
                           log_to_driver: bool, host: str, metrics_export_port: int = -1,
                           dashboard: tuple | None = None) -> ClusterHandle:
    """Start redis + one node scheduler + workers on this machine and connect to them;
    ``dashboard`` (host, port) also starts the web dashboard.

    Raises RuntimeError (with the log tail) when a component fails to start.
    """
    from raylite.gcs.redis_server import start_redis
    from raylite.object_store.store import sweep_stale_stores
    from raylite.scheduler.launch import start_scheduler
    from raylite.security.exposure import warn_if_exposed
    from raylite.session import SHM_PREFIX, SHM_ROOT
    sweep_stale_stores(SHM_ROOT, SHM_PREFIX)  # left by clusters killed without cleanup
    warn_if_exposed(host)
    session = new_session()
    token = secrets.token_hex(16)
    password = redis_password(token)
    node_id = uuid.uuid4().hex
    total = {"CPU": float(num_cpus if num_cpus is not None else (os.cpu_count() or 1)),
             "GPU": float(num_gpus if num_gpus is not None else detect_gpus())}
    total["memory"] = float(default_memory_resource())
    total.update({k: float(v) for k, v in (resources or {}).items()})
    total = {k: v for k, v in total.items() if v}
    # Both processes boot in parallel with this driver's own imports below.
    redis_proc, port, redis_sock = start_redis(session.redis_dir, password, host)
    gcs_address = f"{host}:{port}"
    sched = start_scheduler(session=session, node_id=node_id, token=token, gcs_address=gcs_address,
                            redis_password=password, gcs_socket=redis_sock, host=host,
                            resources=total, object_store_memory=int(object_store_memory or 0),
                            embedded_driver_pid=os.getpid(), redis_pid=redis_proc.pid,
                            metrics_export_port=metrics_export_port)
    import raylite.core.core_worker  # noqa: F401  (the slow import, overlapped with the boot)
    from raylite.gcs.client import GcsClient
    try:
        from raylite.gcs.signing import signing_key
        gcs = GcsClient(gcs_address, password, unix_socket=redis_sock, signing_key=signing_key(token))
    except Exception as err:
        _stop(sched)
        _stop(redis_proc)
        raise RuntimeError(f"redis-server did not start: {err}\n"
                           f"{_log_tail(session, '../redis/redis.log')}") from err
    try:
        handle = _attach_driver(session=session, node_id=node_id, token=token, gcs=gcs,
                                host=host, namespace=namespace, log_to_driver=log_to_driver,
                                embedded=True, procs=[sched, redis_proc], gcs_address=gcs_address,
                                watch_proc=sched)
    except Exception:
        _stop(sched)
        _stop(redis_proc)
        gcs.close()
        raise
    if dashboard is not None:
        _start_dashboard(handle, token, password, redis_sock, *dashboard)
    return handle


def _start_dashboard(handle: ClusterHandle, token: str, password: str, gcs_socket: str,
                     host: str, port: int) -> None:
    """Start the embedded cluster's dashboard (it dies with this driver). Raises
    RuntimeError (after shutting the cluster down) when it does not start."""
    from raylite.dashboard.launch import start_dashboard, wait_dashboard
    proc, ready = start_dashboard(session=handle.session, token=token,
                                  gcs_address=handle.gcs_address, redis_password=password,
                                  gcs_socket=gcs_socket, host=host, port=port,
                                  embedded_driver_pid=os.getpid())
    handle.procs.insert(0, proc)
    try:
        # host:port, as Ray's RayContext.dashboard_url (no scheme).
        handle.dashboard_url = wait_dashboard(proc, ready).split("://", 1)[-1]
    except RuntimeError as err:
        handle.shutdown()
        raise RuntimeError(f"{err}\n{_log_tail(handle.session, 'dashboard.log')}") from None


def _attach_driver(*, session, node_id, token, gcs, host, namespace, log_to_driver, embedded,
                   procs, gcs_address, watch_proc=None, scheduler_target=None, store_dir=None):
    from raylite.core.core_worker import DRIVER, CoreWorker
    from raylite.core.log_forward import DriverLogPrinter
    from raylite.gcs.records import JobRecord
    from raylite.protocol import node_pb2

    scheduler_target = scheduler_target or "unix:" + session.scheduler_socket(node_id)
    job_id = os.urandom(4)
    worker = CoreWorker(DRIVER, node_id=node_id, session=session, token=token, gcs=gcs,
                        scheduler_target=scheduler_target, job_id=job_id,
                        store_dir=store_dir or session.shm_dir(node_id), host=host,
                        namespace=namespace or uuid.uuid4().hex)
    deadline = time.monotonic() + 30
    while True:
        try:
            reply = worker.scheduler.RegisterWorker(
                node_pb2.WorkerInfo(address=worker.address, is_driver=True, job_id=job_id),
                wait_for_ready=True, timeout=0.5)
            break
        except Exception as err:
            if is_auth_failure(err):   # a wrong token: retrying cannot help
                worker.shutdown()
                raise wrong_token(f"the node scheduler at {scheduler_target}") from None
            if watch_proc is not None and watch_proc.poll() is not None or time.monotonic() > deadline:
                worker.shutdown()
                raise RuntimeError(f"the node scheduler did not start: {err}\n"
                                   f"{_log_tail(session, f'scheduler-{node_id[:8]}.log')}") from err
    worker.io.store_dir = reply.store_dir
    lost: list = []     # the handle, once built: what to clean when the scheduler dies
    watch = worker.run_sync(_open_watch(worker, lambda: lost and lost[0].scheduler_lost()))
    import sys

    # Workers add the driver's import path, so functions defined in the driver's
    # modules (not only __main__) can be unpickled there, as in Ray.
    from raylite.gcs.signing import sign_job, signing_key
    gcs.register_job(sign_job(JobRecord(job_id=job_id.hex(), driver_pid=os.getpid(),
                                        start=time.time(), namespace=worker.namespace,
                                        sys_path=[os.path.abspath(p) for p in sys.path if p],
                                        cwd=os.getcwd()), signing_key(token)))
    printer = DriverLogPrinter(gcs, job_id.hex(), node_id) if log_to_driver else None
    handle = ClusterHandle(worker=worker, gcs=gcs, session=session, embedded=embedded,
                           procs=procs, log_printer=printer, watch_task=watch,
                           gcs_address=gcs_address)
    lost.append(handle)
    return handle


async def _open_watch(worker, on_lost):
    """Hold the scheduler's WatchDriver stream (it reclaims our leases when we go);
    when it breaks while we are not shutting down, our scheduler died: ``on_lost()``
    runs in a thread."""
    import asyncio

    from raylite.protocol import node_pb2
    call = worker.scheduler_aio.WatchDriver(node_pb2.WorkerInfo(
        address=worker.address, is_driver=True, job_id=worker.job_id))

    async def hold():
        try:
            async for _ in call:
                pass
        except Exception:
            pass
        if not worker.shutting_down:
            await asyncio.to_thread(on_lost)
    return asyncio.get_running_loop().create_task(hold())


def read_current_cluster() -> dict:
    """What `raylite start --head` recorded for drivers on this machine.

    Raises ConnectionError when no cluster was started here, and
    raylite.security.files.InsecurePathError (a PermissionError) when the file is a
    symlink or not private to this user (it could have been planted).
    """
    from raylite.security.files import read_secret
    try:
        info = json.loads(read_secret(CURRENT_CLUSTER_FILE))
        from raylite.security.user_tls import adopt_recorded
        adopt_recorded(info)   # the head's TLS files, unless this process names its own
        return info
    except (FileNotFoundError, ValueError) as err:
        raise ConnectionError("Could not find any running raylite instance. Start one with "
                              "`raylite start --head`, or call raylite.init() with no address "
                              "to start a local cluster.") from err


def connect_cluster(address: str, *, namespace, log_to_driver: bool, token: str | None) -> ClusterHandle:
    """Join a running cluster as a driver.

    Raises ConnectionError when it is unreachable and AuthenticationError at once
    when the GCS or the node scheduler refuses the token.
    """
    import socket

    info = {}
    if address == "auto":
        info = read_current_cluster()
        address = info["gcs_address"]
    else:
        try:
            local = read_current_cluster()
            if local.get("gcs_address") == address:
                info = local
        except ConnectionError:
            pass
    token = token or os.environ.get("RAYLITE_TOKEN") or info.get("token")
    if not token:
        raise ConnectionError(f"no cluster token for {address}: set RAYLITE_TOKEN or pass _token=")
    password = os.environ.get("RAYLITE_GCS_PASSWORD") or redis_password(token)
    from raylite.gcs.signing import signing_key
    gcs = connect_gcs(address, password, signing_key=signing_key(token))
    nodes = gcs.alive_nodes()
    me = socket.gethostname()
    chosen = None
    # Prefer the head, then any node on this machine (reachable over its unix socket).
    ordered = sorted(nodes.items(), key=lambda item: not item[1].is_head)
    for node_id, node in ordered:
        uds = node.uds
        if uds and os.path.exists(uds[len("unix:"):]):
            chosen = (node_id, node, uds)
            break
        if chosen is None or node.host == me:
            chosen = (node_id, node, node.address)
    if chosen is None:
        gcs.close()
        raise ConnectionError(f"the cluster at {address} has no alive node")
    node_id, node, target = chosen
    session = session_from_root(node.session) if _is_our_dir(node.session) else new_session()
    return _attach_driver(session=session, node_id=node_id, token=token, gcs=gcs,
                          host=node.host or "127.0.0.1", namespace=namespace,
                          log_to_driver=log_to_driver, embedded=False, procs=[],
                          gcs_address=address, scheduler_target=target,
                          store_dir=node.store_dir or None)


def _is_our_dir(path: str) -> bool:
    """True for a private directory of this user (a node's session we may share)."""
    from raylite.security.files import check_private
    try:
        check_private(path, want_dir=True)
        return True
    except OSError:
        return False
