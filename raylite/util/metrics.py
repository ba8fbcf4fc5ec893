"""``ray.util.metrics``: Counter, Gauge and Histogram, from the driver, tasks and actors.

Every process merges its updates in memory (raylite.util.metrics_buffer) and a
background thread sends them every FLUSH_S seconds to the GCS, where they add up per
node: counters and histogram buckets are summed over the node's processes, a gauge
keeps the value last set on the node. ``snapshot()`` reads the cluster's values (for
tests and for a metrics endpoint). Updates still buffered when a process is killed
are lost, as a scrape interval's are in Ray.

Names, arguments and errors are Ray's: an empty name raises ValueError, an invalid
one warns and the metric records nothing; tag keys must be a tuple of str, tag values
str; every tag key needs a value (from the call or the default tags).
"""
from __future__ import annotations

import os
import re
import threading
import time
import warnings

from raylite.util.metrics_buffer import MetricsBuffer, aggregate

FLUSH_S = 0.5

_VALID_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class _Recorder:
    """This process's buffer and the thread that sends it (started on first use)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.buffer = MetricsBuffer()
        self.thread: threading.Thread | None = None

    def record(self, apply) -> None:
        with self.lock:
            apply(self.buffer)
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, daemon=True,
                                               name="raylite-metrics")
                self.thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(FLUSH_S)
            self.flush()

    def flush(self) -> None:
        """Hand the buffered updates to the GCS client (kept while not connected)."""
        from raylite.core import global_state
        worker = global_state.get_worker(required=False)
        if worker is None:
            return
        with self.lock:
            if self.buffer.empty():
                return
            drained = self.buffer.drain()
        try:
            worker.gcs.record_metrics(worker.node_id, *drained)
        except Exception:
            with self.lock:
                self.buffer.restore(drained)


_recorder = _Recorder()


def _after_fork() -> None:
    # A forked worker starts with its own empty buffer and no sender thread.
    global _recorder
    _recorder = _Recorder()


os.register_at_fork(after_in_child=_after_fork)


def _check_value(value) -> None:
    if not isinstance(value, (int, float)):
        raise TypeError(f"value must be int or float, got {type(value)}.")


class Metric:
    """What Counter, Gauge and Histogram share: name, description, tag keys and
    default tags."""

    _type = ""

    def __init__(self, name: str, description: str = "", tag_keys: tuple | None = None):
        if len(name) == 0:
            raise ValueError("Empty name is not allowed. Please provide a metric name.")
        self._discard_metric = not _VALID_NAME.match(name)
        if self._discard_metric:
            warnings.warn(f"Invalid metric name: {name}. Metric will be discarded and data "
                          "will not be collected or published. Metric names can only contain "
                          "letters, numbers, _, and :. Metric names cannot start with numbers.",
                          UserWarning, stacklevel=3)
        self._name = name
        self._description = description
        self._default_tags: dict = {}
        self._tag_keys = tag_keys or tuple()
        if not isinstance(self._tag_keys, tuple):
            raise TypeError(f"tag_keys should be a tuple type, got: {type(self._tag_keys)}")
        for key in self._tag_keys:
            if not isinstance(key, str):
                raise TypeError(f"Tag keys must be str, got {type(key)}.")
        if ":" in name:
            warnings.warn(f"Metric name {name} contains a : character, which is no longer "
                          "allowed. Please migrate to the new metric name format. This will "
                          "be an error in the future.", FutureWarning, stacklevel=3)

    def set_default_tags(self, default_tags: dict) -> Metric:
        """Tags used by every record unless the call overrides them; returns self.

        Raises ValueError for a key not in tag_keys, TypeError for a non-str value.
        """
        for key, value in default_tags.items():
            if key not in self._tag_keys:
                raise ValueError(f"Unrecognized tag key {key}.")
            if not isinstance(value, str):
                raise TypeError(f"Tag values must be str, got {type(value)}.")
        self._default_tags = default_tags
        return self

    def _final_tags(self, tags: dict | None) -> dict:
        if tags:
            for value in tags.values():
                if not isinstance(value, str):
                    raise TypeError(f"Tag values must be str, got {type(value)}.")
            final = {**self._default_tags, **tags}
        else:
            final = self._default_tags
        missing = [key for key in self._tag_keys if key not in final]
        if missing:
            raise ValueError(f"Missing value for tag key(s): {','.join(missing)}.")
        return final

    def _definition(self) -> dict:
        return {"type": self._type, "description": self._description,
                "tag_keys": list(self._tag_keys)}

    def _record(self, tags: dict | None, apply) -> None:
        if self._discard_metric:
            return
        final = self._final_tags(tags)
        name, definition = self._name, self._definition()

        def record(buffer: MetricsBuffer) -> None:
            buffer.define(name, definition)
            apply(buffer, name, final)
        _recorder.record(record)

    @property
    def info(self) -> dict:
        """The metric's name, description, tag_keys and default_tags."""
        return {"name": self._name, "description": self._description,
                "tag_keys": self._tag_keys, "default_tags": self._default_tags}

    def __reduce__(self):
        # As in Ray, a copy sent to a task keeps the name, description and tag keys.
        return type(self), (self._name, self._description, self._tag_keys)


