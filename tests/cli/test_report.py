"""Tests for ``stratalog report``: figures, inputs, output forms."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from stratalog.cli import main

from .logs import line, nearest_rank, operation, request

ROUTES = {"/users/{id}": 40, "/orders": 13, "/healthz": 3}


def _scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return log lines with known figures and those figures."""
    rng = random.Random(3)
    records: list[dict[str, Any]] = []
    durations: dict[str, list[float]] = {route: [] for route in ROUTES}
    operations: list[float] = []
    failures = 0
    at = 0.0
    for route, count in ROUTES.items():
        for index in range(count):
            at += 10
            duration = round(rng.uniform(1, 900), 3)
            status = 503 if index % 7 == 3 else 200
            failures += status >= 500
            durations[route].append(duration)
            op_ms = round(duration * 0.5, 3)
            operations.append(op_ms)
            records.append(
                operation("operation.completed", "core", "q", op_ms, at)
            )
            records.append(
                request(
                    f"cid-{route}-{index}",
                    route,
                    duration,
                    status,
                    at,
                    counts={"lines": 2, "suppressed": index % 3},
                )
            )
    return records, {
        "durations": durations,
        "operations": operations,
        "server_errors": failures,
        "suppressed": sum(i % 3 for n in ROUTES.values() for i in range(n)),
    }


