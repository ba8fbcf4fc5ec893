"""Private directories and secret files that another local user cannot plant or read.

A directory another user created (or a symlink they planted) before us would let
them read the token we write there, or swap files under us, so every check here
refuses rather than repairs: the user must remove the squatted path.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat


class InsecurePathError(PermissionError):
    """A session path is not private to this user (squatted, a symlink, or shared)."""


def private_dir(path: str, create: bool = True) -> str:
    """Make sure ``path`` is a directory owned by us with no group/other permissions.

    Creates it (0700) when missing and ``create`` is true; the parent must exist or
    be creatable. Raises InsecurePathError when it is a symlink, not a directory,
    owned by another user, or open to group/other; OSError when it cannot be made.
    """
    if create:
        parent = os.path.dirname(path.rstrip("/"))
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, mode=0o700, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    check_private(path, want_dir=True)
    return path


def check_private(path: str, want_dir: bool) -> os.stat_result:
    """lstat ``path`` and refuse it unless it is ours, private, and not a link.

    Raises InsecurePathError (a PermissionError) explaining what is wrong, and
    FileNotFoundError when it does not exist.
    """
    st = os.lstat(path)
    what = "directory" if want_dir else "file"
    if stat.S_ISLNK(st.st_mode):
        raise InsecurePathError(f"refusing raylite {what} {path}: it is a symlink")
    if want_dir and not stat.S_ISDIR(st.st_mode):
        raise InsecurePathError(f"refusing raylite {what} {path}: it is not a directory")
    if not want_dir and not stat.S_ISREG(st.st_mode):
        raise InsecurePathError(f"refusing raylite {what} {path}: it is not a regular file")
    if st.st_uid != os.geteuid():
        raise InsecurePathError(f"refusing raylite {what} {path}: it is owned by uid "
                                f"{st.st_uid}, not by this user (uid {os.geteuid()}); "
                                f"remove it or set RAYLITE_TMPDIR")
    if st.st_mode & 0o077:
        raise InsecurePathError(f"refusing raylite {what} {path}: its mode "
                                f"{stat.S_IMODE(st.st_mode):04o} lets other users in; "
                                f"it must be 0700 (directory) or 0600 (file)")
    return st


def write_secret(path: str, data: str | bytes) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600.

    The bytes go to a fresh temporary name created with O_EXCL|O_NOFOLLOW (so a
    planted file or symlink cannot redirect them) and then replace ``path``; a
    symlink at ``path`` itself is replaced, never followed. The directory must be
    private (see private_dir). Raises OSError on failure.
    """
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_secret(path: str) -> str:
    """Read a secret file after checking it is ours, 0600 and not a symlink.

    Raises FileNotFoundError when missing and InsecurePathError when it could have
    been planted or read by another user.
    """
    fd = _open_nofollow(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not stat.S_ISREG(st.st_mode):
            check_private(path, want_dir=False)   # raises with the precise reason
            raise InsecurePathError(f"refusing raylite file {path}: it changed while read")
        return f.read().decode()


def append_private(path: str, line: str) -> None:
    """Append a line to a 0600 file of ours (created if missing, never via a symlink).

    Raises InsecurePathError when an existing file is not private; OSError otherwise.
    """
    fd = _open_nofollow(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    with os.fdopen(fd, "a") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise InsecurePathError(f"refusing raylite file {path}: not private to this user")
        f.write(line)


def _open_nofollow(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise InsecurePathError(f"refusing raylite file {path}: it is a symlink") from err
        raise
