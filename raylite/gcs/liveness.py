"""The one rule for "is this node alive", and the heartbeat period it rests on.

Schedulers beat every HEARTBEAT_INTERVAL_S; a node that said goodbye, or whose last
beat is older than NODE_TIMEOUT_S (about ten missed beats), is dead for everyone:
drivers, schedulers, the CLI. Both are read once from the environment
(RAYLITE_HEARTBEAT_INTERVAL_S, RAYLITE_NODE_TIMEOUT_S).
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


HEARTBEAT_INTERVAL_S = _seconds("RAYLITE_HEARTBEAT_INTERVAL_S", 0.5)
NODE_TIMEOUT_S = _seconds("RAYLITE_NODE_TIMEOUT_S", 5.0)


def is_alive(record, now: float, timeout_s: float = NODE_TIMEOUT_S) -> bool:
    """True when ``record`` (a NodeRecord) has not said goodbye and beat within the
    timeout. ``now`` is unix time (the heartbeats' clock), passed in by the caller."""
    return bool(record.alive) and now - record.last_heartbeat <= timeout_s
