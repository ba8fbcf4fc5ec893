"""Placement groups, as in ``ray.util.placement_group``: reserve bundles of resources
across nodes at once (gang scheduling), then run tasks and actors inside them with
``PlacementGroupSchedulingStrategy``.

    pg = placement_group([{"CPU": 1}] * 3, strategy="SPREAD")
    ray.get(pg.ready())
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
    remove_placement_group(pg)

A group is reserved whole or not at all; one the cluster cannot hold is reported at
once and stays pending until nodes join. Removing it kills what runs in it. How it
works: raylite.core.placement_groups (the creator's side) and
raylite.scheduler.bundles (the decision and the node-side ledger).
"""
from __future__ import annotations

from raylite.core import global_state
from raylite.gcs.records import PG_REMOVED
from raylite.scheduler.bundles import STRATEGIES

__all__ = ["PlacementGroup", "placement_group", "remove_placement_group",
           "get_placement_group", "placement_group_table", "get_current_placement_group"]


class PlacementGroupID:
    """A placement group's id (``.hex()``, ``.binary()``)."""

    __slots__ = ("_hex",)

    def __init__(self, hex_id: str):
        self._hex = hex_id

    def hex(self) -> str:
        return self._hex

    def binary(self) -> bytes:
        return bytes.fromhex(self._hex)

    def __eq__(self, other) -> bool:
        return isinstance(other, PlacementGroupID) and other._hex == self._hex

    def __hash__(self) -> int:
        return hash(self._hex)

    def __repr__(self) -> str:
        return f"PlacementGroupID({self._hex})"

    def __reduce__(self):
        return PlacementGroupID, (self._hex,)


class PlacementGroup:
    """A handle to a placement group; picklable, so tasks may receive it."""

    def __init__(self, id: PlacementGroupID, bundle_specs: list | None = None):
        self.id = id
        self._bundles = [dict(b) for b in bundle_specs] if bundle_specs is not None else None

    @staticmethod
    def empty() -> PlacementGroup:
        return PlacementGroup(PlacementGroupID(""), [])

    @property
    def is_empty(self) -> bool:
        return not self.id.hex()

    @property
    def bundle_specs(self) -> list[dict]:
        """The resource dict of each bundle, in order."""
        if self._bundles is None:
            record = _worker().placement_groups.record(self.id.hex())
            self._bundles = [dict(b) for b in record.bundles] if record is not None else []
        return self._bundles

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def ready(self):
        """An ObjectRef that resolves (to this group) once every bundle is reserved;
        usable in ``get`` and ``wait``. Getting it raises once the group is removed."""
        return _worker().placement_groups.ready_ref(self.id.hex(), self)

    def wait(self, timeout_seconds: float | None = 30) -> bool:
        """Whether the group is created within ``timeout_seconds``.

        Raises RaySystemError when the group does not exist (removed)."""
        from raylite import exceptions as exc
        worker = _worker()
        record = worker.placement_groups.record(self.id.hex())
        if record is None or record.state == PG_REMOVED:
            raise exc.RaySystemError(f"Placement group {self.id} does not exist.")
        ready, _ = worker.objects.wait([self.ready()], 1, timeout_seconds, False)
        return bool(ready)

    def __eq__(self, other) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id.hex()})"

    def __reduce__(self):
        return PlacementGroup, (self.id, self._bundles)


def _worker():
    return global_state.get_worker()


def placement_group(bundles: list[dict], strategy: str = "PACK", name: str = "",
                    lifetime: str | None = None, _soft_target_node_id=None,
                    bundle_label_selector=None) -> PlacementGroup:
    """Reserve ``bundles`` (resource dicts) on the cluster under ``strategy``: PACK
    (as few nodes as possible), SPREAD (as many as possible), STRICT_PACK (one node),
    STRICT_SPREAD (a different node each). Returns at once; ``ready()`` says when.

    Raises ValueError for empty bundles, an unknown strategy or lifetime, or a
    ``name`` already used by a group that is not removed.
    """
    if not isinstance(bundles, list) or not bundles:
        raise ValueError("Bundles must be a non-empty list of resource dictionaries. For "
                         'example: `[{"CPU": 1.0}, {"GPU": 1.0}]`. Got empty list instead.')
    for bundle in bundles:
        if not isinstance(bundle, dict) or not any(v for v in bundle.values()):
            raise ValueError("Bundles cannot be an empty dictionary or resources with only 0 "
                             f"values. Bundles: {bundles}")
        for key, value in bundle.items():
            if not isinstance(key, str) or isinstance(value, bool) or \
                    not isinstance(value, (int, float)):
                raise ValueError(f"Bundle resources must map names to numbers, got {bundle}")
    if strategy not in STRATEGIES:
        raise ValueError(f"Invalid placement group strategy {strategy}. Supported strategies "
                         f"are: {set(STRATEGIES)}.")
    if lifetime not in (None, "detached"):
        raise ValueError("Placement group `lifetime` argument must be either `None` or "
                         f"'detached'. Got {lifetime}.")
    if name is None:
        name = ""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if _soft_target_node_id is not None or bundle_label_selector is not None:
        from raylite.exceptions import UnsupportedOptionError
        raise UnsupportedOptionError("_soft_target_node_id" if _soft_target_node_id is not None
                                     else "bundle_label_selector", "")
    clean = [{k: float(v) for k, v in b.items() if v} for b in bundles]
    pg_id = _worker().placement_groups.create(clean, strategy, name, lifetime == "detached")
    return PlacementGroup(PlacementGroupID(pg_id), clean)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Release the group's resources; tasks and actors running in it are killed.

    Raises TypeError when not given a PlacementGroup."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group expects a PlacementGroup, got "
                        f"{type(placement_group).__name__}")
    _worker().placement_groups.remove(placement_group.id.hex())


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live group named ``placement_group_name`` in the current namespace.

    Raises ValueError when there is none."""
    worker = _worker()
    namespace = worker.current_namespace()
    pg_id = worker.gcs.lookup_placement_group_name(namespace, placement_group_name)
    record = worker.gcs.get_placement_group(pg_id) if pg_id else None
    if record is None or record.state == PG_REMOVED:
        raise ValueError(f"Failed to look up placement group with name: "
                         f"{placement_group_name}")
    return PlacementGroup(PlacementGroupID(pg_id), record.bundles)


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """Ray's table: for one group its info dict, else {group id: info} for all."""
    worker = _worker()
    if placement_group is not None:
        record = worker.placement_groups.record(placement_group.id.hex())
        return _info(record) if record is not None else {}
    return {pg_id: _info(r) for pg_id, r in worker.gcs.all_placement_groups().items()}


def _info(record) -> dict:
    return {
        "placement_group_id": record.pg_id,
        "name": record.name,
        "bundles": {i: dict(b) for i, b in enumerate(record.bundles)},
        "bundles_to_node_id": {i: n for i, n in enumerate(record.bundle_nodes) if n},
        "strategy": record.strategy,
        "state": record.state,
        "stats": {"scheduling_attempt": record.attempts,
                  "end_to_end_creation_latency_ms":
                      round(1000 * (record.placed_at - record.created_at), 3)
                      if record.placed_at else 0.0,
                  "scheduling_state": "FINISHED" if record.state == "CREATED" else "QUEUED"},
    }


def get_current_placement_group() -> PlacementGroup | None:
    """The group the current task or actor runs in; None in a driver or outside
    groups."""
    worker = global_state.get_worker(required=False)
    if worker is None:
        return None
    group = worker.current_placement_group()
    if not group:
        return None
    return PlacementGroup(PlacementGroupID(group.split(":")[1]))
