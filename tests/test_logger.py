"""The unified logger: levels, operations, boundaries, events and lines."""

from __future__ import annotations

import asyncio
import gc
import re
import time
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import stratalog
from stratalog import _diagnostics
from stratalog.context import ID_FIELDS
from stratalog.coordinator import LoggingCoordinator
from stratalog.logger import UnifiedLogger, current_operation
from stratalog.testing import MemorySink

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
END_EVENTS = {
    "operation.completed",
    "operation.slow",
    "operation.failed",
    "operation.cancelled",
}

coordinator = LoggingCoordinator()
core = stratalog.get_unified_logger("tests.logger", "core")


def _events(sink: MemorySink, event: str) -> list[dict[str, Any]]:
    return [r for r in sink.records() if r["event"] == event]


def _ends(sink: MemorySink) -> list[dict[str, Any]]:
    return [r for r in sink.records() if r["event"] in END_EVENTS]


class CountingObserver:
    """An operation observer that remembers every end it is told of."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, str]] = []

    def started(self, operation: Any) -> str:
        return str(operation.name)

    def finished(
        self,
        operation: Any,
        state: Any,
        exc: BaseException | None,
        duration: float,
        outcome: str,
    ) -> None:
        self.ended.append((state, outcome))


@pytest.fixture
def observer(sink: MemorySink) -> CountingObserver:
    """Configure JSON into *sink* with an observer counting ends."""
    counting = CountingObserver()
    stratalog.configure(
        sink=sink, format="json", level="debug", observers=[counting]
    )
    return counting


# -- getting a logger ---------------------------------------------------------


def test_get_unified_logger_is_cached() -> None:
    """The same name and layer give the same logger object."""
    first = stratalog.get_unified_logger("tests.cached", "api")

    assert stratalog.get_unified_logger("tests.cached", "api") is first
    assert stratalog.get_unified_logger("tests.cached", "core") is not first
    assert first.layer == "api"
    assert first.logger_name == "tests.cached"


def test_unknown_layer_raises_naming_the_allowed_layers(
    sink: MemorySink,
) -> None:
    """An unknown layer is refused with the list of allowed ones."""
    with pytest.raises(ValueError, match="unknown layer 'database'") as info:
        stratalog.get_unified_logger("tests.bad", "database")

    for layer in ("api", "service", "core", "infrastructure"):
        assert layer in str(info.value)


def test_a_configured_threshold_adds_a_layer(sink: MemorySink) -> None:
    """``configure(thresholds={"repository": 0.1})`` allows that layer."""
    stratalog.configure(
        sink=sink, format="json", thresholds={"repository": 0.1}
    )

    repository = stratalog.get_unified_logger("tests.repo", "repository")

    assert repository.layer == "repository"


# -- every line ---------------------------------------------------------------


def _check_common(line: dict[str, Any], level: str) -> None:
    assert RFC3339_UTC.match(line["timestamp"])
    assert line["level"] == level
    assert line["logger"] == "tests.logger"
    assert line["layer"] == "core"


@pytest.mark.parametrize(
    ("method", "level"),
    [
        pytest.param("debug", "debug", id="debug"),
        pytest.param("info", "info", id="info"),
        pytest.param("warning", "warning", id="warning"),
        pytest.param("error", "error", id="error"),
        pytest.param("critical", "critical", id="critical"),
        pytest.param("exception", "error", id="exception"),
    ],
)
def test_level_methods_write_one_line(
    method: str, level: str, sink: MemorySink
) -> None:
    """Each level method writes one line with the common fields."""
    getattr(core, method)("thing.happened", size=3)

    (line,) = sink.records()
    _check_common(line, level)
    assert line["event"] == "thing.happened"
    assert line["size"] == 3


def test_exception_attaches_the_traceback(sink: MemorySink) -> None:
    """``exception`` inside ``except`` writes type, message and traceback."""
    try:
        raise KeyError("missing")
    except KeyError:
        core.exception("lookup.failed")

    (line,) = sink.records()
    assert line["error_type"] == "KeyError"
    assert line["error_message"] == "'missing'"
    assert "Traceback" in line["exception"]


def test_exception_outside_except_writes_no_traceback(
    sink: MemorySink,
) -> None:
    """Without an exception being handled, only the event is written."""
    core.exception("nothing.to.show")

    (line,) = sink.records()
    assert "exception" not in line


def test_lines_inside_a_request_carry_the_set_ids(sink: MemorySink) -> None:
    """Inside a request: the correlation id and each id that is set."""
    coordinator.start_request(correlation_id="c-1", session_id="s-1")
    core.info("inside")
    coordinator.end_request()

    (line,) = sink.records()
    assert line["correlation_id"] == "c-1"
    assert line["session_id"] == "s-1"
    assert "user_id" not in line
    assert "investigation_id" not in line


def test_lines_outside_a_request_have_no_id_fields(sink: MemorySink) -> None:
    """Outside a request the id fields are absent, never null or 'None'."""
    core.info("outside")
    with core.operation("op"):
        pass

    for line in sink.records():
        for name in ID_FIELDS:
            assert name not in line
        assert "None" not in sink.text()
        assert "null" not in sink.text()


def test_level_below_the_minimum_writes_nothing(sink: MemorySink) -> None:
    """Lines under the configured level are dropped."""
    stratalog.configure(sink=sink, format="json", level="warning")

    core.debug("a")
    core.info("b")
    core.log_metric("m", 1)
    core.log_boundary("x", "inbound")
    with core.operation("quiet"):
        pass
    core.warning("c")

    assert [r["event"] for r in sink.records()] == ["c"]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        pytest.param(30, "warning", id="number"),
        pytest.param("error", "error", id="name"),
        pytest.param(35, "warning", id="between-levels"),
    ],
)
def test_log_takes_a_number_or_a_name(
    level: int | str, expected: str, sink: MemorySink
) -> None:
    """``log`` accepts stdlib numbers and level names."""
    core.log(level, "generic")

    (line,) = sink.records()
    assert line["level"] == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("WARNING", "warning", id="upper-case"),
        pytest.param("Error", "error", id="capitalised"),
        pytest.param("warn", "warning", id="warn-alias"),
        pytest.param("fatal", "critical", id="fatal-alias"),
        pytest.param("loud", "info", id="unknown-is-info"),
    ],
)
def test_level_names_ignore_case(
    name: str, expected: str, sink: MemorySink
) -> None:
    """Level names in any case (and stdlib aliases) keep their level."""
    core.log(name, "by.name")
    core.log_event("event.by.name", severity=name)
    core.log_business_event("business.by.name", severity=name)

    assert [r["level"] for r in sink.records()] == [expected] * 3


def test_c12_reserved_field_names(sink: MemorySink) -> None:
    """C12: reserved names never raise and never overwrite library fields."""
    coordinator.start_request(correlation_id="real")

    core.info("lambda.handle", event={"source": "s3"})
    core.info("elevator", level=2)
    core.info("import", timestamp="2001-01-01")
    core.info("spoof", correlation_id="evil", trace_id="0" * 32)
    payload = {"event": "a", "logger": "b", "msg": "c"}
    core.info("x", **payload)
    core.info("more", layer="fake", session_id="s-evil", span_id="1")
    coordinator.end_request()

    lambda_, elevator, imported, spoof, x, more = sink.records()
    assert lambda_["event"] == "lambda.handle"
    assert lambda_["field_event"] == {"source": "s3"}
    assert elevator["level"] == "info"
    assert elevator["field_level"] == 2
    assert imported["timestamp"] != "2001-01-01"
    assert imported["field_timestamp"] == "2001-01-01"
    assert spoof["correlation_id"] == "real"
    assert spoof["field_correlation_id"] == "evil"
    assert "trace_id" not in spoof or spoof["trace_id"] != "0" * 32
    assert spoof["field_trace_id"] == "0" * 32
    assert x["event"] == "x"
    assert x["logger"] == "tests.logger"
    assert x["field_event"] == "a"
    assert x["field_logger"] == "b"
    assert x["msg"] == "c"
    assert more["layer"] == "core"
    assert more["field_layer"] == "fake"
    assert "session_id" not in more
    assert more["field_session_id"] == "s-evil"


def test_c12_collision_is_reported_once_per_key(
    sink: MemorySink, capfd: pytest.CaptureFixture[str]
) -> None:
    """C12: a collision warning goes to stderr at most once per key."""
    for _ in range(3):
        core.info("x", level=1)
        core.info("x", event_name_ok=1)

    err = capfd.readouterr().err
    assert err.count("'level' is reserved") <= 1


def test_internal_failure_goes_to_stderr_once_and_not_the_pipeline(
    sink: MemorySink, capfd: pytest.CaptureFixture[str]
) -> None:
    """A failing step loses its line, counts, and reports on stderr once."""

    def broken(logger: Any, method: str, event: dict[str, Any]) -> Any:
        raise RuntimeError("processor boom")

    stratalog.configure(
        sink=sink, format="json", level="debug", processors=[broken]
    )

    for _ in range(5):
        core.info("lost")
        with core.operation("also.lost"):
            pass

    err = capfd.readouterr().err
    assert sink.lines == []
    assert _diagnostics.counts()["emit"] == 15
    assert err.count("stratalog: emit:") == 1
    assert "processor boom" in err


def test_internal_failures_are_reported_again_after_a_minute(
    sink: MemorySink,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Within a minute repeats are only counted; then one report sums them."""
    clock = [1_000.0]
    monkeypatch.setattr(
        _diagnostics, "time", types.SimpleNamespace(monotonic=lambda: clock[0])
    )

    def broken(logger: Any, method: str, event: dict[str, Any]) -> Any:
        raise RuntimeError("processor boom")

    stratalog.configure(sink=sink, format="json", processors=[broken])
    for _ in range(3):
        core.info("lost")
    clock[0] += 59.0
    core.info("lost")
    quiet = capfd.readouterr().err
    clock[0] += 1.5
    core.info("lost")

    again = capfd.readouterr().err
    assert quiet.count("stratalog: emit:") == 1
    assert again.count("stratalog: emit:") == 1
    assert "(4 since last report)" in again
    assert _diagnostics.counts()["emit"] == 5


