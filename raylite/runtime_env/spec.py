"""What a runtime_env may say, checked once, and how two of them combine (pure logic).

A runtime_env is a plain dict (or a RuntimeEnv, a dict subclass). raylite implements
``env_vars``, ``working_dir``, ``py_modules``, ``excludes`` and ``config``; Ray's other
keys (``pip``, ``conda``, ``uv``, ``container``, ``image_uri``, ...) raise
UnsupportedOptionError naming the key, and a key Ray does not know either raises
ValueError. Nothing here touches the network; ``normalize`` only looks at the local
paths it is given.
"""
from __future__ import annotations

import json
import os
import re
import types

from raylite.exceptions import UnsupportedOptionError

# In the order Ray's RuntimeEnv holds them (what printing one shows).
SUPPORTED = ("py_modules", "working_dir", "env_vars", "config", "excludes")
# Ray's keys that raylite does not implement: each says why.
UNSUPPORTED = {
    "pip": "raylite installs no packages per task; install them on every node instead",
    "uv": "raylite installs no packages per task; install them on every node instead",
    "conda": "raylite creates no conda environments; activate one on every node instead",
    "container": "raylite starts no containers",
    "image_uri": "raylite starts no containers",
    "py_executable": "raylite workers run the node's own interpreter",
    "java_jars": "raylite runs Python only",
    "worker_process_setup_hook": "not implemented by raylite",
    "nsight": "not implemented by raylite",
    "mpi": "not implemented by raylite",
}
CONFIG_KEYS = ("setup_timeout_seconds", "eager_install", "log_files")
# Packages uploaded by a driver, named by their content hash (Ray's own URI shape).
PACKAGE_URI = re.compile(r"^gcs://_ray_pkg_[0-9a-f]{32}\.zip$")


def _option(key: str) -> str:
    return f"runtime_env['{key}']"


def normalize(env) -> dict:
    """A checked copy of ``env`` with None values dropped, module objects in
    ``py_modules`` turned into their paths and local paths made absolute.

    Raises TypeError for values of the wrong type (as Ray words it), ValueError for a
    key Ray does not know or a local path that does not exist, and
    UnsupportedOptionError (a ValueError) for Ray keys raylite does not implement and
    for remote URIs / zip files.
    """
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise TypeError(f"runtime_env must be a dict or a RuntimeEnv, got {type(env).__name__}")
    out: dict = {}
    for key, value in env.items():
        if value is None:
            continue
        if key in UNSUPPORTED:
            raise UnsupportedOptionError(_option(key), value, UNSUPPORTED[key])
        if key not in SUPPORTED:
            raise ValueError(f"Unknown runtime_env key '{key}'. raylite supports "
                             f"{', '.join(SUPPORTED)}.")
        out[key] = _CHECKS[key](value)
    return ordered(out)


def ordered(env: dict) -> dict:
    """``env`` with its keys in the order Ray's RuntimeEnv shows them."""
    return {key: env[key] for key in SUPPORTED if key in env}


def _env_vars(value) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"runtime_env['env_vars'] must be of type Dict[str, str], "
                        f"got {type(value)}")
    for name, item in value.items():
        if not isinstance(name, str):
            raise TypeError(f"runtime_env['env_vars'] must be of type Dict[str, str], but the "
                            f"key {name!r} is of type {type(name)}")
        if not isinstance(item, str):
            raise TypeError(f"runtime_env['env_vars'] must be of type Dict[str, str], but the "
                            f"value {item!r} is of type {type(item)}")
    return dict(value)


def _working_dir(value) -> str:
    if not isinstance(value, str):
        raise TypeError(f"`working_dir` must be a string, got {type(value)}.")
    if PACKAGE_URI.match(value):
        return value
    if "://" in value:
        raise UnsupportedOptionError(_option("working_dir"), value,
                                     "remote URIs are not supported; give a local directory")
    if value.endswith(".zip") and os.path.isfile(value):
        raise UnsupportedOptionError(_option("working_dir"), value,
                                     "zip files are not supported; give a local directory")
    if not os.path.isdir(value):
        raise ValueError(f"{value} is not a valid path.")
    return os.path.abspath(value)


def _py_module(item) -> str:
    if isinstance(item, types.ModuleType):
        path = getattr(item, "__file__", None)
        if not path:
            raise ValueError(f"py_modules: module {item.__name__} has no file to upload")
        # A package is uploaded whole (its directory), a plain module as its .py file.
        return os.path.dirname(os.path.abspath(path)) \
            if os.path.basename(path) == "__init__.py" else os.path.abspath(path)
    if not isinstance(item, str):
        raise TypeError(f"`py_modules` must be a list of strings or modules, got an item of "
                        f"type {type(item)}.")
    if PACKAGE_URI.match(item):
        return item
    if "://" in item:
        raise UnsupportedOptionError(_option("py_modules"), item,
                                     "remote URIs are not supported; give a local path")
    if item.endswith((".whl", ".zip")):
        raise UnsupportedOptionError(_option("py_modules"), item,
                                     "wheels and zip files are not supported; give a package "
                                     "directory or a .py file")
    if os.path.isdir(item) or (os.path.isfile(item) and item.endswith(".py")):
        return os.path.abspath(item)
    raise ValueError(f"{item} is not a valid path (py_modules takes package directories "
                     f"and .py files).")


def _py_modules(value) -> list:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"`py_modules` must be a list of strings, got {type(value)}.")
    return [_py_module(item) for item in value]


def _excludes(value) -> list:
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        raise TypeError(f"runtime_env['excludes'] must be a list of strings, got {value!r}")
    return list(value)


def _config(value) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"runtime_env['config'] must be a dict, got {type(value)}")
    for key, item in value.items():
        if key not in CONFIG_KEYS:
            raise ValueError(f"Unknown runtime_env['config'] key '{key}'; valid ones are "
                             f"{', '.join(CONFIG_KEYS)}")
        if key == "setup_timeout_seconds" and (isinstance(item, bool) or not isinstance(item, int)
                                               or not (item > 0 or item == -1)):
            raise ValueError("setup_timeout_seconds must be a positive int (or -1)")
        if key == "eager_install" and not isinstance(item, bool):
            raise TypeError("eager_install must be a bool")
    return dict(value)


_CHECKS = {"env_vars": _env_vars, "working_dir": _working_dir, "py_modules": _py_modules,
           "excludes": _excludes, "config": _config}


def merge(parent: dict, child: dict) -> dict:
    """The env a task or actor gets: ``child`` overrides ``parent`` key by key, except
    ``env_vars``, merged variable by variable (the child's win), as Ray does."""
    if not child:
        return parent
    if not parent:
        return child
    out = {**parent, **child}
    if "env_vars" in parent and "env_vars" in child:
        out["env_vars"] = {**parent["env_vars"], **child["env_vars"]}
    return out


def encode(env: dict) -> str:
    """The canonical text of a resolved env (sorted, compact: Ray's
    get_runtime_env_string form); "" for the default env. Equal envs give equal text,
    so it doubles as the key that matches leases to workers."""
    if not env:
        return ""
    return json.dumps(env, sort_keys=True, separators=(",", ":"))


def decode(text: str) -> dict:
    """The env ``encode`` wrote ({} for "")."""
    return json.loads(text) if text else {}
