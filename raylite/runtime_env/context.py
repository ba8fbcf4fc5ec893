"""Which runtime_env a process runs under, and which one its submissions get.

The driver's env is the job's (``init(runtime_env=...)``); a worker's is the one it was
started with (``RAYLITE_RUNTIME_ENV``). A task or actor without its own runtime_env
inherits it; one with its own gets it merged over it (``spec.merge``), as in Ray.
"""
from __future__ import annotations

import os

from raylite.runtime_env import spec
from raylite.runtime_env.upload import resolve

ENV_VAR = "RAYLITE_RUNTIME_ENV"   # the worker's resolved env (canonical JSON)

_job: tuple = (None, {}, "")        # (driver CoreWorker, resolved env, its text)


def set_job_env(worker, env: dict) -> None:
    """Record the job's resolved runtime_env for the driver whose CoreWorker this is."""
    global _job
    _job = (worker, env, spec.encode(env))


def job_env(worker) -> tuple[dict, str]:
    """(resolved env, canonical text) that submissions from ``worker``'s process inherit."""
    if _job[0] is worker and worker is not None:
        return _job[1], _job[2]
    if getattr(worker, "mode", "") == "worker":
        text = os.environ.get(ENV_VAR, "")
        return spec.decode(text), text
    return {}, ""


def effective(worker, own: dict | None) -> str:
    """The canonical text of the env a task or actor with runtime_env ``own`` (already
    normalized; None/{} for none) submitted from ``worker``'s process runs under: ""
    for the default env. Packs and uploads local paths on first use.

    Raises RuntimeEnvSetupError when a local path vanished, ValueError when a package
    is over the size limit.
    """
    parent, text = job_env(worker)
    if not own:
        return text
    return spec.encode(spec.merge(parent, resolve(own, worker.gcs)))