def test_log_call_never_raises_on_hostile_arguments(sink: MemorySink) -> None:
    """A field whose conversion fails never reaches the caller as an error."""

    class Evil:
        def __repr__(self) -> str:
            raise RuntimeError("repr")

        def __str__(self) -> str:
            raise RuntimeError("str")

        def __len__(self) -> int:
            raise RuntimeError("len")

    core.info("hostile", value=Evil())
    core.warning("hostile.warning", value=Evil())
    core.log_boundary("op", "inbound", Evil())
    core.log_business_event("biz", {"v": Evil()})
    core.log_metric("m", Evil())  # type: ignore[arg-type]

    assert len(sink.lines) == 5


# -- operations ---------------------------------------------------------------


def test_operation_with_writes_start_and_completion(sink: MemorySink) -> None:
    """``with`` writes a debug start and an info completion with fields."""
    with core.operation("parse", source="s3") as op:
        op["rows"] = 12

    started, completed = sink.records()
    _check_common(started, "debug")
    assert started["event"] == "operation.started"
    assert started["operation"] == "parse"
    _check_common(completed, "info")
    assert completed["event"] == "operation.completed"
    assert completed["operation"] == "parse"
    assert completed["source"] == "s3"
    assert completed["rows"] == 12
    assert completed["duration_ms"] >= 0


