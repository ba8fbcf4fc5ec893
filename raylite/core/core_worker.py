"""The core worker: present in every driver and worker process.

It owns the objects its process creates (an in-process table of values), submits
tasks, fetches borrowed values from their owners, and serves its peers over gRPC
(tasks pushed by lease holders, object requests from borrowers). Network work runs
on one asyncio loop in a background thread; user code calls in from its own thread.
"""
from __future__ import annotations

import asyncio
import itertools
import os
import sys
import threading
import uuid

import grpc

from raylite import exceptions as exc
from raylite.core.actor_manager import ActorManager
from raylite.core.executor import ArgPlaceholder, Executor
from raylite.core.function_manager import FunctionManager
from raylite.core.memory_store import MemoryStore
from raylite.core.object_io import ObjectIO
from raylite.core.object_ref import ObjectRef
from raylite.core.reference_counter import ReferenceCounter
from raylite.core.submitter import TaskEntry, TaskSubmitter
from raylite.ids import object_id_for, random_id, return_ids
from raylite.protocol import common_pb2, node_pb2, node_pb2_grpc, objects_pb2_grpc, worker_pb2, \
    worker_pb2_grpc
from raylite.protocol.channels import AuthedStub, aio_channel, bind, make_server, pick_target, \
    sync_channel
