"""Deduplication inside one request: keys, policies, defaults, counts."""

from __future__ import annotations

import types
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stratalog
from stratalog import context as context_module
from stratalog import dedup as dedup_module
from stratalog.context import RequestContext
from stratalog.coordinator import LoggingCoordinator
from stratalog.dedup import (
    DeduplicationPolicy,
    fingerprint,
    generate_operation_key,
)
from stratalog.logger import UnifiedLogger
from stratalog.testing import MemorySink

coordinator = LoggingCoordinator()
log = stratalog.get_unified_logger("tests.dedup", "core")


class FakeClock:
    """A perf_counter that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Drive the perf clock that dedup and the context read."""
    fake = FakeClock()
    namespace = types.SimpleNamespace(perf_counter=fake.perf_counter)
    monkeypatch.setattr(dedup_module, "time", namespace)
    monkeypatch.setattr(context_module, "time", namespace)
    return fake


def _events(sink: MemorySink, event: str) -> list[dict[str, Any]]:
    return [r for r in sink.records() if r["event"] == event]


# -- keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            ("api", "operation", "process_query"),
            "api.operation.process_query",
            id="operation",
        ),
        pytest.param(
            ("service", "boundary", "user_service_call", "inbound"),
            "service.boundary.user_service_call.inbound",
            id="boundary-with-direction",
        ),
        pytest.param(
            ("infrastructure", "external_call", "redis_get"),
            "infrastructure.external_call.redis_get",
            id="external-call",
        ),
        pytest.param(
            ("core", "operation", "x", None),
            "core.operation.x",
            id="none-direction",
        ),
        pytest.param(
            ("core", "operation", "x", ""),
            "core.operation.x",
            id="empty-direction",
        ),
    ],
)
def test_generate_operation_key_shapes(
    args: tuple[Any, ...], expected: str
) -> None:
    """Keys join layer, type, name and an optional direction with dots."""
    assert generate_operation_key(*args) == expected


def test_fingerprint_ignores_volatile_fields() -> None:
    """Fields ending in _id/_ms/_s/_at or listed as volatile are left out."""
    volatile = frozenset({"attempt"})

    first = fingerprint(
        "core",
        "db.failed",
        "ConnectionRefusedError",
        {"host": "db", "item_id": 1, "took_ms": 3, "attempt": 1},
        volatile,
    )
    second = fingerprint(
        "core",
        "db.failed",
        "ConnectionRefusedError",
        {"host": "db", "item_id": 2, "took_ms": 9, "attempt": 4},
        volatile,
    )

    assert first == second
    assert first == "core.log.db.failed[ConnectionRefusedError]{host=db}"


@pytest.mark.parametrize(
    ("change", "value"),
    [
        pytest.param("event", "db.other", id="event"),
        pytest.param("error_type", "TimeoutError", id="error-type"),
        pytest.param("host", "db2", id="stable-field"),
        pytest.param("layer", "service", id="layer"),
    ],
)
def test_fingerprint_tells_lines_apart(change: str, value: str) -> None:
    """Event, error type, layer and stable field values separate keys."""
    base: dict[str, Any] = {
        "layer": "core",
        "event": "db.failed",
        "error_type": "ConnectionRefusedError",
        "host": "db",
    }
    other = {**base, change: value}

    def key(parts: dict[str, Any]) -> str:
        return fingerprint(
            parts["layer"],
            parts["event"],
            parts["error_type"],
            {"host": parts["host"]},
            frozenset(),
        )

    assert key(base) != key(other)


# -- policies -----------------------------------------------------------------


def test_invalid_policy_name_raises_value_error() -> None:
    """An unknown policy name is refused, naming the allowed ones."""
    with pytest.raises(ValueError, match="strict, time_window"):
        DeduplicationPolicy("sometimes")


def test_strict_allows_a_key_once() -> None:
    """STRICT writes each key once per request."""
    policy = DeduplicationPolicy(DeduplicationPolicy.STRICT)
    ctx = RequestContext()

    assert policy.should_allow_duplicate("k", ctx)
    ctx.mark_logged("k")
    assert not policy.should_allow_duplicate("k", ctx)
    assert policy.should_allow_duplicate("other", ctx)


