"""Every Redis key and channel raylite uses, in one place.

Values are msgpack unless noted (records: raylite.gcs.records). Ids appear in hex.
"""
from __future__ import annotations

PREFIX = "raylite:"

NODES = PREFIX + "nodes"                 # hash node_id -> NodeRecord
HEARTBEATS = PREFIX + "heartbeats"       # hash node_id -> unix time of last beat
AVAILABLE = PREFIX + "available"         # hash node_id -> free resources at last beat
NODES_VERSION = PREFIX + "nodes:version"  # integer, bumped whenever a NodeRecord changes
JOBS = PREFIX + "jobs"                   # hash job_id -> JobRecord
FINISHED_JOBS = PREFIX + "jobs:finished"  # sorted set job_id -> time its driver went away
ACTORS = PREFIX + "actors"               # hash actor_id -> ActorRecord
ACTOR_NAMES = PREFIX + "actor_names"     # hash "namespace/name" -> actor_id
ACTOR_EXITS = PREFIX + "actor_exits"     # hash actor_id -> why it ended on purpose (no restart)
NODE_CHANNEL = PREFIX + "channel:nodes"  # pubsub: node joined / died
MONITOR = PREFIX + "monitor"             # node id of the failure monitor (expiring lease)
PLACEMENT_GROUPS = PREFIX + "placement_groups"  # hash pg_id -> PlacementGroupRecord
PG_NAMES = PREFIX + "pg_names"           # hash "namespace/name" -> pg_id (named groups)
PG_REMOVED = PREFIX + "pg_removed"       # sorted set pg_id by removal time (oldest trimmed)
METRIC_DEFS = PREFIX + "metrics:defs"   # hash metric name -> msgpack {type, description, ...}
METRIC_NODES = PREFIX + "metrics:nodes"  # set of node ids that recorded metrics
SIGNING_CHECK = PREFIX + "signing_check"  # HMAC proving which token signs records (gcs/signing.py)


def function_key(function_id_hex: str) -> str:
    """Pickled function or class (cloudpickle bytes), written once per job."""
    return f"{PREFIX}fn:{function_id_hex}"


def runtime_env_package(name: str) -> str:
    """A runtime_env package (zip bytes, raw), named by its content hash
    (``_ray_pkg_<hash>.zip``); written once by the first driver that uploads it."""
    return f"{PREFIX}rtenv:pkg:{name}"


def object_locations(object_id_hex: str) -> str:
    """Set of node ids whose store holds the object."""
    return f"{PREFIX}objloc:{object_id_hex}"


def lineage(task_id_hex: str) -> str:
    """Serialized TaskSpec that produced objects stored in shared memory."""
    return f"{PREFIX}lineage:{task_id_hex}"


def log_channel(job_id_hex: str) -> str:
    """Pubsub channel carrying worker stdout/stderr lines to the job's driver."""
    return f"{PREFIX}channel:logs:{job_id_hex}"


def actor_channel(actor_id_hex: str) -> str:
    """Pubsub channel announcing an actor's state changes."""
    return f"{PREFIX}channel:actor:{actor_id_hex}"


def actor_name_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def node_metrics(node_id: str) -> str:
    """Hash of one node's metric values: series field (raylite.util.metrics_buffer)
    -> float (counters and histogram parts summed, gauges last set)."""
    return f"{PREFIX}metrics:node:{node_id}"


def pg_owned(owner_worker_id: str) -> str:
    """Set of the live non-detached placement groups a process created, so a dead
    driver's groups are found without reading the whole table."""
    return f"{PREFIX}pg_owned:{owner_worker_id}"


# ---- observability (raylite.core.task_events, raylite.util.state) ----------------------
TASK_EVENT_JOBS = PREFIX + "task_events:jobs"        # set of job ids that recorded task events
TASK_EVENTS_DROPPED = PREFIX + "task_events:dropped"  # hash job_id -> events dropped under load
WORKERS = PREFIX + "workers"                  # hash worker_id -> msgpack process entry (1 s refresh)
OBJECT_REPORTS_WANTED = PREFIX + "objects:wanted"   # string, expiring: someone lists objects
STORE_STATS = PREFIX + "store_stats"          # hash node_id -> msgpack store summary


def task_events(job_id_hex: str) -> str:
    """List of msgpack task-event entries of one job, trimmed to a maximum length."""
    return f"{PREFIX}task_events:{job_id_hex}"


def task_event_counts(job_id_hex: str) -> str:
    """List of the event count of each batch in task_events(job) (same order); the
    running total lives in ``<this key>:total``."""
    return f"{PREFIX}task_events:{job_id_hex}:counts"


def object_report(worker_id: str) -> str:
    """msgpack list of the objects one process owns or references (expiring)."""
    return f"{PREFIX}objects:report:{worker_id}"
