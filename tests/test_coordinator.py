"""The coordinator: starting and ending requests, summaries, concurrency."""

from __future__ import annotations

import asyncio
import random
import re
import threading
import uuid
from typing import Any

import pytest

import stratalog
from stratalog import _state
from stratalog.config import LoggingConfig
from stratalog.context import get_context, request_context
from stratalog.coordinator import LoggingCoordinator, emit_summary
from stratalog.testing import MemorySink

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

coordinator = LoggingCoordinator()
log = stratalog.get_unified_logger("tests.coordinator", "service")


def _events(sink: MemorySink, event: str) -> list[dict[str, Any]]:
    return [r for r in sink.records() if r["event"] == event]


def test_start_request_puts_ids_in_fields_and_the_rest_in_attributes() -> None:
    """Known ids become fields; any other keyword becomes an attribute."""
    ctx = coordinator.start_request(
        correlation_id="c-1",
        session_id="s-1",
        user_id=7,
        investigation_id="i-1",
        agent_phase="triage",
        tenant="acme",
        route="/x",
    )

    assert get_context() is ctx
    assert ctx.ids() == {
        "correlation_id": "c-1",
        "session_id": "s-1",
        "user_id": "7",
        "investigation_id": "i-1",
        "agent_phase": "triage",
    }
    assert ctx.attributes == {"tenant": "acme", "route": "/x"}
    coordinator.end_request()


def test_start_request_with_none_ids_leaves_them_unset() -> None:
    """An id given as ``None`` is unset, and never becomes an attribute."""
    ctx = coordinator.start_request(session_id=None, user_id=None)

    assert ctx.session_id is None
    assert ctx.user_id is None
    assert ctx.attributes == {}
    coordinator.end_request()


def test_start_request_makes_a_uuid4_correlation_id() -> None:
    """Without a caller id, the correlation id is a fresh UUID4."""
    first = coordinator.start_request()
    coordinator.end_request()
    second = coordinator.start_request()
    coordinator.end_request()

    for ctx in (first, second):
        parsed = uuid.UUID(ctx.correlation_id)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    assert first.correlation_id != second.correlation_id


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param("611AEE7D-1206-4E03-A2A6-97C238D982FD", id="upper-uuid"),
        pytest.param("c10f7ebebd95e5bb8749430d3485370c", id="nginx-hex"),
        pytest.param("01HZX3V9K6Q8M2T4B7N5R1C0DE", id="ulid"),
        pytest.param("req-0001", id="plain"),
    ],
)
def test_caller_correlation_id_is_kept_verbatim(
    incoming: str, sink: MemorySink
) -> None:
    """A caller's correlation id is used byte for byte on every line."""
    coordinator.start_request(correlation_id=incoming)
    log.info("hello")
    summary = coordinator.end_request()

    (line,) = _events(sink, "hello")
    assert line["correlation_id"] == incoming
    assert summary["correlation_id"] == incoming


def test_correlation_id_is_fixed_for_the_request() -> None:
    """Binding a correlation id later changes nothing."""
    ctx = coordinator.start_request(correlation_id="fixed")

    stratalog.bind(correlation_id="other")

    assert ctx.correlation_id == "fixed"
    assert coordinator.end_request()["correlation_id"] == "fixed"


def test_ids_can_be_assigned_later(sink: MemorySink) -> None:
    """Ids bound after the start reach later lines and the summary."""
    coordinator.start_request()
    log.info("before")
    stratalog.bind(user_id="u-9", investigation_id="inv-2")
    log.info("after")
    summary = coordinator.end_request()

    (before,) = _events(sink, "before")
    (after,) = _events(sink, "after")
    assert "user_id" not in before
    assert after["user_id"] == "u-9"
    assert after["investigation_id"] == "inv-2"
    assert summary["user_id"] == "u-9"


def test_end_request_returns_the_summary() -> None:
    """The summary carries ids, start time, duration, counts and sections."""
    coordinator.start_request(correlation_id="c-1", tenant="acme")
    with log.operation("load"):
        pass
    summary = coordinator.end_request()

    assert summary["correlation_id"] == "c-1"
    assert RFC3339_UTC.match(summary["start_time"])
    assert summary["duration_ms"] >= 0
    assert summary["counts"] == {
        "lines": summary["counts"]["lines"],
        "suppressed": 0,
        "operations": 1,
        "errors": 0,
    }
    assert summary["error"] is False
    assert summary["error_count"] == 0
    assert "errors" not in summary
    assert summary["attributes"] == {"tenant": "acme"}
    assert summary["operations"]["service.load"]["count"] == 1
    assert "service_layer" in summary["request_timeline"]
    assert summary["performance_violations"] == []
    assert summary["dedup"] == {"suppressed": 0, "keys": {}}
    assert "session_id" not in summary