def test_none_always_allows() -> None:
    """NONE never holds a line back."""
    policy = DeduplicationPolicy(DeduplicationPolicy.NONE)
    ctx = RequestContext()
    for _ in range(3):
        ctx.mark_logged("k")

    assert policy.should_allow_duplicate("k", ctx)


def test_count_based_allows_up_to_max_count() -> None:
    """COUNT_BASED writes a key ``max_count`` times."""
    policy = DeduplicationPolicy(DeduplicationPolicy.COUNT_BASED, max_count=3)
    ctx = RequestContext()
    allowed = 0

    for _ in range(10):
        if policy.should_allow_duplicate("k", ctx):
            ctx.mark_logged("k")
            allowed += 1

    assert allowed == 3


def test_count_based_defaults_to_once() -> None:
    """Without ``max_count``, COUNT_BASED behaves like STRICT."""
    policy = DeduplicationPolicy(DeduplicationPolicy.COUNT_BASED)
    ctx = RequestContext()
    ctx.mark_logged("k")

    assert not policy.should_allow_duplicate("k", ctx)


def test_time_window_allows_again_after_the_window(clock: FakeClock) -> None:
    """TIME_WINDOW writes again once ``window_seconds`` passed."""
    policy = DeduplicationPolicy(
        DeduplicationPolicy.TIME_WINDOW, window_seconds=5
    )
    ctx = RequestContext()

    assert policy.should_allow_duplicate("k", ctx)
    ctx.mark_logged("k")
    clock.now += 4.999
    assert not policy.should_allow_duplicate("k", ctx)
    clock.now += 0.001
    assert policy.should_allow_duplicate("k", ctx)


def test_time_window_spans_days(clock: FakeClock) -> None:
    """A window longer than a day is honoured (no seconds-of-day slip)."""
    policy = DeduplicationPolicy(
        DeduplicationPolicy.TIME_WINDOW, window_seconds=90_000
    )
    ctx = RequestContext()
    ctx.mark_logged("k")

    clock.now += 86_400 + 10
    assert not policy.should_allow_duplicate("k", ctx)
    clock.now += 90_000
    assert policy.should_allow_duplicate("k", ctx)


def test_time_window_default_is_sixty_seconds() -> None:
    """Without ``window_seconds`` the window is one minute."""
    policy = DeduplicationPolicy(DeduplicationPolicy.TIME_WINDOW)

    assert policy.window_seconds == 60.0


def _model_allows(
    policy: str, params: dict[str, Any], history: list[float], now: float
) -> bool:
    if policy == DeduplicationPolicy.NONE:
        return True
    if policy == DeduplicationPolicy.STRICT:
        return not history
    if policy == DeduplicationPolicy.COUNT_BASED:
        return len(history) < params.get("max_count", 1)
    return not history or now - history[-1] >= params["window_seconds"]


_policy_setups = st.one_of(
    st.just((DeduplicationPolicy.STRICT, {})),
    st.just((DeduplicationPolicy.NONE, {})),
    st.integers(0, 5).map(
        lambda n: (DeduplicationPolicy.COUNT_BASED, {"max_count": n})
    ),
    st.integers(1, 10).map(
        lambda w: (DeduplicationPolicy.TIME_WINDOW, {"window_seconds": w})
    ),
)


