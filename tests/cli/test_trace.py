"""Tests for ``stratalog trace``: one request as a waterfall."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stratalog.cli import main
from stratalog.cli._trace import TraceCollector
from stratalog.cli._waterfall import Waterfall

from .logs import encode, line, operation, request

CID = "req-42"


def _request_lines(cid: str = CID) -> list[dict[str, Any]]:
    """A request of 100 ms whose infrastructure call is retried and fails."""
    failed = {"error_id": "e9", "error_type": "ReadTimeout"}
    ids = {"correlation_id": cid}
    summary_error = {
        "error_id": "e9",
        "type": "ReadTimeout",
        "message": "timed out",
        "layers": ["infrastructure", "service", "api"],
    }
    return [
        request(cid, "/pay", 100.0, 502, at_ms=100, errors=[summary_error]),
        operation(
            "operation.failed",
            "api",
            "handle",
            98.0,
            99,
            **ids,
            **failed,
            propagated=True,
            origin_layer="infrastructure",
        ),
        line("boundary.inbound", 0.5, **ids, operation="handle"),
        line(
            "external.retry.scheduled",
            40,
            level="warning",
            layer="infrastructure",
            client="payments",
            attempt=1,
            delay_s=0.2,
            error_type="ReadTimeout",
            **ids,
        ),
        operation(
            "operation.failed",
            "infrastructure",
            "payments.charge",
            60.0,
            80,
            exception="Traceback (most recent call last):\nReadTimeout: x",
            error_message="timed out",
            **ids,
            **failed,
        ),
        operation("operation.completed", "service", "charge", 90.0, 95, **ids),
        line("boundary.inbound", 1, correlation_id="someone-else"),
    ]


def test_rows_are_ordered_by_timestamp_and_start_at_end_minus_duration() -> (
    None
):
    """Each operation bar starts at its timestamp minus its duration_ms."""
    collector = TraceCollector(CID)
    collector.feed(encode(_request_lines()))
    waterfall = Waterfall.build(collector.lines)

    events = [
        (row.label, row.at_ms, row.duration_ms) for row in waterfall.rows
    ]

    assert events == [
        ("boundary.inbound", pytest.approx(0.5), None),
        ("external.retry.scheduled payments", pytest.approx(40.0), None),
        ("payments.charge", pytest.approx(20.0), 60.0),
        ("charge", pytest.approx(5.0), 90.0),
        ("handle", pytest.approx(1.0), 98.0),
        ("request.completed", pytest.approx(100.0), None),
    ]
    assert waterfall.total_ms == 100.0
    assert [row.kind for row in waterfall.rows][1:3] == ["retry", "failed"]


def test_trace_prints_the_waterfall_and_the_summary_timeline(
    write_log: Callable[..., Path],
) -> None:
    """The output names every line, the error, the retry and the timeline."""
    result = CliRunner().invoke(
        main, ["trace", CID, str(write_log(_request_lines()))]
    )

    assert result.exit_code == 0, result.output
    output = result.stdout
    assert output.index("payments.charge") < output.index("from infra")
    assert "ReadTimeout: timed out [e9]" in output
    assert "retry in 0.2 s" in output
    assert "Timeline" in output
    assert "infrastructure -> service -> api" in output
    assert "=" in output
    assert "someone-else" not in output
    assert "\x1b" not in output


def test_an_unknown_correlation_id_exits_with_status_one(
    write_log: Callable[..., Path],
) -> None:
    """A clear message names the id and the files; the status is 1."""
    path = write_log(_request_lines())
    result = CliRunner().invoke(main, ["trace", "nope\x1b[2J", str(path)])

    assert result.exit_code == 1
    assert "no line with correlation_id 'nope\\x1b[2J'" in result.stderr
    assert "\x1b[2J" not in result.stderr


def test_a_request_without_its_summary_is_still_drawn(
    write_log: Callable[..., Path],
) -> None:
    """Lines of an unfinished request show, with a note about the summary."""
    lines = _request_lines()[1:]
    result = CliRunner().invoke(main, ["trace", CID, str(write_log(lines))])

    assert result.exit_code == 0
    assert "no request.completed line" in result.stdout
    assert "payments.charge" in result.stdout


def test_ids_that_json_escapes_are_found_and_fields_are_escaped(
    write_log: Callable[..., Path],
) -> None:
    """An id with a quote disables the byte search; hostile text is escaped."""
    cid = 'odd"id\u202e'
    lines = _request_lines(cid)
    lines[2]["note"] = "\x1b]0;owned\x07"
    result = CliRunner().invoke(
        main,
        ["trace", cid, str(write_log(lines))],
        env={"FORCE_COLOR": "1", "COLUMNS": "160"},
    )

    assert result.exit_code == 0, result.output
    assert "\\x1b]0;owned\\x07" in result.stdout
    assert "\x07" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "█" in result.stdout
