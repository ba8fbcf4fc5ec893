"""One process's metric updates since they were last sent, merged per series.

Pure data: no threads, no sockets. raylite.util.metrics records into a MetricsBuffer
and drains it into the GCS (GcsClient.record_metrics), where every process of a node
adds to the same per-node hash; ``series_field`` / ``parse_field`` are the names of
the hash's fields, shared by the writer and by the readers (snapshot, exporters).

A series field is JSON: [metric name, [[tag key, value], ...] sorted, part], where
part is "" for a counter's total or a gauge's value, and for a histogram "sum",
"count" or "b<i>" (observations in bucket i: value <= boundaries[i], the last bucket
above every boundary).
"""
from __future__ import annotations

import bisect
import json


def series_field(name: str, tags: dict, part: str = "") -> str:
    return json.dumps([name, sorted(tags.items()), part], separators=(",", ":"))


def parse_field(field: str) -> tuple[str, dict, str]:
    """(name, tags, part) of a series field. Raises ValueError for anything else."""
    try:
        name, tags, part = json.loads(field)
        return name, {k: v for k, v in tags}, part
    except (TypeError, ValueError) as err:
        raise ValueError(f"not a metric series field: {field!r}") from err


class MetricsBuffer:
    """Updates waiting to be sent. Not thread-safe: the caller holds a lock."""

    def __init__(self):
        self.definitions: dict[str, dict] = {}   # to send (once per process)
        self.defined: set[str] = set()            # sent or waiting
        self.increments: dict[str, float] = {}
        self.gauges: dict[str, float] = {}

    def define(self, name: str, definition: dict) -> None:
        if name not in self.defined:
            self.defined.add(name)
            self.definitions[name] = definition

    def add(self, name: str, tags: dict, value: float) -> None:
        field = series_field(name, tags)
        self.increments[field] = self.increments.get(field, 0.0) + value

    def set(self, name: str, tags: dict, value: float) -> None:
        self.gauges[series_field(name, tags)] = float(value)

    def observe(self, name: str, tags: dict, boundaries: list, value: float) -> None:
        bucket = bisect.bisect_left(boundaries, value)
        increments = self.increments
        for part, delta in ((f"b{bucket}", 1.0), ("sum", float(value)), ("count", 1.0)):
            field = series_field(name, tags, part)
            increments[field] = increments.get(field, 0.0) + delta

    def empty(self) -> bool:
        return not (self.definitions or self.increments or self.gauges)

    def drain(self) -> tuple[dict, dict, dict]:
        """(definitions, increments, gauges) recorded since the last drain; clears them."""
        out = (self.definitions, self.increments, self.gauges)
        self.definitions, self.increments, self.gauges = {}, {}, {}
        return out

    def restore(self, drained: tuple[dict, dict, dict]) -> None:
        """Put back a drain that could not be sent, merged with what came since."""
        definitions, increments, gauges = drained
        for name, definition in definitions.items():
            self.definitions.setdefault(name, definition)
        for field, delta in increments.items():
            self.increments[field] = self.increments.get(field, 0.0) + delta
        for field, value in gauges.items():
            self.gauges.setdefault(field, value)


def aggregate(definitions: dict, per_node: dict) -> dict:
    """The snapshot of raylite.util.metrics.snapshot from what the GCS holds:
    ``definitions`` name -> definition and ``per_node`` node id -> {field -> value}."""
    out: dict = {}
    for name, definition in definitions.items():
        defined = dict(definition)
        defined["series"] = []
        out[name] = defined
    histograms: dict = {}
    for node_id, fields in per_node.items():
        for field, value in fields.items():
            name, tags, part = parse_field(field)
            entry = out.get(name)
            if entry is None:
                continue
            if entry["type"] != "histogram":
                entry["series"].append({"node_id": node_id, "tags": tags, "value": value})
                continue
            key = (name, node_id, field_key(tags))
            series = histograms.get(key)
            if series is None:
                series = histograms[key] = {
                    "node_id": node_id, "tags": tags, "sum": 0.0, "count": 0,
                    "buckets": [0] * (len(entry["boundaries"]) + 1)}
                entry["series"].append(series)
            if part == "sum":
                series["sum"] = value
            elif part == "count":
                series["count"] = int(value)
            elif part.startswith("b"):
                index = int(part[1:])
                if index < len(series["buckets"]):
                    series["buckets"][index] = int(value)
    for entry in out.values():
        entry["series"].sort(key=lambda s: (s["node_id"], field_key(s["tags"])))
    return out


def field_key(tags: dict) -> tuple:
    return tuple(sorted(tags.items()))
