"""What the GCS stores, as dataclasses: the wire format of every record in one place.

Each record is a msgpack map on the wire. Readers tolerate a rolling cluster: a field
a newer writer added is kept in ``extra`` (and written back unchanged), a field an
older writer did not send takes its default. A record never raises on a missing or
unknown field; only bytes that are not a msgpack map at all raise ValueError.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import msgpack

# Actor states, as written in ActorRecord.state.
PENDING = "PENDING_CREATION"
ALIVE = "ALIVE"
RESTARTING = "RESTARTING"
DEAD = "DEAD"


class _Record:
    """Shared msgpack encoding. Subclasses are dataclasses with an ``extra`` field."""

    # Fields filled by the client from other keys, never part of the stored map.
    _NOT_STORED: ClassVar[frozenset] = frozenset({"extra"})

    extra: dict

    def to_dict(self) -> dict:
        out = dict(self.extra)
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name not in self._NOT_STORED:
                out[f.name] = getattr(self, f.name)
        return out

    def to_bytes(self) -> bytes:
        return msgpack.packb(self.to_dict(), use_bin_type=True)

    @classmethod
    def from_dict(cls, data: dict):
        """Build from a decoded map; unknown keys go to ``extra``, missing ones default."""
        names = {f.name for f in dataclasses.fields(cls)} - cls._NOT_STORED  # type: ignore[arg-type]
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**known, extra=extra)  # type: ignore[call-arg]  # subclasses declare fields

    @classmethod
    def from_bytes(cls, blob: bytes):
        """Decode a stored record. Raises ValueError when ``blob`` is not a msgpack map."""
        try:
            data = msgpack.unpackb(blob, raw=False, strict_map_key=False)
        except Exception as err:
            raise ValueError(f"undecodable {cls.__name__}: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__} must be a msgpack map, got {type(data).__name__}")
        return cls.from_dict(data)

    def replace(self, **changes):
        """A copy with ``changes`` applied (records are treated as values)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass
class NodeRecord(_Record):
    """A node scheduler as registered in the node table (raylite:nodes).

    ``available`` and ``last_heartbeat`` change with every heartbeat and live in keys of
    their own; the client fills them in when it reads the table.
    """

    _NOT_STORED: ClassVar[frozenset] = frozenset({"extra", "available", "last_heartbeat"})

    node_id: str = ""
    address: str = ""                 # host:port of the scheduler's gRPC server
    uds: str = ""                     # "unix:/path" for peers on the same machine
    host: str = ""
    resources: dict = field(default_factory=dict)
    alive: bool = True                # False once the node said goodbye or was marked dead
    death_reason: str = ""            # why it is dead ("stopped", "missed heartbeats ...")
    pid: int = 0
    store_dir: str = ""
    store_capacity: int = 0
    session: str = ""
    is_head: bool = False
    transfer: str = ""                # host:port of its object transfer server ("" = none)
    metrics_export_port: int = 0      # the node's Prometheus /metrics port (0: none)
    available: dict | None = None     # free resources at the last heartbeat (None: unknown)
    last_heartbeat: float = 0.0       # unix time of the last heartbeat (0: never)
    extra: dict = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1]) if ":" in self.address else 0

    def free_resources(self) -> dict:
        """Free resources at the last heartbeat, else the node's total."""
        return dict(self.available if self.available is not None else self.resources)


@dataclass
class ActorRecord(_Record):
    """An actor in the actor table (raylite:actors), written by its owner."""

    actor_id: str = ""
    state: str = PENDING
    class_name: str = ""
    name: str = ""
    namespace: str = ""
    meta: dict = field(default_factory=dict)   # method name -> call options
    num_restarts: int = 0
    max_restarts: int = 0
    detached: bool = False
    job_id: str = ""
    owner: bytes = b""                # serialized common_pb2.Address of the owner
    address: bytes = b""              # serialized common_pb2.Address while ALIVE
    node_id: str = ""
    pid: int = 0
    death_cause: str = ""
    time: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def is_dead(self) -> bool:
        return self.state == DEAD


@dataclass
class JobRecord(_Record):
    """A driver's job (raylite:jobs): what workers need to import the driver's code."""

    job_id: str = ""
    driver_pid: int = 0
    start: float = 0.0
    namespace: str = ""
    sys_path: list = field(default_factory=list)
    cwd: str = ""
    extra: dict = field(default_factory=dict)


# Placement group states, as written in PlacementGroupRecord.state (Ray's names).
PG_PENDING = "PENDING"
PG_CREATED = "CREATED"
PG_RESCHEDULING = "RESCHEDULING"
PG_REMOVED = "REMOVED"


@dataclass
class PlacementGroupRecord(_Record):
    """A placement group (raylite:placement_groups), written by the process that
    places it (its creator): bundles, where each one is reserved, and its state."""

    pg_id: str = ""
    name: str = ""
    namespace: str = ""
    strategy: str = "PACK"
    bundles: list = field(default_factory=list)        # resource dict per bundle
    bundle_nodes: list = field(default_factory=list)   # node id per bundle ("" unplaced)
    state: str = PG_PENDING
    detached: bool = False
    job_id: str = ""
    owner: str = ""                   # worker id of the creator
    creator_node: str = ""
    attempts: int = 0                 # scheduling attempts so far
    created_at: float = 0.0           # unix time of the request
    placed_at: float = 0.0            # unix time it was last CREATED
    extra: dict = field(default_factory=dict)


@dataclass
class LineageRecord(_Record):
    """How to re-run a task whose results lived in a node's store (raylite:lineage:<id>):
    written by the task's owner when it finished, deleted when nothing can need it."""

    spec: bytes = b""                  # the TaskSpec (args inline or stored, deps by value)
    dep_owners: list = field(default_factory=list)   # owner Address bytes of each dep
    resources: dict = field(default_factory=dict)
    strategy: str = ""
    extra: dict = field(default_factory=dict)