async def test_operation_async_with_yields_the_same_dict(
    sink: MemorySink,
) -> None:
    """``async with`` works the same, yielding a mutable dict."""
    async with core.operation("fetch") as op:
        op["status"] = 200
        await asyncio.sleep(0)

    completed = _events(sink, "operation.completed")[0]
    assert completed["status"] == 200


def test_operation_duration_is_measured(sink: MemorySink) -> None:
    """``duration_ms`` reflects the time the block took."""
    with core.operation("nap"):
        time.sleep(0.02)

    (completed,) = _events(sink, "operation.completed")
    assert 15 <= completed["duration_ms"] < 1_000


def test_slow_operation_writes_a_warning(sink: MemorySink) -> None:
    """Past the layer's threshold: operation.slow with threshold_ms."""
    stratalog.configure(
        sink=sink, format="json", level="debug", thresholds={"core": 0.01}
    )

    with core.operation("crunch"):
        time.sleep(0.03)

    (slow,) = _events(sink, "operation.slow")
    assert slow["level"] == "warning"
    assert slow["threshold_ms"] == 10.0
    assert slow["duration_ms"] > 10.0
    assert not _events(sink, "operation.completed")


def test_operation_in_another_layer(sink: MemorySink) -> None:
    """``layer=`` runs the operation in another known layer."""
    with core.operation("call", layer="infrastructure"):
        pass

    (completed,) = _events(sink, "operation.completed")
    assert completed["layer"] == "infrastructure"