@settings(max_examples=200, deadline=None)
@given(
    setup=_policy_setups,
    steps=st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 4)), max_size=40
    ),
)
def test_property_policies_match_their_model(
    setup: tuple[str, dict[str, Any]],
    steps: list[tuple[str, int]],
) -> None:
    """Each policy admits exactly the lines its written rule admits."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _check_policy_against_model(setup, steps, monkeypatch)


def _check_policy_against_model(
    setup: tuple[str, dict[str, Any]],
    steps: list[tuple[str, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    policy_name, params = setup
    fake = FakeClock()
    namespace = types.SimpleNamespace(perf_counter=fake.perf_counter)
    monkeypatch.setattr(dedup_module, "time", namespace)
    monkeypatch.setattr(context_module, "time", namespace)
    policy = DeduplicationPolicy(policy_name, **params)
    ctx = RequestContext()
    written: dict[str, list[float]] = {}

    for key, advance in steps:
        fake.now += advance
        history = written.setdefault(key, [])
        expected = _model_allows(policy_name, params, history, fake.now)
        assert policy.should_allow_duplicate(key, ctx) == expected
        if expected:
            ctx.mark_logged(key)
            history.append(fake.now)

    for key, history in written.items():
        assert ctx.get_operation_count(key) == len(history)


# -- the defaults, through the logger -----------------------------------------


def test_operation_lines_are_strict_per_request(sink: MemorySink) -> None:
    """Start and completion of one operation are written once a request."""
    coordinator.start_request()
    for _ in range(3):
        with log.operation("parse"):
            pass
    summary = coordinator.end_request()

    assert len(_events(sink, "operation.started")) == 1
    assert len(_events(sink, "operation.completed")) == 1
    assert summary["counts"]["operations"] == 3
    assert summary["dedup"]["suppressed"] == 4
    completed = summary["dedup"]["keys"]["core.operation.parse.completed"]
    assert completed == {
        "count": 3,
        "suppressed": 2,
        "first": completed["first"],
        "last": completed["last"],
    }
    assert completed["first"] <= completed["last"]


def test_boundary_lines_are_strict_per_request(sink: MemorySink) -> None:
    """A boundary crossing is written once per request and direction."""
    coordinator.start_request()
    for _ in range(3):
        log.log_boundary("fetch", "inbound", {"a": 1})
    log.log_boundary("fetch", "outbound", {"a": 1})
    summary = coordinator.end_request()

    assert len(_events(sink, "boundary.inbound")) == 1
    assert len(_events(sink, "boundary.outbound")) == 1
    keys = summary["dedup"]["keys"]
    assert keys["core.boundary.fetch.inbound"]["suppressed"] == 2


def test_each_request_starts_with_empty_dedup_state(sink: MemorySink) -> None:
    """The next request writes its first operation lines again."""
    for _ in range(2):
        coordinator.start_request()
        with log.operation("parse"):
            pass
        coordinator.end_request()

    assert len(_events(sink, "operation.completed")) == 2


def test_outside_a_request_nothing_is_deduplicated(sink: MemorySink) -> None:
    """Without a request there is no dedup state: every line is written."""
    for _ in range(3):
        with log.operation("parse"):
            pass
        log.error("failed", host="db")

    assert len(_events(sink, "operation.completed")) == 3
    assert len(_events(sink, "failed")) == 3


def test_metrics_and_events_are_never_deduplicated(sink: MemorySink) -> None:
    """Metrics, events and business events repeat freely in a request."""
    coordinator.start_request()
    for _ in range(3):
        log.log_metric("queue.depth", 4, unit="items")
        log.log_event("cache.refreshed", severity="warning")
        log.log_business_event("order.placed", {"order": 1})
    summary = coordinator.end_request()

    assert len(_events(sink, "metric.recorded")) == 3
    assert len(_events(sink, "cache.refreshed")) == 3
    assert len(_events(sink, "order.placed")) == 3
    assert summary["dedup"]["suppressed"] == 0


def test_slow_operations_are_never_held_back(sink: MemorySink) -> None:
    """Every threshold violation is written, however often it repeats."""
    stratalog.configure(
        sink=sink, format="json", level="debug", thresholds={"core": 1e-9}
    )
    coordinator.start_request()
    for _ in range(3):
        with log.operation("parse"):
            pass
    summary = coordinator.end_request()

    assert len(_events(sink, "operation.slow")) == 3
    assert len(summary["performance_violations"]) == 3


def test_first_occurrence_of_each_error_is_written(sink: MemorySink) -> None:
    """Repeats of an error are counted; a new error type is written."""
    coordinator.start_request()
    for exc in (KeyError("a"), KeyError("b"), ValueError("c")):
        try:
            raise exc
        except Exception:
            log.exception("lookup.failed", table="users")
    summary = coordinator.end_request()

    lines = _events(sink, "lookup.failed")
    assert [line["error_type"] for line in lines] == ["KeyError", "ValueError"]
    assert all("Traceback" in line["exception"] for line in lines)
    assert summary["dedup"]["suppressed"] == 1


def test_same_fields_under_another_handled_error_are_written(
    sink: MemorySink,
) -> None:
    """Identical fields logged while handling a new error type are new."""
    coordinator.start_request()
    for exc in (
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        ConnectionRefusedError("refused again"),
        TimeoutError("timed out again"),
    ):
        try:
            raise exc
        except OSError:
            log.error("db.failed", host="db")
    log.error("db.failed", host="db")
    summary = coordinator.end_request()

    assert len(_events(sink, "db.failed")) == 3
    assert summary["dedup"]["suppressed"] == 2


def test_warnings_repeat_once_per_stable_fields(sink: MemorySink) -> None:
    """Warnings differing only in volatile fields are written once."""
    coordinator.start_request()
    for index in range(4):
        log.warning("retry", target="db", request_id=str(index), attempt=index)
    log.warning("retry", target="cache")
    coordinator.end_request()

    assert [r["target"] for r in _events(sink, "retry")] == ["db", "cache"]


def test_info_lines_are_never_deduplicated(sink: MemorySink) -> None:
    """Plain info and debug lines are the caller's business: all written."""
    coordinator.start_request()
    for _ in range(3):
        log.info("step")
        log.debug("detail")
    coordinator.end_request()

    assert len(_events(sink, "step")) == 3
    assert len(_events(sink, "detail")) == 3


