"""A node's side: turn a resolved runtime_env into what a worker is started with.

``NodeEnvs.prepare`` (blocking: the scheduler runs it on a thread) downloads the env's
packages from the GCS, checks them against their content hash, unpacks each once per
node under ``<session>/runtime_resources/`` and returns the environment variables of
a worker for that env: the user's ``env_vars``, ``PYTHONPATH`` extended with the
working_dir and py_modules, and the variables ``worker.enter`` reads to change
directory and ``sys.path`` after the zygote's fork.
"""
from __future__ import annotations

import os
import threading

from raylite.exceptions import RuntimeEnvSetupError
from raylite.runtime_env import packaging, spec
from raylite.runtime_env.context import ENV_VAR

CWD_VAR = "RAYLITE_RUNTIME_ENV_CWD"       # directory the worker starts in
PATHS_VAR = "RAYLITE_RUNTIME_ENV_PATHS"   # os.pathsep-joined entries put first on sys.path


class NodeEnvs:
    """Prepared runtime envs of one node (thread-safe)."""

    def __init__(self, gcs, root: str):
        self.gcs = gcs
        self.root = os.path.join(root, "runtime_resources")
        self._lock = threading.Lock()
        self._unpacking: dict[str, threading.Lock] = {}

    def prepare(self, text: str) -> dict:
        """Worker environment variables for the env whose canonical text is ``text``.

        Raises RuntimeEnvSetupError when a package is missing, corrupt or unsafe, or
        cannot be unpacked.
        """
        env = spec.decode(text)
        out: dict = dict(env.get("env_vars") or {})
        out[ENV_VAR] = text
        paths = []
        working_dir = env.get("working_dir")
        if working_dir:
            directory = self._ensure(working_dir, "working_dir_files")
            out[CWD_VAR] = directory
            paths.append(directory)
        for uri in env.get("py_modules") or ():
            paths.append(self._ensure(uri, "py_modules_files"))
        if paths:
            out[PATHS_VAR] = os.pathsep.join(paths)
            inherited = out.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
            out["PYTHONPATH"] = os.pathsep.join(paths + ([inherited] if inherited else []))
        return out

    def _ensure(self, uri: str, kind: str) -> str:
        if not spec.PACKAGE_URI.match(uri):
            raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\n"
                                       f"Unsupported package URI {uri!r}")
        name = packaging.name_of(uri)
        target = os.path.join(self.root, kind, name[:-len(".zip")])
        if os.path.isdir(target):
            return target
        with self._lock:
            lock = self._unpacking.setdefault(name, threading.Lock())
        with lock:   # one download per package at a time in this process
            if os.path.isdir(target):
                return target
            try:
                blob = self.gcs.get_package(name)
            except Exception as err:
                raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\nCould not "
                                           f"read {uri} from the GCS: {err}") from None
            try:
                return packaging.unpack(packaging.check_blob(name, blob), target)
            except OSError as err:
                raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\nCould not "
                                           f"unpack {uri}: {err}") from None

    @staticmethod
    def still_there(prepared: dict) -> bool:
        """Whether the directories a prepared env points at still exist."""
        paths = prepared.get(PATHS_VAR)
        return not paths or all(os.path.isdir(p) for p in paths.split(os.pathsep))
