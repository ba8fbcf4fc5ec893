"""runtime_env: per-job, per-task and per-actor environment variables, working
directory and extra Python modules (``raylite.runtime_env.RuntimeEnv``, as in Ray).

Modules: ``spec`` (what a runtime_env may say, merging; pure), ``packaging`` (zip,
content hash, safe unpack), ``upload`` (the driver packs and stores packages in the
GCS), ``context`` (which env a process and its submissions run under), ``node`` (a
node unpacks packages and builds a worker's environment), ``worker`` (a new worker
enters its env).
"""
from raylite.runtime_env.runtime_env import RuntimeEnv, RuntimeEnvConfig

__all__ = ["RuntimeEnv", "RuntimeEnvConfig"]
