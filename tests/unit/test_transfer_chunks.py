"""How a transfer cuts an object into per-stream ranges and per-call steps
(raylite.object_store.chunks): pure arithmetic."""
from __future__ import annotations

import pytest

from raylite.object_store import chunks
from raylite.object_store.chunks import PAGE, split_ranges, steps

MiB = 1 << 20


def covers(ranges, total):
    offset = 0
    for start, length in ranges:
        assert start == offset and length > 0
        offset += length
    return offset == total


@pytest.mark.parametrize("total", [1, PAGE - 1, PAGE + 1, 8 * MiB, 160_000_192, 1 << 33])
@pytest.mark.parametrize("streams", [1, 2, 3, 4, 8])
def test_ranges_cover_the_object_in_order_without_gaps(total, streams):
    ranges = split_ranges(total, streams)
    assert covers(ranges, total)
    assert 1 <= len(ranges) <= streams
    # Boundaries on whole pages: two streams never write into one page.
    assert all(start % PAGE == 0 for start, _ in ranges)


def test_a_large_object_uses_every_stream_with_near_equal_ranges():
    ranges = split_ranges(160_000_192, 4)
    assert len(ranges) == 4
    lengths = [length for _, length in ranges]
    assert max(lengths) - min(lengths) <= 4 * PAGE


def test_small_objects_travel_over_fewer_streams():
    assert split_ranges(5 * MiB, 4) == [(0, 5 * MiB)]
    assert len(split_ranges(20 * MiB, 4)) == 2        # each range at least MIN_RANGE
    assert len(split_ranges(20 * MiB, 4, min_range=1 * MiB)) == 4


def test_an_empty_object_is_one_empty_range():
    assert split_ranges(0, 4) == [(0, 0)]
    assert steps(0, 0) == []


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        split_ranges(-1, 4)
    with pytest.raises(ValueError):
        split_ranges(10, 0)
    with pytest.raises(ValueError):
        steps(0, 10, step=0)


def test_steps_cut_a_range_into_bounded_pieces():
    assert steps(100, 10, step=4) == [(100, 4), (104, 4), (108, 2)]
    assert steps(8 * MiB, 8 * MiB) == [(8 * MiB, 4 * MiB), (12 * MiB, 4 * MiB)]


def test_stream_count_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("RAYLITE_TRANSFER_STREAMS", raising=False)
    assert chunks.default_streams() == chunks.DEFAULT_STREAMS
    monkeypatch.setenv("RAYLITE_TRANSFER_STREAMS", "2")
    assert chunks.default_streams() == 2
    for bad in ("0", "x", "-3"):
        monkeypatch.setenv("RAYLITE_TRANSFER_STREAMS", bad)
        with pytest.raises(ValueError, match="RAYLITE_TRANSFER_STREAMS"):
            chunks.default_streams()
