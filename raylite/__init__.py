"""raylite: a lightweight Ray-compatible runtime. ``import raylite as ray``."""
import os as _os

# gRPC core logs every failed TLS handshake (a port scan, a peer without the cluster
# identity) at INFO; that is not the user's terminal's business. Set it to see them.
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from raylite import exceptions  # noqa: E402
from raylite.api import (  # noqa: E402
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

_LAZY_SUBMODULES = {"util", "dag", "actor", "tensor", "runtime_context", "experimental",
                    "runtime_env"}


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
