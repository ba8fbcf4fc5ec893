"""The actor side of the core worker's public surface: create actors, submit their
calls, count handles, look up named actors, kill. User-thread entry points that
hand work to the ActorCallers on the event loop."""
from __future__ import annotations

import threading

from raylite.core import task_events
from raylite.core.actor_submitter import DEAD, ActorCall, ActorCaller
from raylite.core.actor_submitter import PENDING as PENDING_STATE
from raylite.core.object_ref import ObjectRef
from raylite.ids import random_id, return_ids
from raylite.options import ActorOptions
from raylite.protocol import common_pb2
from raylite.runtime_env.context import effective as effective_env
from raylite.util.scheduling_strategies import encode as encode_strategy


class ActorManager:

    def __init__(self, worker):
        self.worker = worker
        self.callers: dict[bytes, ActorCaller] = {}
        self.handles: dict[bytes, int] = {}
        self.escaped: set[bytes] = set()
        self.keep_alive: set[bytes] = set()     # named or detached: not collected with handles
        self.max_task_retries: dict[bytes, int] = {}
        self._lock = threading.RLock()

    def _caller(self, actor_id: bytes) -> ActorCaller:
        caller = self.callers.get(actor_id)
        if caller is None:
            with self._lock:
                caller = self.callers.get(actor_id)
                if caller is None:
                    caller = self.callers[actor_id] = ActorCaller(self, actor_id)
        return caller

    # ---- creation --------------------------------------------------------------------
    def create(self, actor_class, args, kwargs, options: ActorOptions, call_site: str):
        """Start an actor of ``actor_class`` (creation goes on in the background); returns
        its handle, or the existing actor's with get_if_exists.

        Raises ValueError when the name is taken, TypeError when an argument cannot be
        serialized, the error of a failed ref argument, and RuntimeEnvSetupError when a
        runtime_env path can no longer be packed.
        """
        from raylite.actor import ActorHandle
        worker = self.worker
        # Packs and uploads its working_dir / py_modules on first use (may raise).
        runtime_env = effective_env(worker, options.runtime_env)
        namespace = options.namespace or worker.current_namespace()
        name = options.name
        actor_id = random_id()
        detached = options.lifetime == "detached"
        fid = worker.functions.export(actor_class._cls)
        spec, deps = worker.build_spec(common_pb2.ACTOR_CREATION_TASK, fid, actor_class._name,
                                       args, kwargs, 0, call_site, task_id=actor_id)
        spec.actor_id = actor_id
        spec.max_concurrency = options.max_concurrency or 0
        spec.is_async_actor = actor_class._is_async
        if deps:
            # Constructor arguments are resolved before placement, in the creating thread.
            values = worker.objects.resolve_values(deps)
            spec.deps.extend(values)
            bad = next((v for v in values if v.is_error), None)
            if bad is not None:
                worker.io.from_value(bad)
        max_retries = options.max_task_retries or 0
        strategy = worker.group_strategy(encode_strategy(options.scheduling_strategy))
        if strategy.startswith("PG:"):
            spec.placement_group = strategy   # get_current_placement_group() inside it
        owner_info = {"placement": options.placement_request(),
                      "running": options.running_request(), "creation_spec": spec,
                      "class_name": actor_class._name, "name": name or "", "namespace": namespace,
                      "meta": actor_class._meta, "max_restarts": options.max_restarts or 0,
                      "detached": detached, "deps": deps,
                      "strategy": strategy, "runtime_env": runtime_env}
        for meta in actor_class._meta.values():
            if meta.get("max_task_retries") is None:
                meta["max_task_retries"] = max_retries
        caller = ActorCaller(self, actor_id, owner_info=owner_info)
        # Recorded before the name is claimed and before .remote() returns, so that
        # get_actor() and a second creation under the same name see it at once.
        caller._record(PENDING_STATE)
        if name:
            existing = self._claim_name(namespace, name, actor_id)
            if existing is not None:
                worker.gcs.delete_actor(actor_id.hex())
                if options.get_if_exists:
                    return self.lookup(name, namespace)
                raise ValueError(f"The name {name} (namespace={namespace}) is already taken. "
                                 f"Please use a different name or get the existing actor using "
                                 f"ray.get_actor('{name}', namespace='{namespace}')")
        with self._lock:
            self.callers[actor_id] = caller
            if name or detached:
                self.keep_alive.add(actor_id)
        task_events.actor_submitted(spec, owner_info["placement"])
        worker.loop.call_soon_threadsafe(caller.start)
        return ActorHandle(actor_id, actor_class._meta, actor_class._name)

    def _claim_name(self, namespace: str, name: str, actor_id: bytes) -> str | None:
        """Bind the name to our actor; the id of a live actor holding it, if any.
        A dead holder's name is taken over, atomically, inside the GCS client."""
        bound = self.worker.gcs.claim_actor_name(namespace, name, actor_id.hex())
        return None if bound == actor_id.hex() else bound

    # ---- calls -----------------------------------------------------------------------
    def submit(self, handle, method: str, args, kwargs, num_returns, max_task_retries,
               call_site: str, backpressure=None) -> list:
        worker = self.worker
        task_id = random_id()
        generator = type(num_returns) is str
        if generator:
            kind = common_pb2.STREAMING if num_returns == "streaming" else common_pb2.DYNAMIC
            num_returns = 1   # the return that ends the stream
        spec, deps = worker.build_spec(common_pb2.ACTOR_TASK, b"", f"{handle._class_name}.{method}",
                                       args, kwargs, num_returns, call_site, task_id=task_id)
        spec.actor_id = handle._actor_id
        spec.method = method
        ids = return_ids(task_id, num_returns)
        spec.return_ids = b"".join(ids)
        for oid in ids:
            worker.refs.add_owned(oid)
        refs = [ObjectRef(oid, worker.address_bytes) for oid in ids]
        if generator:
            refs = worker.start_generator(spec, kind, backpressure, refs)
        caller = self._caller(handle._actor_id)
        call = ActorCall(spec, deps, max_task_retries or 0)
        if task_events.RECORD_SITES:
            task_events.record_site(task_id, call_site)
        worker.loop.call_soon_threadsafe(caller.submit, call)
        return refs

    def cancel(self, ref: ObjectRef, force: bool) -> bool:
        """Cancel an actor call if ``ref`` came from one; False when it did not.

        Raises ValueError with ``force`` (as Ray: an actor's process is not killed
        for one of its calls).
        """
        task_id = ref.task_id()

        def find():
            for caller in list(self.callers.values()):
                if caller.sm.has_call(task_id):
                    return caller
            return None

        async def find_on_loop():
            return find()
        # Looked up on the loop, after the submissions queued there: a call made just
        # before (still on its way to its caller) is found too.
        caller = find() or self.worker.run_sync(find_on_loop())
        if caller is None:
            return False
        if force:
            raise ValueError("force=True is not supported for actor tasks.")
        self.worker.loop.call_soon_threadsafe(caller.cancel, task_id, force)
        return True

    # ---- handles ---------------------------------------------------------------------------
    def handle_created(self, actor_id: bytes) -> None:
        with self._lock:
            self.handles[actor_id] = self.handles.get(actor_id, 0) + 1

    def handle_escaped(self, actor_id: bytes) -> None:
        with self._lock:
            self.escaped.add(actor_id)

    def handle_deleted(self, actor_id: bytes) -> None:
        with self._lock:
            count = self.handles.get(actor_id, 0) - 1
            if count > 0:
                self.handles[actor_id] = count
                return
            self.handles.pop(actor_id, None)
            caller = self.callers.get(actor_id)
            if caller is None or caller.owner_info is None or actor_id in self.escaped \
                    or actor_id in self.keep_alive or self.worker.shutting_down:
                return
        try:
            self.worker.loop.call_soon_threadsafe(caller.terminate_when_idle)
        except RuntimeError:
            pass

    def lookup(self, name: str, namespace: str | None):
        from raylite.actor import ActorHandle
        worker = self.worker
        namespace = namespace or worker.current_namespace()
        actor_hex = worker.gcs.lookup_actor_name(namespace, name)
        record = worker.gcs.get_actor(actor_hex) if actor_hex else None
        if record is None or record.state == DEAD:
            raise ValueError(f"Failed to look up actor with name '{name}'. This could because 1. "
                             f"You are trying to look up a named actor you didn't create. 2. The "
                             f"named actor died. 3. You did not use a namespace matching the "
                             f"namespace of the actor. (namespace={namespace!r})")
        return ActorHandle(bytes.fromhex(actor_hex), record.meta, record.class_name)

    def kill(self, actor_id: bytes, no_restart: bool) -> None:
        caller = self._caller(actor_id)
        self.worker.loop.call_soon_threadsafe(caller.kill, no_restart)
