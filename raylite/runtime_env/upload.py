"""The driver's side of working_dir / py_modules: pack local paths once, upload once.

``resolve`` turns a normalized env's local paths into package URIs
(``gcs://_ray_pkg_<hash>.zip``) and stores each package in the GCS; the result is what
leases carry and workers are started with. A path is packed once per process (the
first time it is used; later edits to the directory are not seen, as in Ray) and each
package is uploaded once per cluster.
"""
from __future__ import annotations

import logging
import threading

from raylite.exceptions import RuntimeEnvSetupError
from raylite.runtime_env import packaging
from raylite.runtime_env.spec import PACKAGE_URI

logger = logging.getLogger("raylite")

_lock = threading.Lock()
_packed: dict[tuple, tuple[str, bytes]] = {}   # (path, include_dir, excludes) -> (name, zip)
_uploaded: dict[str, object] = {}              # package name -> the GcsClient it went to


def pack_paths(env: dict) -> tuple[dict, dict]:
    """``env`` with its local paths replaced by package URIs, and {name: zip bytes} of
    the packages. Raises ValueError for a package over the size limit and
    RuntimeEnvSetupError when a path can no longer be read (it vanished)."""
    out = dict(env)
    excludes = tuple(out.pop("excludes", ()))   # used up by packing
    blobs: dict = {}
    if "working_dir" in out:
        out["working_dir"] = _pack_one(out["working_dir"], False, excludes, "working_dir", blobs)
    if "py_modules" in out:
        out["py_modules"] = [_pack_one(p, True, excludes, "py_modules", blobs)
                             for p in out["py_modules"]]
    return out, blobs


def _pack_one(path: str, include_dir: bool, excludes: tuple, what: str, blobs: dict) -> str:
    if PACKAGE_URI.match(path):
        return path           # already a package (e.g. taken from a runtime context)
    key = (path, include_dir, excludes)
    with _lock:
        known = _packed.get(key)
    if known is None:
        try:
            blob = packaging.pack(path, excludes, include_dir=include_dir)
        except OSError as err:
            raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\n"
                                       f"Could not pack {what} {path}: {err}") from None
        known = (packaging.package_name(blob), blob)
        logger.info("Creating a file package for local module '%s'.", path)
        with _lock:
            _packed[key] = known
    blobs[known[0]] = known[1]
    return packaging.uri_for(known[0])


def upload(blobs: dict, gcs) -> None:
    """Store each package in the GCS unless this process already did (for this GCS)."""
    for name, blob in blobs.items():
        with _lock:
            if _uploaded.get(name) is gcs:
                continue
        logger.info("Pushing file package 'gcs://%s' (%.2fMiB) to Ray cluster...", name,
                    len(blob) / 2**20)
        gcs.put_package(name, blob)
        logger.info("Successfully pushed file package 'gcs://%s'.", name)
        with _lock:
            _uploaded[name] = gcs


def resolve(env: dict, gcs) -> dict:
    """``pack_paths`` then ``upload``: the env as leases carry it."""
    resolved, blobs = pack_paths(env)
    if blobs:
        upload(blobs, gcs)
    return resolved


def resolve_for_pickle(env: dict, worker) -> dict:
    """``env`` with local paths replaced by uploaded packages when a cluster is
    connected (``env`` itself otherwise, or when a path cannot be packed: the
    submission then reports it)."""
    if worker is None:
        return env
    try:
        return resolve(env, worker.gcs)
    except Exception:
        return env