class Counter(Metric):
    """A total that only goes up (Prometheus' counter)."""

    _type = "counter"

    def inc(self, value: int | float = 1.0, tags: dict | None = None) -> None:
        """Add ``value`` (> 0) to the total of the series ``tags`` names.

        Raises TypeError for a non-number, ValueError for value <= 0 or a missing tag.
        """
        _check_value(value)
        if value <= 0:
            raise ValueError(f"value must be >0, got {value}")
        self._record(tags, lambda buffer, name, final: buffer.add(name, final, value))


class Gauge(Metric):
    """A value that goes up and down; the last one set wins."""

    _type = "gauge"

    def set(self, value: int | float | None, tags: dict | None = None) -> None:
        """Set the series to ``value`` (None: do nothing).

        Raises TypeError for a non-number, ValueError for a missing tag.
        """
        if value is None:
            return
        _check_value(value)
        self._record(tags, lambda buffer, name, final: buffer.set(name, final, value))


class Histogram(Metric):
    """Counts of observations per bucket, with their sum and count."""

    _type = "histogram"

    def __init__(self, name: str, description: str = "", boundaries: list | None = None,
                 tag_keys: tuple | None = None):
        super().__init__(name, description, tag_keys)
        if boundaries is None or len(boundaries) == 0:
            raise ValueError("boundaries argument should be provided when using the Histogram "
                             "class. e.g., Histogram(\"name\", boundaries=[1.0, 2.0])")
        for i, boundary in enumerate(boundaries):
            if boundary <= 0:
                raise ValueError(f"Invalid `boundaries` argument at index {i}, {boundaries}. "
                                 "Use positive values for the arguments.")
        self.boundaries = boundaries
        self._edges = sorted(float(b) for b in boundaries)

    def observe(self, value: int | float, tags: dict | None = None) -> None:
        """Count ``value`` in its bucket (value <= boundary).

        Raises TypeError for a non-number, ValueError for a missing tag.
        """
        _check_value(value)
        edges = self._edges
        self._record(tags, lambda buffer, name, final: buffer.observe(name, final, edges, value))

    def _definition(self) -> dict:
        definition = super()._definition()
        definition["boundaries"] = self._edges
        return definition

    @property
    def info(self) -> dict:
        info = super().info
        info["boundaries"] = self.boundaries
        return info

    def __reduce__(self):
        return Histogram, (self._name, self._description, self.boundaries, self._tag_keys)


def flush() -> None:
    """Send this process's buffered updates now (they go every FLUSH_S anyway)."""
    _recorder.flush()


def snapshot() -> dict:
    """The metrics recorded in the cluster, per node; this process's updates are
    sent first, other processes' arrive within about FLUSH_S seconds.

    Returns {name: {"type": "counter" | "gauge" | "histogram", "description",
    "tag_keys", ("boundaries",) "series": [...]}}; a series is {"node_id", "tags",
    "value"} (a counter's total, a gauge's last value) or, for a histogram,
    {"node_id", "tags", "buckets" (counts per bucket, the last above every boundary),
    "sum", "count"}.

    Raises RaySystemError when raylite is not initialized (and auto-init is off),
    GcsUnavailableError when the GCS cannot be reached.
    """
    from raylite.core import global_state
    worker = global_state.get_worker()
    _recorder.flush()
    return aggregate(*worker.gcs.read_metrics())


__all__ = ["Counter", "Gauge", "Histogram", "snapshot", "flush"]
