"""Entry point of the node scheduler process: ``python -m raylite.scheduler ...``.

Started by ``ray.init()`` (embedded cluster) and by ``raylite start``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from raylite.session import SessionPaths


@dataclass
class SchedulerConfig:
    session: SessionPaths
    node_id: str
    token: str
    gcs_address: str
    redis_password: str
    gcs_socket: str
    host: str
    resources: dict
    object_store_memory: int
    prestart: int
    embedded_driver_pid: int
    redis_pid: int
    ready_file: str
    is_head: bool
    metrics_export_port: int = -1     # -1: no metrics endpoint, 0: any free port


def parse(argv: list[str]) -> SchedulerConfig:
    p = argparse.ArgumentParser(prog="raylite-scheduler")
    p.add_argument("--session", required=True)
    p.add_argument("--node-id", required=True)
    p.add_argument("--gcs", required=True)
    p.add_argument("--gcs-socket", default="")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--resources", default="{}", help="JSON dict of total resources")
    p.add_argument("--object-store-memory", type=int, default=0)
    p.add_argument("--prestart", type=int, default=-1)
    p.add_argument("--embedded-driver-pid", type=int, default=0)
    p.add_argument("--redis-pid", type=int, default=0)
    p.add_argument("--ready-file", default="")
    p.add_argument("--head", action="store_true")
    p.add_argument("--metrics-export-port", type=int, default=-1)
    a = p.parse_args(argv)
    from raylite.session import session_from_root
    resources = json.loads(a.resources)
    prestart = a.prestart if a.prestart >= 0 else int(resources.get("CPU", 1))
    return SchedulerConfig(
        session=session_from_root(a.session).make(), node_id=a.node_id,
        # Secrets come through the environment, never argv (visible in ps).
        token=os.environ["RAYLITE_TOKEN"], redis_password=os.environ["RAYLITE_GCS_PASSWORD"],
        gcs_address=a.gcs, gcs_socket=a.gcs_socket, host=a.host, resources=resources,
        object_store_memory=a.object_store_memory, prestart=prestart,
        embedded_driver_pid=a.embedded_driver_pid, redis_pid=a.redis_pid,
        ready_file=a.ready_file, is_head=a.head, metrics_export_port=a.metrics_export_port)


def main(argv: list[str] | None = None) -> int:
    cfg = parse(sys.argv[1:] if argv is None else argv)
    if cfg.embedded_driver_pid:
        # An embedded cluster dies with its driver, even when the driver is SIGKILLed.
        import signal

        from raylite.processes import set_parent_death_signal
        set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != cfg.embedded_driver_pid:
            return 1
    if not cfg.object_store_memory:
        from raylite.object_store.store import default_capacity
        cfg.object_store_memory = default_capacity()
    # Fork the worker template (zygote) once grpc is imported and before any thread,
    # channel or server exists; it imports the rest of what workers need and forks
    # the first workers while this process starts its server (drivers wait on that),
    # and only then imports redis for the GCS.
    import uuid

    import grpc  # noqa: F401  (shared with the zygote; the rest it imports itself)
    import grpc.aio  # noqa: F401

    from raylite.scheduler.worker_pool import WorkerProcesses, worker_env
    procs = WorkerProcesses(worker_env(cfg), cfg.session.logs, fork_zygote=True)
    prestarted = []
    for _ in range(cfg.prestart):
        worker_id = uuid.uuid4().hex
        procs.spawn(worker_id)
        prestarted.append(worker_id)
    import asyncio
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from raylite.scheduler.server import serve
    asyncio.run(serve(cfg, procs, prestarted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