def test_dedupe_false_turns_deduplication_off(sink: MemorySink) -> None:
    """``configure(dedupe=False)`` writes every repeat."""
    stratalog.configure(sink=sink, format="json", level="debug", dedupe=False)
    coordinator.start_request()
    for _ in range(3):
        with log.operation("parse"):
            pass
        log.log_boundary("fetch", "inbound")
        log.error("failed", host="db")
    summary = coordinator.end_request()

    assert len(_events(sink, "operation.started")) == 3
    assert len(_events(sink, "operation.completed")) == 3
    assert len(_events(sink, "boundary.inbound")) == 3
    assert len(_events(sink, "failed")) == 3
    assert summary["dedup"]["suppressed"] == 0


def test_log_dedupe_false_from_the_environment(
    sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LOG_DEDUPE=false`` has the same effect as ``dedupe=False``."""
    monkeypatch.setenv("LOG_DEDUPE", "false")
    stratalog.configure(sink=sink, format="json", level="debug")
    coordinator.start_request()
    for _ in range(2):
        log.error("failed", host="db")
    coordinator.end_request()

    assert len(_events(sink, "failed")) == 2


def test_logger_with_a_count_based_policy(sink: MemorySink) -> None:
    """A logger's own policy decides how often its operation lines repeat."""
    chatty = UnifiedLogger(
        "tests.dedup.chatty",
        "core",
        dedup_policy=DeduplicationPolicy(
            DeduplicationPolicy.COUNT_BASED, max_count=2
        ),
    )
    coordinator.start_request()
    for _ in range(5):
        with chatty.operation("poll"):
            pass
    coordinator.end_request()

    assert len(_events(sink, "operation.completed")) == 2


def test_c17_repeated_error_is_written_once_and_counted(
    sink: MemorySink,
) -> None:
    """C17: 500 failures write a few lines; the summary counts the rest."""
    repository = stratalog.get_unified_logger("tests.dedup.repo", "core")

    def bulk() -> dict[str, Any]:
        coordinator.start_request()
        for item in range(500):
            try:
                if item in (100, 200):
                    raise TimeoutError("timed out")
                raise ConnectionRefusedError("[Errno 111] Connection refused")
            except OSError:
                repository.error(
                    "db.connect_failed", host="db:5432", item_id=item
                )
        return coordinator.end_request()

    first = bulk()
    lines = _events(sink, "db.connect_failed")
    written_by_first = len(sink.lines)
    second = bulk()

    assert [line["item_id"] for line in lines] == [0, 100]
    assert written_by_first < 10
    keys = first["dedup"]["keys"]
    refused = next(v for k, v in keys.items() if "ConnectionRefused" in k)
    timeouts = next(v for k, v in keys.items() if "TimeoutError" in k)
    assert refused["count"] == 498
    assert refused["suppressed"] == 497
    assert refused["first"] < refused["last"]
    assert timeouts == {**timeouts, "count": 2, "suppressed": 1}
    assert first["dedup"]["suppressed"] == 498
    assert second["dedup"]["suppressed"] == 498
    all_lines = _events(sink, "db.connect_failed")
    assert [line["item_id"] for line in all_lines] == [0, 100, 0, 100]
