"""The core worker: present in every driver and worker process.

It submits tasks, serves its peers over gRPC (tasks pushed by lease holders, object
requests from borrowers) and holds the process's parts: ``objects`` (ObjectManager:
put/get/wait, owned and borrowed values), ``submitter`` (normal tasks), ``actors``
(ActorManager), ``executor`` (workers only). Network work runs on one asyncio loop in
a background thread; user code calls in from its own thread.
"""
from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from types import FrameType

import grpc

from raylite.core import task_events
from raylite.core.actor_manager import ActorManager
from raylite.core.executor import ArgPlaceholder, Executor
from raylite.core.function_manager import FunctionManager
from raylite.core.generators import GeneratorTable, ObjectRefGenerator
from raylite.core.memory_store import MemoryStore
from raylite.core.object_manager import ObjectManager, _quiet, error_value
from raylite.core.object_ref import ObjectRef
from raylite.core.reconstruction import Reconstruction
from raylite.core.reference_counter import ReferenceCounter
from raylite.core.submitter import TaskEntry, TaskSubmitter
from raylite.exceptions import RayliteError
from raylite.ids import object_id_for, random_id, return_ids
from raylite.object_store.client import ObjectIO
from raylite.protocol import (
    common_pb2,
    node_pb2,
    node_pb2_grpc,
    objects_pb2_grpc,
    worker_pb2,
    worker_pb2_grpc,
)
from raylite.protocol.channels import (
    AuthedStub,
    aio_channel,
    bind,
    make_server,
    pick_target,
    sync_channel,
    use_cluster_token,
)
from raylite.serialization import serialize