from raylite.serialization import dumps_exception, serialize

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
        self.namespace = namespace
        self.host = host
        self.worker_id = worker_id or uuid.uuid4().hex
        self.shutting_down = False
        self.memory = MemoryStore()
        self.refs = ReferenceCounter(self._free_object)
        self.functions = FunctionManager(gcs)
        self._put_prefix = random_id()
        self._put_counter = itertools.count(1)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._fetching: set[bytes] = set()
        self._to_delete: list[bytes] = []
        self._owner_cache: dict[bytes, common_pb2.Address] = {}
        self._borrowed: dict[bytes, bytes] = {}      # borrowed object id -> owner address
        self._contained: dict[bytes, list] = {}      # put object id -> ids of refs inside it
        self._sync_channels: dict = {}
        self._infeasible_warned: set = set()
        self.task_context = threading.local()
        self.current_spec = None
        self.gpu_ids: list = []
        self.actor_id = b""
        self.actor_class_name = ""
        self.actor_restarted = False
        self.executor = Executor(self) if mode == WORKER else None

        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._run_loop, daemon=True, name="raylite-io")
        self._loop_thread.start()
        self._scheduler_sync = sync_channel(scheduler_target)
        self.scheduler = AuthedStub(node_pb2_grpc.NodeSchedulerStub(self._scheduler_sync), token)
        self.store_stub = AuthedStub(objects_pb2_grpc.ObjectStoreStub(self._scheduler_sync), token)
        self.io = ObjectIO(node_id, store_dir, self.store_stub, pull=self._pull_remote)
        self.io.owner_id = self.worker_id
        self.address = self.run_sync(self._start(scheduler_target))
        self.address_bytes = self.address.SerializeToString()
        self.submitter = TaskSubmitter(self)
        self.actors = ActorManager(self)

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
        return common_pb2.Address(node_id=self.node_id, worker_id=self.worker_id, tcp=tcp, uds=uds,
                                  pid=os.getpid())

    def channel(self, target: str) -> grpc.aio.Channel:
        """A cached asyncio channel to ``target`` (loop thread only)."""
        ch = self._channels.get(target)
        if ch is None:
            ch = self._channels[target] = aio_channel(target)
        return ch

    def scheduler_stub_for(self, address: str):
        return AuthedStub(node_pb2_grpc.NodeSchedulerStub(self.channel(address)), self.token)

    def peer_stub(self, address: common_pb2.Address):
        target = pick_target(address, self.node_id)
        return AuthedStub(worker_pb2_grpc.CoreWorkerStub(self.channel(target)), self.token)

    # ---- objects --------------------------------------------------------------------
    def put(self, value) -> ObjectRef:
        """Store ``value``; raises TypeError if unserializable, ObjectStoreFullError if no room."""
        if isinstance(value, ObjectRef):
            raise TypeError("Calling 'put' on an ObjectRef is not allowed. If you really want to "
                            "do this, you can wrap the ObjectRef in a list and call 'put' on it.")
        oid = object_id_for(self._put_prefix, next(self._put_counter))
        ser = serialize(value)
        self._pin_nested(ser.contained_refs)
        if ser.contained_refs:
            # Refs inside a stored value live as long as the value does.
            self._contained[oid] = [r.binary() for r in ser.contained_refs]
        stored = self.io.to_value(oid, None, serialized=ser)
        self.refs.add_owned(oid)
        self.memory.put(oid, stored)
        return ObjectRef(oid, self.address_bytes)

    def _pin_nested(self, refs) -> None:
        # A ref that leaves this process inside a value stays pinned: the receiver may
        # ask its owner for it at any time.
        for ref in refs:
            self.refs.pin(ref.binary())

    def error_value(self, object_id: bytes, error: BaseException) -> common_pb2.ObjectValue:
        from raylite.serialization import serialize as ser
        try:
            s = ser(error)
            data = s.to_bytes()
        except TypeError:
            data = ser(exc.RaySystemError(f"{type(error).__name__}: {error}")).to_bytes()
        return common_pb2.ObjectValue(id=object_id, data=data, size=len(data), is_error=True)

    def store_owned_value(self, value: common_pb2.ObjectValue) -> None:
        oid = value.id
        if not self.refs.in_use(oid):
            # Nobody holds a ref any more: drop it right away.
            if value.in_store:
                self.free_store([oid])
            return
        self.memory.put(oid, value)

    def _free_object(self, object_id: bytes, owned: bool) -> None:
        value = self.memory.delete(object_id)
        if owned and value is not None and value.in_store and value.node_id == self.node_id:
            self.free_store([object_id])
        for inner in self._contained.pop(object_id, ()):
            self.refs.unpin(inner)
        owner = self._borrowed.pop(object_id, None)
        if owner is not None and not self.shutting_down:
            try:
                self.loop.call_soon_threadsafe(self._send_unborrow, object_id, owner)
            except RuntimeError:
                pass

    def _pull_remote(self, value: common_pb2.ObjectValue) -> None:
        """Copy an object from the store of the node holding it into this node's store,
        in chunks over the ObjectStore.Pull stream. Raises ObjectLostError if it is gone."""
        from raylite.protocol import objects_pb2
        node = self.gcs.nodes().get(value.node_id)
        if node is None or not node.get("alive", True):
            raise exc.ObjectLostError(value.id.hex(), f"Object {value.id.hex()} lived on node "
                                                      f"{value.node_id[:8]}, which is gone.")
        channel = self._sync_channels.get(node["address"])
        if channel is None:
            channel = self._sync_channels[node["address"]] = sync_channel(node["address"])
        stub = AuthedStub(objects_pb2_grpc.ObjectStoreStub(channel), self.token)
        try:
            chunks = stub.Pull(objects_pb2.PullRequest(id=value.id))
            self.io.write_raw(value.id, (c.data for c in chunks), value.size)
        except grpc.RpcError as err:
            raise exc.ObjectLostError(value.id.hex(), f"Could not fetch object {value.id.hex()} "
                                                      f"from node {value.node_id[:8]}: {err.code().name}") from err

    def register_borrow(self, object_id: bytes, owner_bytes: bytes) -> None:
        """A ref owned elsewhere arrived here: tell its owner before using it.

        Synchronous so the owner learns of us before the sender can drop its pin.
        """
        if not owner_bytes or owner_bytes == self.address_bytes or object_id in self._borrowed:
            return
        self._borrowed[object_id] = owner_bytes
        owner = self._owner_address(owner_bytes)
        try:
            stub = self._sync_peer(owner)
            stub.UpdateBorrows(worker_pb2.BorrowRequest(add_ids=[object_id], borrower=self.worker_id),
                               timeout=10)
        except grpc.RpcError:
            pass  # the owner is gone; get() will report OwnerDiedError

    def _send_unborrow(self, object_id: bytes, owner_bytes: bytes) -> None:
        stub = self.peer_stub(self._owner_address(owner_bytes))
        self.loop.create_task(_quiet(stub.UpdateBorrows(
            worker_pb2.BorrowRequest(remove_ids=[object_id], borrower=self.worker_id))))

    def _owner_address(self, owner_bytes: bytes) -> common_pb2.Address:
        owner = self._owner_cache.get(owner_bytes)
        if owner is None:
            owner = self._owner_cache[owner_bytes] = common_pb2.Address.FromString(owner_bytes)
        return owner

    def _sync_peer(self, address: common_pb2.Address):
        target = pick_target(address, self.node_id)
        channel = self._sync_channels.get(target)
        if channel is None:
            channel = self._sync_channels[target] = sync_channel(target)
        return AuthedStub(worker_pb2_grpc.CoreWorkerStub(channel), self.token)

    def task_done(self, task_id: bytes) -> None:
        """Unpin the refs that were serialized into a finished task's arguments."""
        for inner in self._contained.pop(task_id, ()):
            self.refs.unpin(inner)

    def free_store(self, object_ids: list[bytes]) -> None:
        if self.shutting_down:
            return
        first = not self._to_delete
        self._to_delete.extend(object_ids)
        if first:
            try:
                self.loop.call_soon_threadsafe(self._flush_deletes)
            except RuntimeError:
                pass

    def _flush_deletes(self) -> None:
        ids, self._to_delete = self._to_delete, []
        if ids:
            from raylite.protocol import objects_pb2
            stub = AuthedStub(objects_pb2_grpc.ObjectStoreStub(self.channel(self.scheduler_target_uds())),
                              self.token)
            self.loop.create_task(_quiet(stub.Delete(objects_pb2.ObjectIds(ids=ids))))

    def scheduler_target_uds(self) -> str:
        return "unix:" + self.session.scheduler_socket(self.node_id)

    def _is_local(self, ref: ObjectRef) -> bool:
        return ref._owner == self.address_bytes or self.refs.is_owned(ref._id) or not ref._owner

    def when_ready(self, ref: ObjectRef, callback) -> None:
        """Call ``callback(ObjectValue)`` (on any thread) once ``ref``'s value is known."""
        oid = ref._id
        value = self.memory.get(oid)
        if value is not None:
            callback(value)
            return
        self.memory.on_ready(oid, lambda _oid, v: callback(v))
        if not self._is_local(ref) and oid not in self._fetching:
            self._fetching.add(oid)
            self.loop.call_soon_threadsafe(self._start_fetch, ref)

    def _start_fetch(self, ref: ObjectRef) -> None:
        self.loop.create_task(self._fetch(ref))

    async def _fetch(self, ref: ObjectRef) -> None:
        oid = ref._id
        owner = self._owner_address(ref._owner)
        try:
            reply = await self.peer_stub(owner).GetObject(worker_pb2.GetObjectRequest(id=oid))
            if reply.found:
                value = reply.value
            else:
                value = self.error_value(oid, exc.ObjectLostError(
                    oid.hex(), f"Object {oid.hex()} was freed by its owner or never existed."))
        except grpc.RpcError as err:
            value = self.error_value(oid, exc.OwnerDiedError(
                oid.hex(), f"The owner of object {oid.hex()} (worker {owner.worker_id[:8]}, pid "
                           f"{owner.pid}) died: {err.code().name}"))
        finally:
            self._fetching.discard(oid)
        self.memory.put(oid, value)

    def get(self, refs: list, timeout: float | None = None) -> list:
        """Values of ``refs`` in order. Raises GetTimeoutError, or the task's error."""
        values = [self.memory.get(r._id) if isinstance(r, ObjectRef) else _bad_ref(r) for r in refs]
        missing = [i for i, v in enumerate(values) if v is None]
        if missing:
            self._wait_values(refs, values, missing, timeout)
        return [self._materialize(v) for v in values]

    def _wait_values(self, refs, values, missing, timeout) -> None:
        done = threading.Event()
        remaining = [len(missing)]
        lock = threading.Lock()

        def ready(index, value):
            values[index] = value
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    done.set()

        for i in missing:
            self.when_ready(refs[i], lambda v, i=i: ready(i, v))
        blocked = self._notify_blocked(True)
        try:
            if not done.wait(timeout):
                raise exc.GetTimeoutError(f"Get timed out: some object(s) not ready after {timeout}s.")
        finally:
            if blocked:
                self._notify_blocked(False)

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

    def _materialize(self, value: common_pb2.ObjectValue):
        obj = self.io.from_value(value)
        if value.is_error:
            if isinstance(obj, exc.RayTaskError):
                raise obj.as_instanceof_cause()
            raise obj
        return obj

    def get_async(self, ref: ObjectRef, callback) -> None:
        """Call ``callback(value, error)`` once ``ref`` is ready (for asyncio futures)."""
        def ready(value):
            try:
                callback(self._materialize(value), None)
            except BaseException as err:  # noqa: BLE001
                callback(None, err)
        self.when_ready(ref, ready)

    def wait(self, refs: list, num_returns: int, timeout: float | None, fetch_local: bool):
        ready_ids: set = set()
        done = threading.Event()
        lock = threading.Lock()

        def mark(oid):
            with lock:
                ready_ids.add(oid)
                if len(ready_ids) >= num_returns:
                    done.set()

        for ref in refs:
            if self.memory.contains(ref._id):
                mark(ref._id)
        if len(ready_ids) < num_returns:
            for ref in refs:
                if ref._id not in ready_ids:
                    self.when_ready(ref, lambda v, oid=ref._id: mark(oid))
            blocked = self._notify_blocked(True)
            try:
                done.wait(timeout)
            finally:
                if blocked:
                    self._notify_blocked(False)
        with lock:
            snapshot = set(ready_ids)
        ready, not_ready = [], []
        for ref in refs:
            if ref._id in snapshot and len(ready) < num_returns:
                ready.append(ref)
            else:
                not_ready.append(ref)
        return ready, not_ready

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
        self._pin_nested(ser.contained_refs)
        args_value = self.io.to_value(object_id_for(task_id, 0), None, serialized=ser)
        if ser.contained_refs:
            # Released when the task is done (its worker registers as a borrower first).
            self._contained[task_id] = [r.binary() for r in ser.contained_refs]
        spec = common_pb2.TaskSpec(task_id=task_id, job_id=self.current_job_id(), type=task_type,
                                   function_id=function_id, name=name, args=args_value,
                                   num_returns=num_returns, call_site=call_site,
                                   namespace=self.current_namespace())
        spec.caller.CopyFrom(self.address)
        return spec, deps

    def submit_task(self, fn, name: str, args, kwargs, *, num_returns: int, resources: dict,
                    max_retries: int, retry_exceptions, call_site: str):
        """Submit a normal task; returns its ObjectRefs.

        Raises TypeError at the call site when an argument cannot be serialized.
        """
        fid = self.functions.export(fn)
        task_id = random_id()
        spec, deps = self.build_spec(common_pb2.NORMAL_TASK, fid, name, args, kwargs, num_returns,
                                     call_site, task_id)
        ids = return_ids(task_id, num_returns)
        spec.return_ids = b"".join(ids)
        for oid in ids:
            self.refs.add_owned(oid)
        out = [ObjectRef(oid, self.address_bytes) for oid in ids]
        key = tuple(sorted(resources.items()))
        self.submitter.submit(TaskEntry(spec, key, resources, max_retries, retry_exceptions, deps))
        return out

    def resolve_values(self, refs: list) -> list:
        """The ObjectValues of refs, waiting for them (used for actor constructor args)."""
        values = [self.memory.get(r._id) for r in refs]
        missing = [i for i, v in enumerate(values) if v is None]
        if missing:
            self._wait_values(refs, values, missing, None)
        return values

    def cancel_actor_task(self, ref: ObjectRef, force: bool) -> bool:
        return self.actors.cancel(ref, force)

    def cancel(self, ref: ObjectRef, force: bool) -> None:
        self.submitter.cancel(ref.task_id(), force)

    def warn_if_infeasible(self, resources: dict) -> None:
        """Print one loud warning when no node in the cluster has these resources."""
        from raylite.scheduler.resources import missing
        try:
            nodes = self.gcs.nodes()
        except Exception:
            return
        alive = [n for n in nodes.values() if n.get("alive", True)]
        if any(not missing(resources, n.get("resources", {})) for n in alive):
            return
        totals: dict = {}
        for n in alive:
            for k, v in n.get("resources", {}).items():
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
        self.namespace = spec.namespace or self.namespace
        self.job_id = spec.job_id

    def record_actor_exit(self, reason: str) -> None:
        from raylite.gcs import keys
        try:
            self.gcs.redis.hset(keys.ACTOR_EXITS, self.actor_id.hex(), reason)
        except Exception:
            pass

    def actor_exit_reason(self, actor_id: bytes) -> str | None:
        from raylite.gcs import keys
        try:
            raw = self.gcs.redis.hget(keys.ACTOR_EXITS, actor_id.hex())
        except Exception:
            return None
        return raw.decode() if raw else None

    async def kill_worker_at(self, address) -> None:
        """Ask the node scheduler of ``address`` to SIGKILL that worker."""
        if address.node_id == self.node_id:
            stub = self.scheduler_aio
        else:
            node = self.gcs.nodes().get(address.node_id)
            if node is None:
                return
            stub = self.scheduler_stub_for(node["address"])
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
        wake = asyncio.Event()
        state = {"pending": 0, "closed": False}
        loop = self.loop

        def reply(result):
            loop.call_soon_threadsafe(deliver, result)

        def deliver(result):
            state["pending"] -= 1
            outbox.append(result)
            wake.set()

        async def read():
            try:
                async for request in request_iterator:
                    if request.has_gpu_ids:
                        self.assign_gpus(list(request.gpu_ids))
                    for task_id in request.cancel_task_ids:
                        self.executor.cancel(task_id)
                    for spec in request.tasks:
                        state["pending"] += 1
                        self.executor.queue.put((reply, spec))
            finally:
                state["closed"] = True
                wake.set()

        reader = loop.create_task(read())
        try:
            while True:
                await wake.wait()
                wake.clear()
                if outbox:
                    batch = outbox[:]
                    del outbox[:]
                    yield worker_pb2.PushReply(results=batch)
                if state["closed"] and state["pending"] <= 0 and not outbox:
                    return
        finally:
            reader.cancel()

    def assign_gpus(self, gpu_ids: list) -> None:
        if gpu_ids:
            self.gpu_ids = gpu_ids
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)

    async def GetObject(self, request, context):
        oid = request.id
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
        self.shutting_down = True

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
        try:
            os.unlink(self._uds_path)
        except OSError:
            pass


async def _quiet(awaitable) -> None:
    try:
        await awaitable
    except grpc.RpcError:
        pass


def _bad_ref(value):
    raise TypeError(f"get() expects ObjectRefs, got {type(value).__name__}: {value!r}")


def _replace_refs(args, kwargs, deps: list):
    def swap(value):
        if isinstance(value, ObjectRef):
            deps.append(value)
            return ArgPlaceholder(len(deps) - 1)
        return value
    return [swap(a) for a in args], {k: swap(v) for k, v in kwargs.items()}


def caller_site() -> str:
    """'file:line in function' of the first frame outside raylite (the user's call)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_RAYLITE_DIR):
        frame = frame.f_back
    if frame is None:
        return ""
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def dumps_error(error: BaseException) -> bytes:
    return dumps_exception(error)
