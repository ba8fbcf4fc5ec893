"""The one rule for "is this node alive", and the heartbeat period it rests on.

Schedulers beat every HEARTBEAT_INTERVAL_S (0.2 s). The failure monitor
(raylite.gcs.monitor) marks a node dead once its beat has not moved for
NODE_TIMEOUT_S (1.6 s, eight missed beats) and publishes it; a node that said goodbye
is marked dead too. Everyone -- drivers, schedulers, the CLI -- then reads the same
answer from the node table: dead when marked so, or when its last beat is older than
STALE_FACTOR x NODE_TIMEOUT_S (the fallback for a cluster with no monitor left).
Both settings are read once from the environment (RAYLITE_HEARTBEAT_INTERVAL_S,
RAYLITE_NODE_TIMEOUT_S).
"""
from __future__ import annotations

import os


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


HEARTBEAT_INTERVAL_S = _seconds("RAYLITE_HEARTBEAT_INTERVAL_S", 0.2)
NODE_TIMEOUT_S = _seconds("RAYLITE_NODE_TIMEOUT_S", 1.6)
STALE_FACTOR = 4


def describe_node(gcs, node_id: str) -> str:
    """"node 1a2b3c4d (host), which died (why)" for error messages, from the node table
    (what is unknown is left out; never raises, never waits on an unreachable GCS)."""
    text = f"node {node_id[:8]}"
    try:
        record = gcs.nodes(retry=False).get(node_id)
    except Exception:
        return text
    if record is None:
        return text
    text += f" ({record.host})"
    if not record.alive:
        text += f", which died ({record.death_reason or 'no reason recorded'})"
    return text


def is_alive(record, now: float, timeout_s: float = NODE_TIMEOUT_S) -> bool:
    """True when ``record`` (a NodeRecord) is not marked dead and beat within
    STALE_FACTOR x the timeout. ``now`` is unix time (the heartbeats' clock)."""
    return bool(record.alive) and now - record.last_heartbeat <= STALE_FACTOR * timeout_s
