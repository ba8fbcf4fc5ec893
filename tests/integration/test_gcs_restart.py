"""The GCS is a real Redis with append-only persistence: when it restarts, drivers,
schedulers and workers reconnect and carry on, and what was written survives."""
from __future__ import annotations

import os
import signal
import subprocess

import raylite as ray
from raylite.gcs.redis_server import find_redis_server


def test_cluster_carries_on_after_redis_restart():
    ray.init(num_cpus=2)
    try:
        cluster = ray.api.connection()
        redis_proc = next(p for p in cluster.procs
                          if any(os.path.basename(str(a)) == "redis-server" for a in p.args))

        @ray.remote
        def before(x):
            return x + 1

        assert ray.get(before.remote(1)) == 2
        functions_before = cluster.gcs.function_ids()
        assert functions_before

        redis_proc.send_signal(signal.SIGTERM)   # a clean stop flushes the append-only file
        redis_proc.wait(10)
        conf = os.path.join(cluster.session.redis_dir, "redis.conf")
        restarted = subprocess.Popen([find_redis_server(), conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        cluster.procs[cluster.procs.index(redis_proc)] = restarted

        # Nothing committed was lost ...
        assert cluster.gcs.function_ids() >= functions_before

        # ... and new work (new functions exported, a new actor) runs.
        @ray.remote
        def after(x):
            return x * 10

        @ray.remote
        class Counter:
            def value(self):
                return 42

        assert ray.get(after.remote(2), timeout=30) == 20
        assert ray.get(before.remote(5), timeout=30) == 6
        assert ray.get(Counter.remote().value.remote(), timeout=30) == 42
        assert len([n for n in ray.nodes() if n["Alive"]]) == 1
    finally:
        ray.shutdown()
