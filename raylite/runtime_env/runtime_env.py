"""``RuntimeEnv``: Ray's dict subclass for a runtime environment, checked on creation."""
from __future__ import annotations

import json

from raylite.runtime_env import spec


class RuntimeEnv(dict):
    """A runtime environment: ``RuntimeEnv(env_vars={...}, working_dir=..., py_modules=[...])``.

    Accepted wherever a runtime_env dict is (``init``, ``@remote``, ``.options``).
    Raises as ``runtime_env`` dicts do: TypeError for wrong types, ValueError for
    unknown keys or paths that do not exist, UnsupportedOptionError (a ValueError)
    for Ray keys raylite does not implement (pip, conda, container, ...).
    """

    def __init__(self, *, env_vars: dict | None = None, working_dir: str | None = None,
                 py_modules: list | None = None, excludes: list | None = None,
                 config: dict | None = None, **kwargs):
        given = {"env_vars": env_vars, "working_dir": working_dir, "py_modules": py_modules,
                 "excludes": excludes, "config": config, **kwargs}
        super().__init__(spec.normalize({k: v for k, v in given.items() if v is not None}))

    def env_vars(self) -> dict:
        return dict(self.get("env_vars") or {})

    def working_dir(self) -> str:
        return self.get("working_dir", "")

    def py_modules(self) -> list:
        return list(self.get("py_modules") or [])

    def to_dict(self) -> dict:
        return dict(self)

    def serialize(self) -> str:
        return json.dumps(self, sort_keys=True, separators=(",", ":"))

    @classmethod
    def deserialize(cls, text: str) -> RuntimeEnv:
        return cls(**json.loads(text))

    def __reduce__(self):
        return (_rebuild, (dict(self),))


class RuntimeEnvConfig(dict):
    """Ray's ``RuntimeEnvConfig`` (the ``config`` key): accepted and checked; raylite
    sets envs up without installs, so the timeout and eager_install change nothing."""

    def __init__(self, setup_timeout_seconds: int = 600, eager_install: bool = True,
                 log_files: list | None = None):
        super().__init__(spec.normalize({"config": {
            "setup_timeout_seconds": setup_timeout_seconds, "eager_install": eager_install,
            "log_files": list(log_files or [])}})["config"])


def _rebuild(values: dict) -> RuntimeEnv:
    env = RuntimeEnv.__new__(RuntimeEnv)
    dict.update(env, spec.ordered(values))
    return env
