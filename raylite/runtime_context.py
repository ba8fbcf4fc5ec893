"""``ray.get_runtime_context()``: ids of the job, task, node, worker and actor."""
from __future__ import annotations

from raylite.core import global_state


class RuntimeContext:
    """A view of where the calling code runs. Methods raise RaySystemError when
    raylite is not initialized."""

    def __init__(self, worker):
        self._worker = worker

    def get_job_id(self) -> str:
        return self._worker.current_job_id().hex()

    @property
    def job_id(self):
        return self.get_job_id()

    def get_task_id(self) -> str | None:
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
        actor = getattr(self._worker, "actor_id", None)
        return actor.hex() if actor else None

    @property
    def namespace(self) -> str:
        return self._worker.namespace

    @property
    def was_current_actor_reconstructed(self) -> bool:
        return bool(getattr(self._worker, "actor_restarted", False))

    @property
    def current_actor(self):
        return getattr(self._worker, "actor_handle", None)

    def get_assigned_resources(self) -> dict:
        return dict(getattr(self._worker, "assigned_resources", {}) or {})

    def get_accelerator_ids(self) -> dict:
        return {"GPU": [str(i) for i in getattr(self._worker, "gpu_ids", [])]}

    def get(self) -> dict:
        return {"job_id": self.get_job_id(), "node_id": self.get_node_id(),
                "task_id": self.get_task_id(), "actor_id": self.get_actor_id()}


def get_runtime_context() -> RuntimeContext:
    """A view of the calling process: its job, task, actor, node and namespace."""
    return RuntimeContext(global_state.get_worker())