def test_failed_operation_writes_an_error_and_reraises(
    sink: MemorySink,
) -> None:
    """An exception gives operation.failed and still reaches the caller."""
    with pytest.raises(ZeroDivisionError), core.operation("divide"):
        _ = 1 / 0

    (failed,) = _events(sink, "operation.failed")
    assert failed["level"] == "error"
    assert failed["error_type"] == "ZeroDivisionError"
    assert "Traceback" in failed["exception"]


async def test_cancelled_operation_is_not_an_error(sink: MemorySink) -> None:
    """Cancellation is recorded as operation.cancelled and re-raised."""
    coordinator.start_request()
    started = asyncio.Event()

    async def work() -> None:
        async with core.operation("slow.call"):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    summary = coordinator.end_request()

    (cancelled,) = _ends(sink)
    assert cancelled["event"] == "operation.cancelled"
    assert cancelled["level"] == "info"
    assert cancelled["duration_ms"] >= 0
    assert summary["error_count"] == 0
    assert current_operation() is None


def _gen() -> Iterator[int]:
    with core.operation("gen.op"):
        yield 1
        yield 2


async def _agen() -> AsyncIterator[int]:
    async with core.operation("agen.op"):
        yield 1
        await asyncio.sleep(0)
        yield 2


def _end_normally() -> None:
    with core.operation("plain"):
        pass


def _end_with_error() -> None:
    try:
        with core.operation("plain"):
            raise ValueError("x")
    except ValueError:
        pass


def _close_generator() -> None:
    gen = _gen()
    next(gen)
    gen.close()


def _collect_generator() -> None:
    gen = _gen()
    next(gen)
    del gen
    gc.collect()


@pytest.mark.parametrize(
    ("end", "outcome"),
    [
        pytest.param(_end_normally, "completed", id="normally"),
        pytest.param(_end_with_error, "failed", id="exception"),
        pytest.param(_close_generator, "cancelled", id="generator-close"),
        pytest.param(_collect_generator, "cancelled", id="generator-gc"),
    ],
)
def test_sync_operation_ends_once_however_it_ends(
    end: Any, outcome: str, sink: MemorySink, observer: CountingObserver
) -> None:
    """Each way a block can end records one end and leaves no trace."""
    end()

    (line,) = _ends(sink)
    assert line["event"] == f"operation.{outcome}"
    assert [o for _, o in observer.ended] == [outcome]
    assert current_operation() is None


async def test_async_generator_aclose_ends_the_operation(
    sink: MemorySink, observer: CountingObserver
) -> None:
    """``agen.aclose()`` records one cancelled end and leaves no trace."""
    agen = _agen()
    await agen.__anext__()
    assert current_operation() == ("core", "agen.op")

    await agen.aclose()

    (line,) = _ends(sink)
    assert line["event"] == "operation.cancelled"
    assert observer.ended == [("agen.op", "cancelled")]
    assert current_operation() is None


async def test_async_generator_collected_unfinished_leaves_no_trace(
    sink: MemorySink, observer: CountingObserver
) -> None:
    """An abandoned async generator is closed by the loop elsewhere."""
    agen = _agen()
    await agen.__anext__()

    del agen
    gc.collect()
    for _ in range(5):
        await asyncio.sleep(0)

    (line,) = _ends(sink)
    assert line["event"] == "operation.cancelled"
    assert observer.ended == [("agen.op", "cancelled")]
    assert current_operation() is None


def test_generators_closed_out_of_order_leave_no_trace(
    sink: MemorySink,
) -> None:
    """Operations ended in any order leave none of them current."""
    first, second = _gen(), _gen()
    next(first)
    next(second)

    first.close()
    assert current_operation() == ("core", "gen.op")
    second.close()

    assert current_operation() is None
    assert len(_ends(sink)) == 2