def _run(*args: str, stdin: bytes | None = None) -> Any:
    result = CliRunner().invoke(main, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result


def _report(*args: str, stdin: bytes | None = None) -> dict[str, Any]:
    return orjson.loads(_run("report", "--json", *args, stdin=stdin).stdout)


def test_request_and_route_figures_match_an_independent_count(
    write_log: Callable[..., Path],
) -> None:
    """Counts, error rate and nearest-rank percentiles agree per route."""
    records, expected = _scenario()
    report = _report(str(write_log(records)))
    everything = [d for ds in expected["durations"].values() for d in ds]

    requests = report["requests"]
    assert requests["count"] == len(everything)
    assert requests["server_errors"] == expected["server_errors"]
    assert requests["error_rate"] == expected["server_errors"] / len(
        everything
    )
    for percent in (50, 95, 99):
        want = nearest_rank(everything, percent)
        assert requests["latency_ms"][f"p{percent}"] == want
    by_route = {item["route"]: item for item in report["routes"]}
    assert set(by_route) == set(ROUTES)
    for route, durations in expected["durations"].items():
        assert by_route[route]["requests"] == len(durations)
        assert by_route[route]["latency_ms"]["p95"] == nearest_rank(
            durations, 95
        )
        assert by_route[route]["latency_ms"]["max"] == max(durations)


def test_layer_figures_come_from_timelines_and_operation_lines(
    write_log: Callable[..., Path],
) -> None:
    """Timeline durations (seconds) and operation durations (ms) agree."""
    records, expected = _scenario()
    report = _report(str(write_log(records)))
    layers = {item["layer"]: item for item in report["layers"]}
    everything = [d for ds in expected["durations"].values() for d in ds]

    api = layers["api"]["timeline_ms"]
    assert api["count"] == len(everything)
    assert api["p50"] == pytest.approx(nearest_rank(everything, 50))
    core = layers["core"]["operations_ms"]
    assert core["count"] == len(expected["operations"])
    assert core["p99"] == nearest_rank(expected["operations"], 99)
    assert list(layers) == ["api", "core"]


def test_violations_errors_dedup_and_breakers(
    write_log: Callable[..., Path],
) -> None:
    """Slow lines, cascades, suppressed lines and circuit lines are counted."""
    failed = {"error_id": "e1", "error_type": "ReadTimeout"}
    summary_error = {
        "error_id": "e1",
        "type": "ReadTimeout",
        "origin_layer": "infrastructure",
        "layers": ["infrastructure", "core", "service", "api"],
    }
    violation = {
        "layer": "infrastructure",
        "operation": "db.query",
        "duration_ms": 300.0,
        "threshold_ms": 250.0,
    }
    records = [
        operation(
            "operation.slow",
            "infrastructure",
            "db.query",
            300.0,
            1,
            threshold_ms=250.0,
        ),
        operation(
            "operation.failed", "infrastructure", "http.get", 5, 2, **failed
        ),
        *(
            operation(
                "operation.failed",
                layer,
                "x",
                6,
                3,
                propagated=True,
                origin_layer="infrastructure",
                **failed,
            )
            for layer in ("core", "service", "api")
        ),
        line("circuit.opened", 4, client="payments", failures=5),
        line("circuit.half_opened", 5, client="payments"),
        line("circuit.closed", 6, client="payments"),
        line("circuit.opened", 7, client="search", failures=5),
        request(
            "c1",
            "/pay",
            320.0,
            502,
            8,
            errors=[summary_error],
            performance_violations=[violation],
            counts={"lines": 9, "suppressed": 4},
            dedup={"suppressed": 4, "keys": {"core.cache": {"suppressed": 4}}},
        ),
    ]
    report = _report(str(write_log(records)))

    assert report["violations"] == [
        {
            "layer": "infrastructure",
            "operation": "db.query",
            "slow_lines": 1,
            "in_summaries": 1,
            "max_ms": 300.0,
            "threshold_ms": 250.0,
        }
    ]
    errors = report["errors"]
    assert errors["distinct"] == 1
    assert errors["cascade_lines_avoided"] == 3
    assert errors["by_origin"][0]["origin_layer"] == "infrastructure"
    assert report["dedup"]["suppressed"] == 4
    assert report["dedup"]["lines_written"] == 9
    assert report["dedup"]["keys"] == [{"key": "core.cache", "suppressed": 4}]
    breakers = {item["client"]: item for item in report["breakers"]}
    assert breakers["payments"]["transitions"] == {
        "closed": 1,
        "half_opened": 1,
        "opened": 1,
    }
    assert breakers["search"]["last"] == "circuit.opened"


def test_slowest_requests_carry_their_correlation_ids(
    write_log: Callable[..., Path],
) -> None:
    """--top N lists the N slowest requests, slowest first."""
    records, expected = _scenario()
    report = _report("--top", "3", str(write_log(records)))
    by_duration = sorted(
        (
            (duration, f"cid-{route}-{index}")
            for route, durations in expected["durations"].items()
            for index, duration in enumerate(durations)
        ),
        reverse=True,
    )

    assert [
        (item["duration_ms"], item["correlation_id"])
        for item in report["slowest"]
    ] == by_duration[:3]


def test_malformed_lines_are_counted_and_never_fatal(
    write_log: Callable[..., Path],
) -> None:
    """Invalid JSON, non-objects and a torn last line are counted."""
    good = request("ok", "/a", 10.0)
    odd = request("odd", "/a", 12.0, request_timeline=[], errors="many")
    records = [
        good,
        b'{"event": "request.completed", "duration_ms": \n',
        b'["request.completed"]\n',
        b"Traceback (most recent call last):\n",
        b"\n",
        odd,
        orjson.dumps(request("torn", "/a", 11.0))[:60],
    ]
    result = CliRunner().invoke(
        main, ["report", "--json", str(write_log(records))]
    )
    report = orjson.loads(result.stdout)

    assert result.exit_code == 0
    assert report["requests"]["count"] == 2
    assert report["input"]["malformed"] == 4
    assert report["input"]["malformed_by_reason"] == {
        "invalid JSON": 2,
        "not a JSON object": 2,
    }
    assert "skipped 4 malformed" in result.stderr


def test_gzip_stdin_and_several_files_give_the_same_figures(
    write_log: Callable[..., Path], tmp_path: Path
) -> None:
    """A .gz file, stdin (plain or gzip) and split files read alike."""
    records, _ = _scenario()
    plain = write_log(records)
    packed = tmp_path / "app.log.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    first = write_log(records[:20], "part1.log")
    second = write_log(records[20:], "part2.log")

    reports = [
        _report(str(plain)),
        _report(str(packed)),
        _report("-", stdin=plain.read_bytes()),
        _report("-", stdin=packed.read_bytes()),
        _report(str(first), str(second)),
    ]

    figures = [(r["requests"], r["routes"], r["layers"]) for r in reports]
    assert all(item == figures[0] for item in figures)


def test_plain_text_output_has_no_escape_sequences(
    write_log: Callable[..., Path],
) -> None:
    """Off a terminal the report is plain aligned text with every section."""
    records, _ = _scenario()
    output = _run("report", str(write_log(records))).stdout

    assert "\x1b" not in output
    for heading in ("Overview", "Routes", "Layers", "Slowest requests"):
        assert heading in output
    assert "/users/{id}" in output


@pytest.mark.parametrize(
    "force", [pytest.param("1", id="rich"), pytest.param(None, id="plain")]
)
def test_hostile_field_values_are_escaped(
    write_log: Callable[..., Path], force: str | None
) -> None:
    """ESC, BEL, CR and bidi overrides from logs never reach the terminal."""
    hostile = "/x\x1b]0;owned\x07\x1b[2J\r\u202e[bold]y[/bold]"
    records = [request(hostile, hostile, 5.0)]
    result = CliRunner().invoke(
        main,
        ["report", str(write_log(records))],
        env={"FORCE_COLOR": force, "COLUMNS": "200"},
    )

    assert result.exit_code == 0
    assert "\x07" not in result.stdout
    assert "\x1b]0;" not in result.stdout
    assert "\x1b[2J" not in result.stdout
    assert "\r" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "\\x1b]0;owned\\x07" in result.stdout
    assert "[bold]y[/bold]" in result.stdout


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    """A path that does not exist stops with click's usage error code."""
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nope.log")])

    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_installed_command_agrees_with_jq_style_figures(
    tmp_path: Path,
) -> None:
    """The console script, run as a process, matches a json-module count."""
    from stratalog.cli._generate import write_log as generate

    path = tmp_path / "generated.log"
    generate(path, 600_000, seed=5)
    expected: dict[str, list[float]] = {}
    for raw in path.read_bytes().splitlines():
        record = orjson.loads(raw)
        if record["event"] == "request.completed":
            expected.setdefault(record["route"], []).append(
                record["duration_ms"]
            )
    command = Path(sys.executable).with_name("stratalog")

    done = subprocess.run(
        [str(command), "report", "--json", str(path)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    routes = {
        item["route"]: item for item in orjson.loads(done.stdout)["routes"]
    }

    assert set(routes) == set(expected)
    for route, durations in expected.items():
        assert routes[route]["requests"] == len(durations)
        assert routes[route]["latency_ms"]["p95"] == nearest_rank(
            durations, 95
        )
