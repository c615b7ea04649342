"""Tests for stratalog.cli._parallel: parts, workers and their merge."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from stratalog.cli import _parallel, main
from stratalog.cli._generate import write_log
from stratalog.cli._parallel import plan


def test_parts_start_at_line_starts_and_cover_each_file(
    tmp_path: Path,
) -> None:
    """Cuts fall right after a newline; gzip files stay whole."""
    plain = tmp_path / "a.log"
    plain.write_bytes(b"".join(b"%05d-line\n" % n for n in range(1000)))
    packed = tmp_path / "b.log.gz"
    packed.write_bytes(gzip.compress(b"{}\n" * 10))
    data = plain.read_bytes()

    parts = plan([str(plain), str(packed)], jobs=4)

    ranges = [(p.start, p.end) for p in parts if p.name == str(plain)]
    assert len(ranges) >= 3
    assert ranges[0][0] == 0
    assert ranges[-1][1] is None
    for (_, end), (start, _) in itertools.pairwise(ranges):
        assert end == start
        assert data[start - 1 : start] == b"\n"
    assert [(p.start, p.end) for p in parts if p.name == str(packed)] == [
        (0, None)
    ]
    assert [p.index for p in parts] == list(range(len(parts)))


def test_workers_give_the_same_report_as_one_process(tmp_path: Path) -> None:
    """Every figure, errors across cuts included, matches a serial read."""
    path = tmp_path / "generated.log"
    write_log(path, 6_000_000, seed=9)

    reports = [
        orjson.loads(
            CliRunner()
            .invoke(main, ["report", "--json", "-j", jobs, str(path)])
            .stdout
        )
        for jobs in ("1", "4")
    ]

    assert reports[0]["errors"]["distinct"] > 20
    assert reports[0] == reports[1]


def test_auto_mode_splits_only_large_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs 0 reads small inputs in one process and large ones in parts."""
    path = tmp_path / "generated.log"
    write_log(path, 400_000, seed=2)
    serial = CliRunner().invoke(main, ["report", "--json", str(path)])
    monkeypatch.setattr(_parallel, "AUTO_MIN_BYTES", 0)
    monkeypatch.setattr(_parallel, "_usable_cpus", lambda: 2)
    calls: list[int] = []
    in_parallel = _parallel._in_parallel

    def spy(*args: Any) -> Any:
        calls.append(len(args[1]))
        return in_parallel(*args)

    monkeypatch.setattr(_parallel, "_in_parallel", spy)
    split = CliRunner().invoke(main, ["report", "--json", str(path)])

    assert calls == [2]
    assert orjson.loads(serial.stdout) == orjson.loads(split.stdout)