def test_current_operation_is_the_innermost_open_one() -> None:
    """``current_operation`` names the innermost operation, then its parent."""
    service = stratalog.get_unified_logger("tests.logger", "service")

    with service.operation("outer"):
        assert current_operation() == ("service", "outer")
        with core.operation("inner"):
            assert current_operation() == ("core", "inner")
        assert current_operation() == ("service", "outer")

    assert current_operation() is None


async def test_operation_ended_in_another_task_leaves_no_trace(
    sink: MemorySink,
) -> None:
    """An operation entered here and exited by another task still ends."""
    operation = core.operation("handed.over")
    operation.__enter__()

    await asyncio.create_task(_exit_later(operation))

    assert len(_ends(sink)) == 1
    assert current_operation() is None


async def _exit_later(operation: Any) -> None:
    operation.__exit__(None, None, None)


def test_exiting_twice_records_one_end(sink: MemorySink) -> None:
    """A second exit of the same block writes nothing more."""
    operation = core.operation("twice")
    operation.__enter__()

    operation.__exit__(None, None, None)
    operation.__exit__(None, None, None)

    assert len(_ends(sink)) == 1


def test_operation_counts_reach_the_summary(sink: MemorySink) -> None:
    """Operations are counted and aggregated in the request summary."""
    coordinator.start_request()
    for _ in range(3):
        with core.operation("step"):
            pass
    summary = coordinator.end_request()

    assert summary["counts"]["operations"] == 3
    assert summary["operations"]["core.step"]["count"] == 3