def test_summary_counts_the_lines_of_the_request(sink: MemorySink) -> None:
    """``counts.lines`` is the number of lines the request wrote."""
    coordinator.start_request()
    log.info("one")
    log.info("two")
    summary = coordinator.end_request()

    assert summary["counts"]["lines"] == len(sink.lines) == 2


def test_end_request_outside_a_request_returns_empty() -> None:
    """Ending when no request is current returns ``{}``."""
    assert coordinator.end_request() == {}


def test_ending_twice_returns_empty_the_second_time() -> None:
    """A second ``end_request`` finds no request and returns ``{}``."""
    coordinator.start_request()
    assert coordinator.end_request()

    assert coordinator.end_request() == {}
    assert get_context() is None


def test_inner_request_ends_and_leaves_the_outer_intact() -> None:
    """A request started inside another gives the outer one back."""
    outer = coordinator.start_request(correlation_id="outer", user_id="u-o")
    inner = coordinator.start_request(correlation_id="inner")
    assert get_context() is inner

    inner_summary = coordinator.end_request()

    assert inner_summary["correlation_id"] == "inner"
    assert get_context() is outer
    assert outer.user_id == "u-o"
    assert coordinator.end_request()["correlation_id"] == "outer"
    assert get_context() is None


async def test_request_can_be_ended_from_another_task() -> None:
    """A request started in one task can be ended in another."""
    ctx = coordinator.start_request(correlation_id="cross-task")

    summary = await asyncio.create_task(_end_in_task())

    assert summary["correlation_id"] == "cross-task"
    assert ctx._token is None


async def _end_in_task() -> dict[str, Any]:
    result = coordinator.end_request()
    assert get_context() is None
    return result


def test_request_can_be_ended_from_another_thread() -> None:
    """Passing the context ends it from a thread that never saw it."""
    ctx = coordinator.start_request(correlation_id="cross-thread")
    results: list[dict[str, Any]] = []

    thread = threading.Thread(
        target=lambda: results.append(coordinator.end_request(ctx))
    )
    thread.start()
    thread.join()

    assert results[0]["correlation_id"] == "cross-thread"
    request_context.set(None)


def test_get_context_returns_the_current_request() -> None:
    """``get_context`` is the current request or ``None``."""
    assert coordinator.get_context() is None
    ctx = coordinator.start_request()

    assert coordinator.get_context() is ctx
    coordinator.end_request()
    assert coordinator.get_context() is None


def test_coordinator_keeps_no_request_state() -> None:
    """The coordinator has no instance state: it is safe to share."""
    assert LoggingCoordinator.__slots__ == ()
    assert not hasattr(coordinator, "__dict__")


async def test_500_concurrent_requests_share_one_coordinator(
    sink: MemorySink,
) -> None:
    """Interleaved requests keep their own ids, counts and attributes."""
    rng = random.Random(7)
    delays = [[rng.random() / 1000 for _ in range(4)] for _ in range(500)]

    async def one(index: int) -> dict[str, Any]:
        coordinator.start_request(
            correlation_id=f"req-{index}", user_id=f"u-{index}"
        )
        await asyncio.sleep(delays[index][0])
        stratalog.bind(n=index)
        for step in range(index % 3 + 1):
            async with log.operation(f"step{step}") as op:
                op["n"] = index
                await asyncio.sleep(delays[index][step + 1])
        log.info("work.done", n=index)
        return coordinator.end_request()

    summaries = await asyncio.gather(*(one(i) for i in range(500)))

    lines = [r for r in sink.records() if r["logger"] == log.logger_name]
    assert len(lines) == sum(2 * (i % 3 + 1) + 1 for i in range(500))
    for line in lines:
        index = int(line["correlation_id"].removeprefix("req-"))
        assert line["user_id"] == f"u-{index}"
        assert line.get("n", index) == index
    for index, summary in enumerate(summaries):
        steps = index % 3 + 1
        assert summary["correlation_id"] == f"req-{index}"
        assert summary["user_id"] == f"u-{index}"
        assert summary["attributes"] == {"n": index}
        assert summary["counts"]["operations"] == steps
        assert summary["counts"]["lines"] == 2 * steps + 1
        assert set(summary["operations"]) == {
            f"service.step{step}" for step in range(steps)
        }
        assert summary["request_timeline"]["service_layer"]["count"] == steps
    assert len(_events(sink, "work.done")) == 500
    assert get_context() is None


