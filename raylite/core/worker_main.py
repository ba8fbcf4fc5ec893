"""Entry point of a worker process: ``python -m raylite.core.worker_main``.

Started by the node scheduler with its settings in the environment. Serves the
CoreWorker service on a background loop and runs tasks on the main thread.
"""
from __future__ import annotations

import os
import sys


def main() -> int:
    from raylite.processes import die_with_parent
    die_with_parent()
    env = os.environ
    from raylite.core import global_state
    from raylite.core.core_worker import WORKER, CoreWorker
    from raylite.core.log_forward import LogSink, install
    from raylite.gcs.client import GcsClient
    from raylite.protocol import node_pb2
    from raylite.session import session_from_root

    session = session_from_root(env["RAYLITE_SESSION"])
    from raylite.gcs.signing import signing_key
    gcs = GcsClient(env["RAYLITE_GCS"], env["RAYLITE_GCS_PASSWORD"], env.get("RAYLITE_GCS_SOCKET") or None,
                    signing_key=signing_key(env["RAYLITE_TOKEN"]))
    worker = CoreWorker(WORKER, node_id=env["RAYLITE_NODE_ID"], session=session,
                        token=env["RAYLITE_TOKEN"], gcs=gcs, scheduler_target=env["RAYLITE_SCHEDULER"],
                        job_id=b"", store_dir=env["RAYLITE_STORE_DIR"],
                        host=env.get("RAYLITE_HOST", "127.0.0.1"), worker_id=env["RAYLITE_WORKER_ID"])
    # Inside tasks, ray.is_initialized(), cluster_resources() etc. see the cluster.
    from raylite.cluster import ClusterHandle
    global_state.set_connection(ClusterHandle(worker=worker, gcs=gcs, session=session,
                                              embedded=False, in_worker=True,
                                              gcs_address=env["RAYLITE_GCS"]))
    worker.log_sink = LogSink(gcs, env["RAYLITE_NODE_ID"])
    install(worker.log_sink)
    assert worker.executor is not None  # a worker-mode CoreWorker always has one
    worker.executor.install_signal_handler()
    worker.scheduler.RegisterWorker(node_pb2.WorkerInfo(address=worker.address), wait_for_ready=True,
                                    timeout=30)
    try:
        worker.executor.run()
    finally:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