RERUN_RETRIES = 3      # retries of a task re-run to rebuild a lost object
DRIVER = "driver"
WORKER = "worker"
_RAYLITE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CoreWorker(worker_pb2_grpc.CoreWorkerServicer):

    def __init__(self, mode: str, *, node_id: str, session, token: str, gcs, scheduler_target: str,
                 job_id: bytes, store_dir: str, host: str = "127.0.0.1", worker_id: str | None = None,
                 namespace: str = ""):
        self.mode = mode
        self.node_id = node_id
        self.session = session
        self.token = token
        self.gcs = gcs
        self.job_id = job_id
        self.scheduler_target = scheduler_target
        self.namespace = namespace
        self.host = host
        self.worker_id = worker_id or uuid.uuid4().hex
        self.shutting_down = False
        self.memory = MemoryStore()
        self.refs = ReferenceCounter(self._free_object)
        from raylite.gcs.signing import signing_key
        self.functions = FunctionManager(gcs, signing_key(token),
                                         session.code_cache if mode == WORKER else "")
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._sync_channels: dict = {}
        self._task = threading.local()   # per thread: threaded actors run calls at once
        self._nodes: dict = {}           # node table cached for warn_if_infeasible
        self._nodes_read_at = -1e9
        self.gpu_ids: list = []
        self.assigned_resources: dict = {}   # of the current lease (get_assigned_resources)
        self.actor_id = b""
        self.actor_class_name = ""
        self.actor_restarted = False
        self.actor_placement_group = ""   # encoded group the actor was created in
        self.executor = Executor(self) if mode == WORKER else None
        self.generators = GeneratorTable(self)

        self.loop = asyncio.new_event_loop()
        from raylite.observability.errors import install_loop_handler
        install_loop_handler(self.loop, session.logs)   # one line, not a dump
        self._loop_thread = threading.Thread(target=self._run_loop, daemon=True, name="raylite-io")
        self._loop_thread.start()
        use_cluster_token(token)   # TCP channels below are mutual TLS for this cluster
        self._scheduler_sync = sync_channel(scheduler_target)
        self.scheduler = AuthedStub(node_pb2_grpc.NodeSchedulerStub(self._scheduler_sync), token)
        self.store_stub = AuthedStub(objects_pb2_grpc.ObjectStoreStub(self._scheduler_sync), token)
        self.io = ObjectIO(node_id, store_dir, self.store_stub)
        self.io.owner_id = self.worker_id
        self.address = self.run_sync(self._start(scheduler_target))
        self.address_bytes = self.address.SerializeToString()
        self.objects = ObjectManager(loop=self.loop, memory=self.memory, refs=self.refs,
                                     store=self.io, nodes=gcs, peers=self,
                                     notify_blocked=self._notify_blocked,
                                     owner_address=self.address_bytes, node_id=node_id,
                                     worker_id=self.worker_id, token=token)
        self.io.pull = self.objects.pull_remote
        self.objects.generators = self.generators
        self.submitter = TaskSubmitter(self)
        self.reconstruction = Reconstruction(
            gcs=gcs, memory=self.memory, loop=self.loop, owner_address=self.address_bytes,
            resubmit=self._resubmit,
            error_value=error_value, free_store=self.objects.free_store,
            make_ref=lambda oid, owner: ObjectRef(oid, owner))
        self.objects.reconstruction = self.reconstruction
        self.actors = ActorManager(self)
        task_events.install(self)   # no-op when RAYLITE_TASK_EVENTS=0

    # ---- event loop -----------------------------------------------------------------
    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run_sync(self, coro, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self, scheduler_target: str) -> common_pb2.Address:
        self.server = make_server(self.token)
        worker_pb2_grpc.add_CoreWorkerServicer_to_server(self, self.server)
        uds_path = self.session.worker_socket(self.worker_id)
        tcp, uds = bind(self.server, self.host, uds_path)
        self._uds_path = uds_path
        await self.server.start()
        self.scheduler_aio = AuthedStub(node_pb2_grpc.NodeSchedulerStub(self.channel(scheduler_target)),
                                        self.token)
        fast = ""
        if self.executor is not None and os.environ.get("RAYLITE_NO_FAST_PATH") != "1":
            from raylite.core.local_channel import LocalTaskServer
            self.local_server = LocalTaskServer(self, uds_path + ".f")
            fast = self.local_server.path
        return common_pb2.Address(node_id=self.node_id, worker_id=self.worker_id, tcp=tcp, uds=uds,
                                  pid=os.getpid(), fast=fast)

    def channel(self, target: str) -> grpc.aio.Channel:
        """A cached asyncio channel to ``target`` (loop thread only)."""
        ch = self._channels.get(target)
        if ch is None:
            ch = self._channels[target] = aio_channel(target)
        return ch

    async def lease(self, request, prefer_node: str = ""):
        """Ask the local scheduler (or ``prefer_node``'s, which holds the task's large
        arguments) for a lease, following spill-over to other nodes; returns (reply,
        the stub of the scheduler that granted it). A request inside a placement group
        goes to the node of its bundle. Raises RpcError."""
        if request.strategy.startswith("PG:"):
            return await self.placement_groups.lease(request)
        stub = self.scheduler_aio
        if prefer_node:
            address = self.node_address(prefer_node)
            if address:
                stub = self.scheduler_stub_for(address)
        while True:
            reply = await stub.RequestLease(request)
            if not reply.spill_to:
                return reply, stub
            stub = self.scheduler_stub_for(reply.spill_to)
            request.spilled = True

    @property
    def placement_groups(self):
        """This process's PlacementGroupManager (raylite.core.placement_groups)."""
        manager = self.__dict__.get("_placement_groups")
        if manager is None:
            from raylite.core.placement_groups import PlacementGroupManager
            manager = self.__dict__["_placement_groups"] = PlacementGroupManager(self)
        return manager

    def node_address(self, node_id: str) -> str:
        """Where an alive node's scheduler listens ("" when unknown or dead), from the
        node table read at most once a second."""
        import time

        from raylite.gcs.liveness import is_alive
        now = time.monotonic()
        node = self._nodes.get(node_id)
        if node is None or now - self._nodes_read_at > 1.0:
            try:
                self._nodes = self.gcs.nodes(retry=False)
            except Exception:
                return ""
            self._nodes_read_at = now
            node = self._nodes.get(node_id)
        return node.address if node is not None and is_alive(node, time.time()) else ""

    def group_strategy(self, strategy: str) -> str:
        """The strategy a task or actor submitted here runs under: its own, or — when
        it has none and this task or actor runs in a placement group that captures
        child tasks — any bundle of that group."""
        if strategy:
            return strategy
        group = self.current_placement_group()
        if group.endswith(":c"):
            pg_id = group.split(":")[1]
            return f"PG:{pg_id}:-1:c"
        return ""

    def current_placement_group(self) -> str:
        """The encoded placement group the running task or actor is in ("" if none)."""
        spec = self.current_spec
        if spec is not None and spec.type == common_pb2.NORMAL_TASK:
            return spec.placement_group
        return self.actor_placement_group

    def scheduler_stub_for(self, address: str):
        return AuthedStub(node_pb2_grpc.NodeSchedulerStub(self.channel(address)), self.token)

    def peer_stub(self, address: common_pb2.Address):
        """An asyncio stub to the core worker at ``address`` (loop thread only)."""
        target = pick_target(address, self.node_id)
        return AuthedStub(worker_pb2_grpc.CoreWorkerStub(self.channel(target)), self.token)

    def sync_channel(self, target: str):
        """A cached blocking channel to ``target`` (closed at shutdown with the others)."""
        channel = self._sync_channels.get(target)
        if channel is None:
            channel = self._sync_channels[target] = sync_channel(target)
        return channel

    def sync_peer_stub(self, address: common_pb2.Address):
        """A blocking stub to the core worker at ``address`` (any thread)."""
        channel = self.sync_channel(pick_target(address, self.node_id))
        return AuthedStub(worker_pb2_grpc.CoreWorkerStub(channel), self.token)

    def local_store_stub(self):
        """An asyncio stub of this node's object store service (loop thread only)."""
        channel = self.channel("unix:" + self.session.scheduler_socket(self.node_id))
        return AuthedStub(objects_pb2_grpc.ObjectStoreStub(channel), self.token)

    def _free_object(self, object_id: bytes, owned: bool) -> None:
        # The reference counter exists before ObjectManager (which needs our address).
        self.objects.free_object(object_id, owned)

    def _notify_blocked(self, blocked: bool) -> bool:
        # A worker waiting inside a task lends its CPU back so nested tasks can run.
        if self.mode != WORKER or self.current_spec is None or self.current_spec.type != 0:
            return False
        try:
            self.scheduler.NotifyBlocked(node_pb2.BlockedRequest(worker_id=self.worker_id,
                                                                 blocked=blocked))
        except grpc.RpcError:
            pass
        return True

    # ---- tasks ------------------------------------------------------------------------
    def build_spec(self, task_type, function_id: bytes, name: str, args, kwargs, num_returns: int,
                   call_site: str, task_id: bytes):
        """A TaskSpec with serialized arguments; returns (spec, top-level ref deps).

        Raises TypeError at the call site when an argument cannot be serialized.
        """
        deps: list = []
        if any(isinstance(a, ObjectRef) for a in args) or any(isinstance(v, ObjectRef)
                                                              for v in kwargs.values()):
            args, kwargs = _replace_refs(args, kwargs, deps)
        try:
            ser = serialize((list(args), kwargs))
        except TypeError as err:
            raise TypeError(f"Could not serialize the arguments of {name}(): {err}. "
                            "Pass only picklable values (or ObjectRefs) to remote calls.") from None
        args_value = self.io.to_value(object_id_for(task_id, 0), None, serialized=ser)
        if ser.contained_refs:
            # Released when the task is done (its worker registers as a borrower first).
            self.objects.pin_contained(ser.contained_refs, holder=task_id)
        spec = common_pb2.TaskSpec(task_id=task_id, job_id=self.current_job_id(), type=task_type,
                                   function_id=function_id, name=name, args=args_value,
                                   num_returns=num_returns, call_site=call_site,
                                   namespace=self.current_namespace())
        spec.caller.CopyFrom(self.address)
        return spec, deps

    def _resubmit(self, spec, deps: list, resources: dict, strategy: str) -> None:
        """Run a finished task again (lineage reconstruction): same task and return ids."""
        key = (spec.function_id, tuple(sorted(resources.items())), strategy, spec.runtime_env)
        # Its own retries cover a crash of the re-run and the recovery of lost arguments.
        self.submitter.submit(TaskEntry(spec, key, resources, RERUN_RETRIES, False, deps))

    def submit_task(self, fn, name: str, args, kwargs, *, num_returns, resources: dict,
                    max_retries: int, retry_exceptions, call_site: str, strategy: str = "",
                    backpressure: int = 0, runtime_env: str = ""):
        """Submit a normal task; returns its ObjectRefs (for num_returns="streaming",
        a one-element list holding its ObjectRefGenerator).

        Raises TypeError at the call site when an argument cannot be serialized.
        """
        fid = self.functions.export(fn)
        task_id = random_id()
        if self.executor is not None and not strategy:
            strategy = self.group_strategy(strategy)   # captured by its placement group
        generator = _GENERATOR_KINDS.get(num_returns, 0) if type(num_returns) is str else 0
        if generator:
            num_returns = 1    # the return that ends the stream
        spec, deps = self.build_spec(common_pb2.NORMAL_TASK, fid, name, args, kwargs, num_returns,
                                     call_site, task_id)
        ids = return_ids(task_id, num_returns)
        spec.return_ids = b"".join(ids)
        if strategy and strategy[0] == "P":
            spec.placement_group = strategy
        for oid in ids:
            self.refs.add_owned(oid)
        out = [ObjectRef(oid, self.address_bytes) for oid in ids]
        if generator:
            out = self.start_generator(spec, generator, backpressure, out)
        if runtime_env:
            spec.runtime_env = runtime_env    # a re-run (lineage) needs the same env
        # As in Ray, the scheduling key includes the function: how deep tasks are
        # pipelined onto a worker is learnt per function. Workers started for another
        # runtime_env (its canonical text, "" for the default) are other workers.
        key = (fid, tuple(sorted(resources.items())), strategy, runtime_env)
        self.submitter.submit(TaskEntry(spec, key, resources, max_retries, retry_exceptions, deps))
        return out

    def start_generator(self, spec, kind: int, backpressure, refs: list) -> list:
        """Mark ``spec`` a generator task and record it before it is sent; returns
        what the caller gets: [ObjectRefGenerator] (streaming) or the refs (dynamic)."""
        spec.generator = kind
        spec.generator_backpressure = backpressure or 0
        record = self.generators.register(spec.task_id, kind, spec.generator_backpressure)
        if kind == common_pb2.STREAMING:
            return [ObjectRefGenerator(refs[0], record, self.generators)]
        return refs

    def cancel_actor_task(self, ref: ObjectRef, force: bool) -> bool:
        return self.actors.cancel(ref, force)

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        self.submitter.cancel(ref.task_id(), force)

    def warn_if_infeasible(self, resources: dict) -> None:
        """Print one loud warning when no node in the cluster has these resources."""
        import time

        from raylite.scheduler.resources import missing
        # Checked for every new function/resource shape and every actor, on the event
        # loop: reuse the node table for a second instead of reading Redis each time.
        now = time.monotonic()
        if now - self._nodes_read_at > 1.0:
            try:
                self._nodes = self.gcs.nodes(retry=False)  # on the event loop: never wait
            except Exception:
                return
            self._nodes_read_at = now
        from raylite.gcs.liveness import is_alive
        wall = time.time()
        alive = [n for n in self._nodes.values() if is_alive(n, wall)]
        if any(not missing(resources, n.resources) for n in alive):
            return
        totals: dict = {}
        for n in alive:
            for k, v in n.resources.items():
                totals[k] = totals.get(k, 0) + v
        lack = missing(resources, totals) or resources
        sys.stderr.write(
            f"WARNING raylite: a task requires {resources}, but no node in the cluster has "
            f"{lack}; the cluster has {totals} in total. The task stays pending until a node "
            f"with these resources joins.\n")
        sys.stderr.flush()

    def report_system_error(self, text: str) -> None:
        sys.stderr.write(f"raylite: {text}\n")

    # ---- task context (worker side) ------------------------------------------------------
    @property
    def current_spec(self):
        """The spec of the task running on this thread (None outside tasks)."""
        return getattr(self._task, "spec", None)

    @current_spec.setter
    def current_spec(self, spec) -> None:
        self._task.spec = spec

    def set_task_context(self, spec) -> None:
        self.current_spec = spec
        sink = getattr(self, "log_sink", None)
        if sink is not None:
            name = self.actor_class_name if self.actor_id else spec.name
            sink.set_context(spec.job_id.hex(), name)

    def clear_task_context(self) -> None:
        self.current_spec = None

    def current_job_id(self) -> bytes:
        spec = self.current_spec
        return spec.job_id if spec is not None else self.job_id

    def current_namespace(self) -> str:
        spec = self.current_spec
        return spec.namespace if spec is not None and spec.namespace else self.namespace

    # ---- actors (worker side and lifecycle helpers) ----------------------------------------
    def become_actor(self, spec) -> None:
        self.actor_id = spec.actor_id
        self.actor_class_name = spec.name
        self.actor_restarted = spec.attempt > 0
        self.actor_placement_group = spec.placement_group
        self.namespace = spec.namespace or self.namespace
        self.job_id = spec.job_id

    def record_actor_exit(self, reason: str) -> None:
        """Best effort: this actor ends on purpose (its caller must not restart it)."""
        try:
            self.gcs.record_actor_exit(self.actor_id.hex(), reason)
        except RayliteError:
            pass

    def actor_exit_reason(self, actor_id: bytes) -> str | None:
        """Why the actor ended on purpose; None when it did not or the GCS is away."""
        try:
            return self.gcs.actor_exit_reason(actor_id.hex())
        except RayliteError:
            return None

    async def kill_worker_at(self, address) -> None:
        """Ask the node scheduler of ``address`` to SIGKILL that worker."""
        if address.node_id == self.node_id:
            stub = self.scheduler_aio
        else:
            node = self.gcs.nodes().get(address.node_id)
            if node is None:
                return
            stub = self.scheduler_stub_for(node.address)
        await _quiet(stub.KillWorker(node_pb2.KillWorkerRequest(worker_id=address.worker_id)))

    def scheduler_knows(self, address) -> bool:
        """False when ``address`` is a process on this node that no longer exists."""
        if address.node_id != self.node_id or not address.pid:
            return True
        try:
            os.kill(address.pid, 0)
            return True
        except ProcessLookupError:
            return False

    # ---- CoreWorker service -------------------------------------------------------------
    async def PushTasks(self, request_iterator, context):
        if self.executor is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "drivers do not run tasks")
        outbox: list = []
        items: list = []           # generator items, each sent before its task's result
        wake = asyncio.Event()
        state = {"pending": 0, "closed": False}
        loop = self.loop

        def reply(result):
            loop.call_soon_threadsafe(deliver, result)

        def report(item):
            loop.call_soon_threadsafe(deliver_item, item)

        def deliver_item(item):
            items.append(item)
            wake.set()

        def deliver(result):
            state["pending"] -= 1
            outbox.append(result)
            wake.set()

        async def read():
            try:
                async for request in request_iterator:
                    if request.has_gpu_ids:
                        self.assign_lease(request)
                    for task_id in request.cancel_task_ids:
                        self.executor.cancel(task_id)
                    for task_id in request.steal_task_ids:
                        self.executor.steal(task_id)
                    for spec in request.tasks:
                        state["pending"] += 1
                        self.executor.submit(reply, spec, report)
                    for ack in request.generator_acks:
                        self.executor.ack(ack.task_id, ack.consumed)
            finally:
                state["closed"] = True
                wake.set()

        reader = loop.create_task(read())
        try:
            while True:
                await wake.wait()
                wake.clear()
                if outbox or items:
                    batch = outbox[:]
                    del outbox[:]
                    item_batch = items[:]
                    del items[:]
                    yield worker_pb2.PushReply(results=batch, items=item_batch)
                if state["closed"] and state["pending"] <= 0 and not outbox:
                    return
        except asyncio.CancelledError:
            if state["pending"] > 0 and not self.actor_id and not self.shutting_down:
                # The lease holder vanished (its process died, or dropped us) while its
                # tasks still run here: nobody will take their results. Exit, so this
                # node gets the worker's resources back (as Ray kills a dead owner's
                # workers); a live owner retries the tasks elsewhere.
                sys.stderr.write("raylite: the owner of the running task went away; "
                                 "this worker exits\n")
                loop.call_soon(os._exit, 1)
            raise
        finally:
            reader.cancel()

    def assign_lease(self, request) -> None:
        """The first message of a stream: the lease's GPUs and (from its holder) its
        resources."""
        self.assign_gpus(list(request.gpu_ids))
        if request.has_resources:
            self.assigned_resources = dict(request.resources)

    def assign_gpus(self, gpu_ids: list) -> None:
        if gpu_ids:
            self.gpu_ids = gpu_ids
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)

    async def GetObject(self, request, context):
        oid = request.id
        if request.lost_on_node and self.refs.is_owned(oid):
            # A borrower could not fetch our value from that node: rebuild it first.
            self.reconstruction.recover(oid, request.lost_on_node)
        value = self.memory.get(oid)
        if value is None:
            if not self.refs.in_use(oid):
                return worker_pb2.GetObjectReply(found=False)
            fut = self.loop.create_future()

            def ready(_oid, v):
                self.loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(v))

            self.memory.on_ready(oid, ready)
            try:
                value = await asyncio.wait_for(fut, request.timeout) if request.timeout > 0 else await fut
            except asyncio.TimeoutError:
                self.memory.remove_waiter(oid, ready)
                return worker_pb2.GetObjectReply(found=True, ready=False)
        return worker_pb2.GetObjectReply(found=True, ready=True, value=value)

    async def UpdateBorrows(self, request, context):
        for oid in request.add_ids:
            self.refs.add_borrower(oid, request.borrower)
        for oid in request.remove_ids:
            self.refs.remove_borrower(oid, request.borrower)
        return common_pb2.Empty()

    async def Exit(self, request, context):
        if self.executor is not None:
            self.loop.call_later(0.05, os._exit, 0)
        return common_pb2.Empty()

    # ---- lifecycle ------------------------------------------------------------------------
    def shutdown(self) -> None:
        groups = self.__dict__.get("_placement_groups")
        if groups is not None:
            groups.shutdown()   # the job's non-detached placement groups end with it
        self.shutting_down = True
        task_events.uninstall()
        self.objects.close()

        async def stop():
            self.submitter.shutdown()
            await self.server.stop(0.1)
            for ch in self._channels.values():
                await ch.close()
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not me]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        try:
            self.run_sync(stop(), timeout=3)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join(timeout=2)
        for channel in [self._scheduler_sync, *self._sync_channels.values()]:
            try:
                channel.close()
            except Exception:
                pass
        for path in (self._uds_path, self._uds_path + ".f"):
            try:
                os.unlink(path)
            except OSError:
                pass


_GENERATOR_KINDS = {"streaming": common_pb2.STREAMING, "dynamic": common_pb2.DYNAMIC}


def _replace_refs(args, kwargs, deps: list):
    def swap(value):
        if isinstance(value, ObjectRef):
            deps.append(value)
            return ArgPlaceholder(len(deps) - 1)
        return value
    return [swap(a) for a in args], {k: swap(v) for k, v in kwargs.items()}


def caller_site() -> str:
    """'file:line in function' of the first frame outside raylite (the user's call)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_RAYLITE_DIR):
        frame = frame.f_back
    if frame is None:
        return ""
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"

