"""raylite.util.metrics without a cluster: Ray's validation errors, and the buffer
that merges updates per series and the aggregation that snapshot() returns."""
from __future__ import annotations

import pickle
import warnings

import pytest

from raylite.util import metrics
from raylite.util.metrics_buffer import MetricsBuffer, aggregate, parse_field, series_field


def test_validation_matches_ray():
    with pytest.raises(ValueError, match="Empty name"):
        metrics.Counter("")
    with pytest.raises(TypeError, match="tag_keys should be a tuple"):
        metrics.Counter("c", tag_keys=["a"])
    with pytest.raises(TypeError, match="Tag keys must be str"):
        metrics.Counter("c", tag_keys=(1,))
    counter = metrics.Counter("c", description="d", tag_keys=("a", "b"))
    with pytest.raises(ValueError, match="Unrecognized tag key z"):
        counter.set_default_tags({"z": "1"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        counter.set_default_tags({"a": 1})
    with pytest.raises(ValueError, match=r"Missing value for tag key\(s\): b\."):
        counter.inc(1, tags={"a": "1"})
    with pytest.raises(ValueError, match="value must be >0, got 0"):
        counter.inc(0, tags={"a": "1", "b": "2"})
    with pytest.raises(TypeError, match="value must be int or float"):
        counter.inc("1", tags={"a": "1", "b": "2"})
    with pytest.raises(TypeError, match="Tag values must be str"):
        counter.inc(1, tags={"a": 1, "b": "2"})
    assert counter.set_default_tags({"a": "x"}) is counter
    assert counter.info == {"name": "c", "description": "d", "tag_keys": ("a", "b"),
                            "default_tags": {"a": "x"}}
    with pytest.raises(ValueError, match="boundaries argument should be provided"):
        metrics.Histogram("h")
    with pytest.raises(ValueError, match="Invalid `boundaries` argument at index 1"):
        metrics.Histogram("h", boundaries=[1, 0])
    assert metrics.Histogram("h", boundaries=[1, 2]).info["boundaries"] == [1, 2]
    with pytest.raises(TypeError):
        metrics.Gauge("g").set("1")
    metrics.Gauge("g").set(None)   # a no-op, as in Ray


def test_invalid_names_warn():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        metrics.Counter("1abc").inc()           # discarded: records nothing
        metrics.Counter("a:b")
    kinds = [w.category for w in caught]
    assert kinds == [UserWarning, FutureWarning]


def test_pickled_metric_keeps_name_description_and_keys():
    hist = metrics.Histogram("h", "desc", boundaries=[1.0, 5.0], tag_keys=("k",))
    copy = pickle.loads(pickle.dumps(hist))
    assert copy.info == {"name": "h", "description": "desc", "tag_keys": ("k",),
                         "default_tags": {}, "boundaries": [1.0, 5.0]}


def test_series_field_round_trip():
    field = series_field("m", {"b": "2", "a": "1"}, "sum")
    assert field == series_field("m", {"a": "1", "b": "2"}, "sum")
    assert parse_field(field) == ("m", {"a": "1", "b": "2"}, "sum")
    with pytest.raises(ValueError):
        parse_field("nope")


def test_buffer_merges_and_drains():
    buffer = MetricsBuffer()
    buffer.define("c", {"type": "counter"})
    buffer.define("c", {"type": "counter"})
    buffer.add("c", {"a": "1"}, 2)
    buffer.add("c", {"a": "1"}, 3)
    buffer.set("g", {}, 1)
    buffer.set("g", {}, 7)
    buffer.observe("h", {}, [1.0, 5.0], 0.5)
    buffer.observe("h", {}, [1.0, 5.0], 1.0)
    buffer.observe("h", {}, [1.0, 5.0], 9.0)
    definitions, increments, gauges = buffer.drain()
    assert definitions == {"c": {"type": "counter"}}
    assert increments[series_field("c", {"a": "1"})] == 5.0
    assert gauges == {series_field("g", {}): 7.0}
    assert increments[series_field("h", {}, "b0")] == 2.0     # 0.5 and 1.0 (<= 1.0)
    assert increments[series_field("h", {}, "b2")] == 1.0     # above every boundary
    assert increments[series_field("h", {}, "sum")] == 10.5
    assert increments[series_field("h", {}, "count")] == 3.0
    assert buffer.empty()
    buffer.define("c", {"type": "counter"})     # defined once per process
    assert buffer.empty()
    buffer.add("c", {"a": "1"}, 1)
    buffer.restore((definitions, increments, gauges))
    assert buffer.increments[series_field("c", {"a": "1"})] == 6.0
    assert buffer.definitions == definitions


def test_aggregate_per_node():
    definitions = {"c": {"type": "counter", "description": "", "tag_keys": ["a"]},
                   "h": {"type": "histogram", "description": "", "tag_keys": [],
                         "boundaries": [1.0]}}
    per_node = {"n1": {series_field("c", {"a": "x"}): 3.0,
                       series_field("h", {}, "b0"): 2.0, series_field("h", {}, "b1"): 1.0,
                       series_field("h", {}, "sum"): 4.0, series_field("h", {}, "count"): 3.0},
                "n2": {series_field("c", {"a": "x"}): 1.0,
                       series_field("unknown", {}): 1.0}}
    out = aggregate(definitions, per_node)
    assert out["c"]["series"] == [{"node_id": "n1", "tags": {"a": "x"}, "value": 3.0},
                                  {"node_id": "n2", "tags": {"a": "x"}, "value": 1.0}]
    assert out["h"]["series"] == [{"node_id": "n1", "tags": {}, "buckets": [2, 1],
                                   "sum": 4.0, "count": 3}]
    assert "unknown" not in out
