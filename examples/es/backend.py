"""Choosing the runtime: ``import raylite as ray`` or ``import ray``.

Everything else in the example talks to the module returned by ``load_backend`` through
Ray's public API only (``remote``, ``options``, ``put``, ``get``, ``wait``, ``kill``),
which is the whole point: the same code measures raylite against real Ray.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

BACKENDS = ("raylite", "ray")

# The directory holding the ``examples`` package, i.e. the repository root.
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def load_backend(name: str):
    """Import and return the ``raylite`` or ``ray`` module.

    Raises ValueError for an unknown name and ImportError when it isn't installed.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    return importlib.import_module(name)


def actor_failure_errors(ray) -> tuple:
    """Exception types that mean "the actor or its process is gone", not "your code raised".

    Looked up by name because the two runtimes' trees differ in the details.
    """
    exceptions = getattr(ray, "exceptions", None)
    if exceptions is None:
        exceptions = importlib.import_module(ray.__name__ + ".exceptions")
    names = ("RayActorError", "ActorDiedError", "ActorUnavailableError",
             "WorkerCrashedError", "ObjectLostError", "OwnerDiedError")
    found = tuple(getattr(exceptions, n) for n in names if hasattr(exceptions, n))
    if not found:
        raise ImportError(f"{ray.__name__}.exceptions has no RayActorError")
    return found


def init_runtime(ray, address: str | None, num_cpus: int, num_gpus: int | None = None):
    """Start a local runtime (``address=None``) or join a cluster.

    Worker processes must be able to import ``examples.es``; on a local cluster they
    inherit the driver's environment, so the repository root is put on PYTHONPATH
    first.  Nodes of a remote cluster need the repository on their own path.
    """
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if REPO_ROOT not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([REPO_ROOT] + [p for p in paths if p])
    if getattr(ray, "is_initialized", lambda: False)():
        return
    kwargs = {}
    if address is None:
        # Ask for at least one CPU per worker actor, else extra actors would wait
        # forever for a free CPU.  Oversubscribing is the user's explicit choice.
        kwargs["num_cpus"] = num_cpus
        if num_gpus is not None:
            kwargs["num_gpus"] = num_gpus
    if ray.__name__ == "ray":
        kwargs.update(include_dashboard=False, logging_level="WARNING")
        if address is None:
            # Plain ray.init() joins whatever cluster /tmp/ray/ray_current_cluster names;
            # "local" always starts a private one, as raylite's init(None) does.
            address = "local"
    ray.init(address=address, **kwargs)
