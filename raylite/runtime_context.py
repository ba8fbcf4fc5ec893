"""``ray.get_runtime_context()``: ids of the job, task, node, worker and actor, the
resources of the current lease, and whether the running task was cancelled.

Types and errors follow Ray: ids are hex strings; what only makes sense inside a
task or actor returns None (ids) or raises (is_canceled, current_actor,
get_assigned_resources) in the driver."""
from __future__ import annotations

import logging

from raylite.core import global_state

logger = logging.getLogger("raylite")

_DRIVER_MODE = 0      # Ray's SCRIPT_MODE, shown in its messages


def _is_worker(worker) -> bool:
    return getattr(worker, "mode", None) == "worker"


class RuntimeContext:
    """A view of where the calling code runs (get_runtime_context() initializes
    raylite first when needed, as Ray does)."""

    def __init__(self, worker):
        self._worker = worker

    # ---- ids -------------------------------------------------------------------------
    def get_job_id(self) -> str:
        """The job's id in hex (the driver's job inside its tasks and actors)."""
        return self._worker.current_job_id().hex()

    @property
    def job_id(self):
        return self.get_job_id()

    def get_task_id(self) -> str | None:
        """The running task's id in hex; None in the driver (with a warning, as Ray)
        and outside a task."""
        if not _is_worker(self._worker):
            logger.warning("This method is only available when the process is a worker. "
                           "Current mode: %d", _DRIVER_MODE)
            return None
        spec = self._worker.current_spec
        return spec.task_id.hex() if spec is not None else None

    def get_node_id(self) -> str:
        return self._worker.node_id

    @property
    def node_id(self):
        return self.get_node_id()

    def get_worker_id(self) -> str:
        return self._worker.worker_id

    def get_actor_id(self) -> str | None:
        """This actor's id in hex; None outside an actor."""
        actor = getattr(self._worker, "actor_id", None)
        return actor.hex() if actor else None

    def get_actor_name(self) -> str | None:
        """This actor's name ("" when it has none); None outside an actor."""
        actor = getattr(self._worker, "actor_id", None)
        if not actor:
            return None
        record = self._worker.gcs.get_actor(actor.hex())
        return record.name if record is not None else ""

    @property
    def namespace(self) -> str:
        """The namespace of the job (inside tasks too)."""
        return self._worker.current_namespace()

    # ---- runtime_env ------------------------------------------------------------------
    @property
    def runtime_env(self):
        """The runtime_env this process runs under (a RuntimeEnv; the job's in the
        driver), working_dir and py_modules as their package URIs."""
        from raylite.runtime_env.context import job_env
        from raylite.runtime_env.runtime_env import _rebuild
        return _rebuild(job_env(self._worker)[0])

    def get_runtime_env_string(self) -> str:
        """The runtime_env as canonical JSON ("{}" for none)."""
        from raylite.runtime_env.context import job_env
        return job_env(self._worker)[1] or "{}"

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return bool(getattr(self._worker, "actor_restarted", False))

    # ---- the actor, the lease, cancellation --------------------------------------------
    @property
    def current_actor(self):
        """The ActorHandle of the actor this code runs in.

        Raises RuntimeError outside an actor (as Ray does).
        """
        worker = self._worker
        actor = getattr(worker, "actor_id", None)
        if not actor:
            raise RuntimeError("This method is only available in an actor.")
        handle = getattr(worker, "self_handle", None)
        if handle is None:
            handle = worker.self_handle = _own_handle(worker, actor)
        return handle

    def get_assigned_resources(self) -> dict:
        """The resources held for the running task or actor ({"CPU": 1.0} for a
        default task, {} for a default actor).

        Raises AssertionError in the driver (as Ray does).
        """
        if not _is_worker(self._worker):
            raise AssertionError("This method is only available when the process is a "
                                 f"worker. Current mode: {_DRIVER_MODE}")
        return dict(self._worker.assigned_resources)

    def get_accelerator_ids(self) -> dict:
        return {"GPU": [str(i) for i in getattr(self._worker, "gpu_ids", [])]}

    def is_canceled(self) -> bool:
        """True once ray.cancel() reached the running task: a task may poll it after
        catching KeyboardInterrupt, a (sync) actor call, which is not interrupted,
        to stop early.

        Raises RuntimeError in the driver and in an async actor (as Ray does).
        """
        worker = self._worker
        if not _is_worker(worker):
            raise RuntimeError("This method is only available when the process is a worker. "
                               f"Current mode: {_DRIVER_MODE}")
        executor = worker.executor
        if executor.actor.is_async:
            raise RuntimeError("This method is not supported in an async actor.")
        spec = worker.current_spec
        return spec is not None and spec.task_id in executor.cancelled

    def get(self) -> dict:
        out: dict[str, str | None] = {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
               "namespace": self.namespace}
        if _is_worker(self._worker):
            if self.get_task_id() is not None:
                out["task_id"] = self.get_task_id()
            if self.get_actor_id() is not None:
                out["actor_id"] = self.get_actor_id()
        return out


def _own_handle(worker, actor_id: bytes):
    """A handle of this actor, from its record in the GCS (methods and options)."""
    from raylite.actor import ActorHandle, _method_meta
    record = worker.gcs.get_actor(actor_id.hex())
    if record is not None:
        return ActorHandle(actor_id, record.meta, record.class_name)
    return ActorHandle(actor_id, _method_meta(type(worker.executor.actor.instance)),
                       worker.actor_class_name)


def get_runtime_context() -> RuntimeContext:
    """A view of the calling process: its job, task, actor, node and namespace."""
    return RuntimeContext(global_state.get_worker())