def test_c26_clock_steps_do_not_move_durations(
    sink: MemorySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C26: a wall-clock jump mid-operation leaves durations right."""
    stratalog.configure(
        sink=sink,
        format="json",
        level="debug",
        thresholds={"repository": 0.1, "service": 0.3},
    )
    repository = stratalog.get_unified_logger("tests.c26", "repository")
    coordinator.start_request()
    real_time = time.time

    for jump in (-3600.0, 3600.0):
        with repository.operation("orders.select", layer="repository"):
            time.sleep(0.01)
            monkeypatch.setattr(time, "time", lambda j=jump: real_time() + j)
            time.sleep(0.01)
        monkeypatch.setattr(time, "time", real_time)
    with repository.operation("orders.select", layer="repository"):
        time.sleep(0.15)
    summary = coordinator.end_request()

    ends = _ends(sink)
    assert [line["event"] for line in ends] == [
        "operation.completed",
        "operation.slow",
    ]
    assert 5 <= ends[0]["duration_ms"] <= 95
    assert 150 <= ends[1]["duration_ms"] < 1_000
    assert ends[1]["threshold_ms"] == 100.0
    for line in sink.records():
        assert RFC3339_UTC.match(line["timestamp"])
    aggregate = summary["operations"]["repository.orders.select"]
    assert aggregate["count"] == 3
    assert 170 <= aggregate["total_ms"] < 1_500
    layer = summary["request_timeline"]["repository_layer"]
    assert layer["duration"] * 1000 == pytest.approx(
        aggregate["total_ms"], abs=0.01
    )
    (violation,) = summary["performance_violations"]
    assert violation["layer"] == "repository"


# -- boundaries, events, metrics ----------------------------------------------


def test_log_boundary_describes_the_payload(sink: MemorySink) -> None:
    """Boundary lines give payload type, size and keys, not the payload."""
    core.log_boundary("ingest", "inbound", {"user": "u", "items": [1, 2]})
    core.log_boundary("ingest", "outbound", [1, 2, 3], status=200)
    core.log_boundary("ingest", "internal")

    inbound, outbound, bare = sink.records()
    assert inbound["event"] == "boundary.inbound"
    assert inbound["level"] == "info"
    assert inbound["operation"] == "ingest"
    assert inbound["direction"] == "inbound"
    assert inbound["payload_type"] == "dict"
    assert inbound["payload_size"] == 2
    assert inbound["payload_keys"] == ["user", "items"]
    assert "u" not in inbound.values()
    assert outbound["payload_type"] == "list"
    assert outbound["payload_size"] == 3
    assert outbound["status"] == 200
    assert "payload_type" not in bare


def test_log_boundary_never_stringifies_a_huge_payload(
    sink: MemorySink,
) -> None:
    """A 50 MB payload is described in a short line, quickly."""
    payload = b"x" * 50_000_000
    big_dict = {f"k{i}": "v" * 1_000 for i in range(50_000)}

    started = time.perf_counter()
    core.log_boundary("upload", "inbound", payload)
    core.log_boundary("upload", "outbound", big_dict)
    elapsed = time.perf_counter() - started

    first, second = sink.records()
    assert elapsed < 0.5
    assert first["payload_size"] == 50_000_000
    assert first["payload_type"] == "bytes"
    assert len(second["payload_keys"]) == 20
    assert all(len(line) < 2_000 for line in sink.lines)


def test_log_boundary_survives_keys_that_cannot_be_printed(
    sink: MemorySink,
) -> None:
    """A payload key whose ``str`` raises is named by a placeholder."""

    class Opaque:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    core.log_boundary("ingest", "inbound", {Opaque(): 1, "a": 2})

    (line,) = sink.records()
    assert line["payload_keys"] == ["<unrepresentable Opaque>", "a"]


def test_log_event_is_written_at_its_severity(sink: MemorySink) -> None:
    """``log_event`` writes the event at the given severity."""
    core.log_event("cache.refreshed", entries=10)
    core.log_event("cache.stale", severity="warning")

    refreshed, stale = sink.records()
    assert refreshed["event"] == "cache.refreshed"
    assert refreshed["level"] == "info"
    assert refreshed["entries"] == 10
    assert stale["level"] == "warning"


def test_log_business_event_carries_kind_and_data(sink: MemorySink) -> None:
    """Business events keep the caller's name, kind and data."""
    core.log_business_event("order.placed", {"order_id": "o-1", "total": 9})

    (line,) = sink.records()
    assert line["event"] == "order.placed"
    assert line["event_kind"] == "business"
    assert line["data"] == {"order_id": "o-1", "total": 9}


def test_log_metric_writes_metric_recorded(sink: MemorySink) -> None:
    """Metrics are ``metric.recorded`` lines with name, value and unit."""
    core.log_metric("queue.depth", 4, unit="items", queue="jobs")
    core.log_metric("ratio", 0.5)

    depth, ratio = sink.records()
    assert depth["event"] == "metric.recorded"
    assert depth["metric"] == "queue.depth"
    assert depth["value"] == 4
    assert depth["unit"] == "items"
    assert depth["queue"] == "jobs"
    assert "unit" not in ratio


def test_unified_logger_repr_names_logger_and_layer() -> None:
    """The repr shows the logger name and layer."""
    assert repr(UnifiedLogger("a.b", "api")) == "UnifiedLogger('a.b', 'api')"


async def test_failures_of_different_items_are_each_written(
    sink: MemorySink,
) -> None:
    """An operation failing for three items writes three full failures."""
    infra = stratalog.get_unified_logger("items", "infrastructure")
    coordinator = LoggingCoordinator()
    coordinator.start_request()
    for item in range(3):
        try:
            async with infra.operation("fetch", item=item):
                raise ConnectionError(f"down {item}")
        except ConnectionError:
            pass
    try:
        async with infra.operation("fetch", item=0):
            raise ConnectionError("down 0 again")
    except ConnectionError:
        pass
    summary = coordinator.end_request()

    failed = [r for r in sink.records() if r["event"] == "operation.failed"]
    assert sorted(r["item"] for r in failed) == [0, 1, 2]
    assert all("Traceback" in r["exception"] for r in failed)
    assert summary["error_count"] == 3
    (repeat,) = [
        entry
        for key, entry in summary["dedup"]["keys"].items()
        if "operation.failed" in key
    ]
    assert repeat["suppressed"] == 1


def test_a_repr_that_logs_cannot_recurse(
    sink: MemorySink, capfd: pytest.CaptureFixture[str]
) -> None:
    """A line logged from inside rendering is dropped, once reported."""
    log = stratalog.get_unified_logger("loud", "core")

    class Loud:
        def __repr__(self) -> str:
            log.info("repr.called", obj=self)
            return "Loud()"

    log.info("hello", obj=Loud())
    log.info("again", obj=Loud())

    assert [r["event"] for r in sink.records()] == ["hello", "again"]
    assert sink.records()[0]["obj"] == "Loud()"
    assert capfd.readouterr().err.count("stratalog: recursion") == 1