# -- log_once -----------------------------------------------------------------


def test_log_once_writes_once_per_request(sink: MemorySink) -> None:
    """Within a request a key is written once; the next request again."""
    results = []
    for _ in range(2):
        coordinator.start_request()
        results += [
            coordinator.log_once("cfg", log, "warning", "config.defaulted")
            for _ in range(3)
        ]
        coordinator.end_request()

    assert results == [True, False, False, True, False, False]
    assert len(_events(sink, "config.defaulted")) == 2


def test_log_once_outside_requests_is_once_per_process(
    sink: MemorySink,
) -> None:
    """Outside a request a key is written once for the process."""
    key = f"process-{uuid.uuid4()}"

    results = [
        coordinator.log_once(key, log, 30, "deprecated.used", api="v1")
        for _ in range(3)
    ]

    assert results == [True, False, False]
    (line,) = _events(sink, "deprecated.used")
    assert line["level"] == "warning"
    assert line["api"] == "v1"


def test_log_once_suppressions_reach_the_summary(sink: MemorySink) -> None:
    """Held-back ``log_once`` lines are counted under their key."""
    coordinator.start_request()
    for _ in range(3):
        coordinator.log_once("once-key", log, "info", "noted")
    summary = coordinator.end_request()

    assert summary["dedup"]["keys"]["once-key"]["suppressed"] == 2


# -- summary lines ------------------------------------------------------------


def test_emit_summary_writes_one_line_with_the_ids(sink: MemorySink) -> None:
    """The summary line carries the ids once; extra keys win."""
    ctx = coordinator.start_request(correlation_id="sum-1", user_id="u-1")
    summary = coordinator.end_request()

    emit_summary(summary, ctx, extra={"status": 200, "error": "overridden"})

    (line,) = _events(sink, "request.completed")
    assert line["correlation_id"] == "sum-1"
    assert line["user_id"] == "u-1"
    assert line["layer"] == "api"
    assert line["logger"] == "stratalog.request"
    assert line["status"] == 200
    assert line["error"] == "overridden"
    assert "field_correlation_id" not in line


def test_summary_counts_every_suppressed_line(sink: MemorySink) -> None:
    """``counts.suppressed`` is exact even past the per-key bound."""
    stratalog.configure(sink=sink, format="json", max_logged_operations=2)
    coordinator.start_request()
    for name in ("a", "b", "c", "d"):
        for _ in range(3):
            log.warning("repeated", name=name)
    summary = coordinator.end_request()

    assert summary["counts"]["suppressed"] == 8
    assert summary["dedup"]["suppressed"] == 8


def test_summary_counts_errors_beyond_the_history_bound(
    sink: MemorySink,
) -> None:
    """The error count stays exact when old errors leave the history."""
    coordinator.start_request()
    for index in range(60):
        try:
            raise ValueError(f"bad {index}")
        except ValueError:
            log.exception("failed", detail=str(index))
    summary = coordinator.end_request()

    assert len(summary["errors"]) == 50
    assert summary["error_count"] == 60
    assert summary["counts"]["errors"] == 60
    assert summary["errors"][-1]["message"] == "bad 59"


def test_settings_read_before_the_first_line_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request started before any line uses the environment's settings."""
    monkeypatch.setenv("LOG_OUTPUT", "none")
    monkeypatch.setenv("LOG_MAX_LOGGED_OPERATIONS", "7")
    monkeypatch.setenv("LOG_PERF_THRESHOLD_SERVICE", "0.05")
    _state.install(
        _state.Pipeline(config=LoggingConfig(), min_level=0, configured=False)
    )

    ctx = coordinator.start_request()
    coordinator.end_request()

    assert ctx.max_logged_operations == 7
    assert ctx.performance_tracker is not None
    assert ctx.performance_tracker.threshold("service") == 0.05
