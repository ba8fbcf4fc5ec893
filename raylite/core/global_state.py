"""The process-wide core worker (one per driver or worker process)."""
from __future__ import annotations

_worker = None


def set_worker(worker) -> None:
    global _worker
    _worker = worker


def get_worker(required: bool = True):
    """The running core worker; raises RaySystemError when raylite is not initialized."""
    if _worker is None and required:
        from raylite.exceptions import RaySystemError
        raise RaySystemError("raylite is not initialized: call raylite.init() first")
    return _worker
