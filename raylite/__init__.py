"""raylite: a lightweight Ray-compatible runtime. ``import raylite as ray``."""
from raylite import exceptions
from raylite.api import (
    DynamicObjectRefGenerator,
    ObjectRefGenerator,
    available_resources,
    cancel,
    cluster_resources,
    get,
    get_actor,
    get_gpu_ids,
    get_runtime_context,
    init,
    is_initialized,
    kill,
    method,
    nodes,
    put,
    remote,
    shutdown,
    timeline,
    wait,
)
from raylite.core.object_ref import ObjectRef

__version__ = "0.1.0"

_LAZY_SUBMODULES = {"util", "dag", "actor", "tensor", "runtime_context"}


def __getattr__(name):
    # Submodules load on first use so `import raylite` stays fast.
    if name in _LAZY_SUBMODULES:
        import importlib
        return importlib.import_module(f"raylite.{name}")
    raise AttributeError(f"module 'raylite' has no attribute {name!r}")

__all__ = ["init", "shutdown", "is_initialized", "remote", "method", "get", "put", "wait",
           "cancel", "kill", "get_actor", "cluster_resources", "available_resources", "nodes",
           "get_gpu_ids", "get_runtime_context", "timeline", "ObjectRef", "ObjectRefGenerator",
           "DynamicObjectRefGenerator", "exceptions",
           "__version__"]
