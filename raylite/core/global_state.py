"""The process-wide connection to a cluster: one object per driver or worker process.

It is the ClusterHandle that ``raylite.init`` (or a worker's start-up) made; the
process's CoreWorker is ``connection().worker``. Calls that need a cluster and find
none start one, exactly where Ray does (auto-init), unless RAY_ENABLE_AUTO_CONNECT=0.
"""
from __future__ import annotations

import os

_connection = None
_worker = None      # _connection.worker, kept beside it: read on every ObjectRef's life


def set_connection(connection) -> None:
    """Install (or clear, with None) this process's connection."""
    global _connection, _worker
    _connection = connection
    _worker = connection.worker if connection is not None else None


def auto_connect_enabled() -> bool:
    return (os.environ.get("RAY_ENABLE_AUTO_CONNECT", "") != "0"
            and os.environ.get("RAYLITE_ENABLE_AUTO_CONNECT", "") != "0")


def connection(required: bool = True):
    """This process's connection; with ``required``, the first call of a process that
    has none runs ``raylite.init()`` (as Ray's auto-init does).

    Raises RaySystemError when there is none and auto-init is disabled.
    """
    if _connection is None and required:
        if auto_connect_enabled():
            from raylite import api
            api.auto_init()
        if _connection is None:
            from raylite.exceptions import RaySystemError
            raise RaySystemError("raylite is not initialized: call raylite.init() first")
    return _connection


def get_worker(required: bool = True):
    """The running core worker (auto-initializing when ``required``, see connection()).

    Raises RaySystemError when raylite is not initialized and auto-init is disabled.
    """
    if _worker is None and required:
        return connection().worker
    return _worker
