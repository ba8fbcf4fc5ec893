"""Packing a local directory or module into a content-addressed zip, and unpacking it.

The zip is deterministic (sorted entries, fixed timestamps), so equal content gives an
equal zip and an equal name: ``_ray_pkg_<first 32 hex digits of its sha256>.zip``. A
node checks the bytes it downloads against that name before unpacking, and unpacks
into a directory named after it: once per node, atomically (a temporary directory
renamed into place), never outside the target (entries with absolute paths or ``..``
are refused).
"""
from __future__ import annotations

import fnmatch
import hashlib
import io
import os
import shutil
import tempfile
import zipfile

from raylite.exceptions import RuntimeEnvSetupError

MAX_PACKAGE_BYTES = int(float(os.environ.get("RAYLITE_RUNTIME_ENV_MAX_PACKAGE_MIB", "100"))
                        * 1024 * 1024)
# Never uploaded: version control and byte-code caches (as Ray leaves out .git).
DEFAULT_EXCLUDES = (".git", ".hg", ".svn", "__pycache__", "*.pyc")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
PREFIX = "_ray_pkg_"


def package_name(blob: bytes) -> str:
    """``_ray_pkg_<hash>.zip`` for these zip bytes."""
    return f"{PREFIX}{hashlib.sha256(blob).hexdigest()[:32]}.zip"


def uri_for(name: str) -> str:
    return f"gcs://{name}"


def name_of(uri: str) -> str:
    return uri[len("gcs://"):]


def _excluded(relative: str, patterns) -> bool:
    base = os.path.basename(relative)
    return any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(base, p)
               or fnmatch.fnmatch(relative, p.rstrip("/") + "/*") for p in patterns)


def _files(path: str, patterns) -> list[tuple[str, str]]:
    """(absolute path, name in the zip) of every file to pack under directory ``path``."""
    out = []
    for root, dirs, files in os.walk(path, followlinks=False):
        rel_root = os.path.relpath(root, path)
        rel_root = "" if rel_root == "." else rel_root
        dirs[:] = sorted(d for d in dirs
                         if not _excluded(os.path.join(rel_root, d), patterns))
        for name in sorted(files):
            relative = os.path.join(rel_root, name)
            full = os.path.join(root, name)
            if _excluded(relative, patterns) or not os.path.isfile(full):
                continue
            out.append((full, relative.replace(os.sep, "/")))
    return out


def pack(path: str, excludes=(), include_dir: bool = False,
         limit: int | None = None) -> bytes:
    """Zip ``path`` (a directory, or a single .py file) deterministically.

    ``include_dir`` keeps the directory's own name as the top level (a package for
    py_modules: ``mypkg/__init__.py``); otherwise its contents are the top level
    (working_dir). ``excludes`` are glob patterns matched against paths relative to
    ``path`` and against base names. Raises ValueError when the zip is larger than
    ``limit`` (default MAX_PACKAGE_BYTES) and OSError when ``path`` cannot be read.
    """
    limit = MAX_PACKAGE_BYTES if limit is None else limit
    patterns = tuple(DEFAULT_EXCLUDES) + tuple(excludes)
    if os.path.isfile(path):
        entries = [(path, os.path.basename(path))]
    elif os.path.isdir(path):
        prefix = os.path.basename(os.path.normpath(path)) + "/" if include_dir else ""
        entries = [(full, prefix + name) for full, name in _files(path, patterns)]
    else:
        raise FileNotFoundError(f"{path} does not exist")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for full, name in entries:
            info = zipfile.ZipInfo(name, _FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (os.stat(full).st_mode & 0o777 | 0o100000) << 16
            with open(full, "rb") as f:
                archive.writestr(info, f.read())
            if buffer.tell() > limit:
                break
    blob = buffer.getvalue()
    if len(blob) > limit:
        raise ValueError(
            f"The package for {path} is larger than the limit of {limit / 2**20:.2f} MiB "
            f"(at least {len(blob) / 2**20:.2f} MiB zipped). Leave large files out with the "
            f"runtime_env 'excludes' option, or raise RAYLITE_RUNTIME_ENV_MAX_PACKAGE_MIB.")
    return blob


def check_blob(name: str, blob: bytes | None) -> bytes:
    """``blob`` when it is the package ``name``; raises RuntimeEnvSetupError when it is
    missing or its content does not match its name."""
    if blob is None:
        raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\nThe package "
                                   f"gcs://{name} is not in the GCS (was the cluster restarted "
                                   f"without persistence, or the job's driver another cluster's?)")
    if package_name(blob) != name:
        raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\nThe package "
                                   f"gcs://{name} in the GCS does not match its content hash")
    return blob


def _safe_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = []
    for info in archive.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\nThe package "
                                       f"holds an unsafe path {name!r}")
        mode = info.external_attr >> 16
        if mode and (mode & 0o170000) == 0o120000:
            raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\nThe package "
                                       f"holds a symbolic link {name!r}")
        members.append(info)
    return members


def unpack(blob: bytes, target: str) -> str:
    """Unpack ``blob`` into directory ``target`` unless it is there already; returns
    ``target``. Safe against concurrent unpacks of the same package (the first rename
    wins, the others drop their copy) and against paths escaping ``target``.

    Raises RuntimeEnvSetupError for an unsafe or corrupt zip, OSError for disk errors.
    """
    if os.path.isdir(target):
        return target
    parent = os.path.dirname(target)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
    try:
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as archive:
                for info in _safe_members(archive):
                    archive.extract(info, scratch)
                    mode = (info.external_attr >> 16) & 0o777
                    if mode and not info.is_dir():
                        os.chmod(os.path.join(scratch, info.filename), mode | 0o600)
        except zipfile.BadZipFile as err:
            raise RuntimeEnvSetupError(f"Failed to set up runtime environment.\n"
                                       f"The package is not a valid zip: {err}") from None
        try:
            os.rename(scratch, target)
        except OSError:
            if not os.path.isdir(target):   # not lost to a concurrent unpack: a real error
                raise
    finally:
        if os.path.isdir(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
    return target
