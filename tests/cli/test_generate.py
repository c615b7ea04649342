"""Tests for stratalog.cli._generate: realistic, reproducible logs."""

from __future__ import annotations

import gzip
import itertools
from collections import Counter
from pathlib import Path

import orjson

from stratalog.cli._generate import iter_lines, write_log


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path) -> None:
    """A seed fixes the output; another seed changes it."""
    first, second, other = (tmp_path / name for name in ("a", "b", "c"))

    write_log(first, 100_000, seed=1)
    write_log(second, 100_000, seed=1)
    write_log(other, 100_000, seed=2)

    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes() != other.read_bytes()


def test_size_stops_at_the_first_line_past_the_target(tmp_path: Path) -> None:
    """The file is at least the target and ends with a whole line."""
    path = tmp_path / "a.log"

    count = write_log(path, 50_000)
    data = path.read_bytes()

    assert 50_000 <= len(data) < 60_000
    assert data.endswith(b"\n")
    assert data.count(b"\n") == count


def test_gzip_targets_count_uncompressed_bytes(tmp_path: Path) -> None:
    """A .gz path is compressed; the target applies before compression."""
    path = tmp_path / "a.log.gz"

    write_log(path, 50_000)

    assert len(gzip.decompress(path.read_bytes())) >= 50_000
    assert path.stat().st_size < 50_000


def test_lines_follow_the_schema_and_cover_every_event_family() -> None:
    """Every line has the common fields; all report-relevant events occur."""
    records = [
        orjson.loads(raw) for raw in itertools.islice(iter_lines(3), 60_000)
    ]
    events = Counter(record["event"] for record in records)

    for record in records:
        assert {"timestamp", "level", "logger", "event"} <= set(record)
        assert record["timestamp"].endswith("Z")
    for event in (
        "request.completed",
        "operation.completed",
        "operation.slow",
        "operation.failed",
        "external.retry.scheduled",
        "circuit.opened",
        "circuit.closed",
        "boundary.outbound",
    ):
        assert events[event] > 0, event
    propagated = [
        record
        for record in records
        if record["event"] == "operation.failed" and record.get("propagated")
    ]
    assert propagated
    assert all("exception" not in record for record in propagated)


def test_lines_are_in_timestamp_order() -> None:
    """Concurrent requests interleave, but timestamps never go back."""
    stamps = [
        orjson.loads(raw)["timestamp"]
        for raw in itertools.islice(iter_lines(4), 5_000)
    ]

    assert stamps == sorted(stamps)
