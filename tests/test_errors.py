"""Error cascade prevention: one traceback per failure, short references."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import stratalog
from stratalog.coordinator import LoggingCoordinator, emit_summary
from stratalog.errors import ErrorContext, ErrorRecord, format_exception
from stratalog.testing import MemorySink

coordinator = LoggingCoordinator()
api = stratalog.get_unified_logger("tests.errors.api", "api")
service = stratalog.get_unified_logger("tests.errors.service", "service")
infra = stratalog.get_unified_logger("tests.errors.infra", "infrastructure")


class QueryCanceledError(Exception):
    """What a database driver raises on a statement timeout."""


class ServiceError(Exception):
    """The service layer's own failure."""


def _failed(sink: MemorySink) -> list[dict[str, Any]]:
    return [r for r in sink.records() if r["level"] == "error"]


def _tracebacks(sink: MemorySink) -> list[dict[str, Any]]:
    return [r for r in sink.records() if "exception" in r]


def _raise_chained() -> None:
    try:
        raise KeyError("root")
    except KeyError as exc:
        raise ServiceError("wrapped") from exc


# -- ErrorContext -------------------------------------------------------------


def test_record_then_find_the_same_exception() -> None:
    """A recorded exception is found again, with its origin."""
    errors = ErrorContext()
    exc = ValueError("bad")

    record = errors.record(exc, "core", "parse")

    assert errors.find(exc) is record
    assert record.type == "ValueError"
    assert record.message == "bad"
    assert record.origin_layer == "core"
    assert record.origin_operation == "parse"
    assert record.layers == ["core"]
    assert record.error_id.startswith("err-")


def test_find_follows_raise_from() -> None:
    """``raise X from e`` is the same error as ``e``."""
    errors = ErrorContext()
    with pytest.raises(ServiceError) as caught:
        _raise_chained()
    cause = caught.value.__cause__
    assert cause is not None

    record = errors.record(cause, "core", None)

    assert errors.find(caught.value) is record


def test_find_follows_raised_while_handling() -> None:
    """An exception raised while handling ``e`` is the same error."""
    errors = ErrorContext()
    root = KeyError("root")
    record = errors.record(root, "core", None)

    with pytest.raises(RuntimeError) as caught:
        _raise_while_handling(root)

    assert errors.find(caught.value) is record


def _raise_while_handling(root: BaseException) -> None:
    try:
        raise root
    except KeyError:
        raise RuntimeError("during handling") from None


def test_unrelated_exception_is_not_found() -> None:
    """A different exception has no record."""
    errors = ErrorContext()
    errors.record(ValueError("a"), "core", None)

    assert errors.find(ValueError("a")) is None


def test_find_survives_a_cyclic_chain() -> None:
    """A chain that loops back on itself ends the search."""
    errors = ErrorContext()
    first, second = ValueError("a"), ValueError("b")
    first.__context__ = second
    second.__context__ = first

    assert errors.find(first) is None


def test_history_is_bounded_at_fifty_by_default() -> None:
    """The oldest errors leave the history; dropped ones are counted."""
    errors = ErrorContext()
    kept = [ValueError(str(i)) for i in range(60)]

    for exc in kept:
        errors.record(exc, "core", None)

    assert len(errors.records) == 50
    assert errors.dropped == 10
    assert errors.find(kept[0]) is None
    assert errors.find(kept[59]) is not None
    assert errors.summary()[0]["message"] == "10"


def test_request_error_history_uses_the_configured_bound(
    sink: MemorySink,
) -> None:
    """A request's error history holds ``max_error_history`` errors."""
    stratalog.configure(sink=sink, format="json", max_error_history=3)
    coordinator.start_request()
    for index in range(5):
        try:
            raise ValueError(f"bad {index}")
        except ValueError:
            service.exception("failed", detail=str(index))
    summary = coordinator.end_request()

    assert [e["message"] for e in summary["errors"]] == [
        "bad 2",
        "bad 3",
        "bad 4",
    ]
    assert summary["error_count"] == 5


def test_crossed_notes_each_layer_once_in_order() -> None:
    """Layers crossed are listed in order, without consecutive repeats."""
    record = ErrorRecord("err-1", "E", "m", "core", None)

    for layer in ("core", "core", "service", None, "api"):
        record.crossed(layer)

    assert record.layers == ["core", "service", "api"]


def test_message_of_unprintable_exception_is_a_placeholder() -> None:
    """An exception whose ``str`` raises still gets a message."""

    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    record = ErrorContext().record(Broken(), "core", None)

    assert record.message == "<unrepresentable Broken>"


def test_long_message_is_cut() -> None:
    """Messages are cut to 1,000 characters in the record."""
    record = ErrorContext().record(ValueError("m" * 5_000), "core", None)

    assert len(record.message) == 1_003


def test_format_exception_shows_the_chain() -> None:
    """The traceback text includes the cause once."""
    try:
        _raise_chained()
    except ServiceError as exc:
        text = format_exception(exc)

    assert text.count("KeyError: 'root'") == 1
    assert "ServiceError: wrapped" in text
    assert "direct cause" in text


# -- the cascade through operations and layers --------------------------------


async def _three_layers() -> None:
    async with (
        api.operation("handle"),
        service.operation("lookup"),
        infra.operation("query"),
    ):
        raise QueryCanceledError("statement timeout")


async def test_error_is_logged_in_full_once_where_first_seen(
    sink: MemorySink,
) -> None:
    """The innermost layer logs the traceback; outer ones a short line."""
    coordinator.start_request(correlation_id="casc-1")
    with pytest.raises(QueryCanceledError):
        await _three_layers()
    summary = coordinator.end_request()

    failed = _failed(sink)
    assert [line["layer"] for line in failed] == [
        "infrastructure",
        "service",
        "api",
    ]
    first, *outer = failed
    assert "QueryCanceledError: statement timeout" in first["exception"]
    assert first["error_type"] == "QueryCanceledError"
    assert first["error_message"] == "statement timeout"
    assert "propagated" not in first
    for line in outer:
        assert "exception" not in line
        assert line["propagated"] is True
        assert line["error_id"] == first["error_id"]
        assert line["error_type"] == "QueryCanceledError"
        assert line["error_message"] == "statement timeout"
        assert line["origin_layer"] == "infrastructure"
        assert line["origin_operation"] == "query"
        assert len(sink.lines[sink.records().index(line)]) < 1_000
    assert len(_tracebacks(sink)) == 1
    assert summary["error_count"] == 1
    (error,) = summary["errors"]
    assert error == {
        "error_id": first["error_id"],
        "type": "QueryCanceledError",
        "message": "statement timeout",
        "origin_layer": "infrastructure",
        "origin_operation": "query",
        "layers": ["infrastructure", "service", "api"],
    }


def test_log_exception_of_a_propagated_error_is_short(
    sink: MemorySink,
) -> None:
    """``log.exception`` for an error logged deeper writes a reference."""
    coordinator.start_request()
    try:
        with infra.operation("query"):
            raise QueryCanceledError("statement timeout")
    except QueryCanceledError:
        service.exception("service.failed")
    coordinator.end_request()

    failed, reference = _failed(sink)
    assert reference["event"] == "service.failed"
    assert reference["propagated"] is True
    assert reference["error_id"] == failed["error_id"]
    assert "exception" not in reference


def test_raise_from_counts_as_the_same_error(sink: MemorySink) -> None:
    """A wrapping ``raise ... from e`` passes outward as a reference."""
    coordinator.start_request()
    with pytest.raises(ServiceError):
        _wrap_with_raise_from()
    summary = coordinator.end_request()

    first, wrapped = _failed(sink)
    assert wrapped["propagated"] is True
    assert wrapped["error_type"] == "ServiceError"
    assert wrapped["error_id"] == first["error_id"]
    assert len(_tracebacks(sink)) == 1
    assert summary["error_count"] == 1


def _wrap_with_raise_from() -> None:
    with service.operation("lookup"):
        try:
            with infra.operation("query"):
                raise QueryCanceledError("timeout")
        except QueryCanceledError as exc:
            raise ServiceError("lookup failed") from exc


def _wrap_while_handling() -> None:
    with service.operation("lookup"):
        try:
            with infra.operation("query"):
                raise QueryCanceledError("timeout")
        except QueryCanceledError:
            raise RuntimeError("gave up") from None


def test_raised_while_handling_counts_as_the_same_error(
    sink: MemorySink,
) -> None:
    """An exception raised in an ``except`` block is the same failure."""
    coordinator.start_request()
    with pytest.raises(RuntimeError):
        _wrap_while_handling()
    summary = coordinator.end_request()

    assert len(_tracebacks(sink)) == 1
    assert summary["error_count"] == 1


def test_a_different_error_later_is_logged_in_full(sink: MemorySink) -> None:
    """A new failure in the same request gets its own full record."""
    coordinator.start_request()
    for exc in (QueryCanceledError("timeout"), KeyError("missing")):
        try:
            with infra.operation("query"):
                raise exc
        except Exception:
            pass
    summary = coordinator.end_request()

    first, second = _tracebacks(sink)
    assert first["error_id"] != second["error_id"]
    assert "KeyError" in second["exception"]
    assert [e["type"] for e in summary["errors"]] == [
        "QueryCanceledError",
        "KeyError",
    ]
    assert summary["error_type"] == "QueryCanceledError"


def _fail_in_a_job() -> None:
    with service.operation("job"), infra.operation("query"):
        raise QueryCanceledError("timeout")


def test_repeat_held_back_inside_is_a_reference_outside(
    sink: MemorySink,
) -> None:
    """A failure deduplicated where it happened is no new error further out.

    The second timeout's own line is held back as a repeat; the handler it
    passes through refers to the first one instead of showing a traceback.
    """
    coordinator.start_request()
    for handler in ("handler.a", "handler.b"):
        try:
            with service.operation(handler), infra.operation("query"):
                raise QueryCanceledError("timeout")
        except QueryCanceledError:
            pass
    summary = coordinator.end_request()

    failed = _failed(sink)
    assert [(r["layer"], r["operation"]) for r in failed] == [
        ("infrastructure", "query"),
        ("service", "handler.a"),
        ("service", "handler.b"),
    ]
    assert len(_tracebacks(sink)) == 1
    assert failed[2]["propagated"] is True
    assert failed[2]["error_id"] == failed[0]["error_id"]
    assert failed[2]["origin_layer"] == "infrastructure"
    assert summary["error_count"] == 1


def test_errors_outside_a_request_cascade_too(sink: MemorySink) -> None:
    """Background work has the same rule: one traceback per failure."""
    with pytest.raises(QueryCanceledError):
        _fail_in_a_job()

    failed = _failed(sink)
    assert len(failed) == 2
    assert len(_tracebacks(sink)) == 1
    assert failed[1]["propagated"] is True
    assert "correlation_id" not in failed[0]


def test_exc_info_accepts_an_exception_or_a_tuple(sink: MemorySink) -> None:
    """``exc_info`` may be an exception, an exc_info tuple or true."""
    coordinator.start_request()
    as_object = ValueError("object")
    service.error("a", exc_info=as_object)
    try:
        raise KeyError("tuple")
    except KeyError as exc:
        service.error("b", exc_info=(type(exc), exc, exc.__traceback__))
    coordinator.end_request()

    first, second = _failed(sink)
    assert first["error_type"] == "ValueError"
    assert second["error_type"] == "KeyError"
    assert "KeyError: 'tuple'" in second["exception"]


def test_c18_one_failure_through_every_layer(sink: MemorySink) -> None:
    """C18: one full traceback, short references, one error in the summary."""
    stratalog.configure(
        sink=sink,
        format="json",
        level="debug",
        thresholds={"repository": 0.1},
    )
    repository = stratalog.get_unified_logger(
        "tests.errors.repository", "repository"
    )
    ctx = coordinator.start_request(correlation_id="c18")

    def repository_select() -> None:
        with repository.operation("orders.select", layer="repository"):
            try:
                raise QueryCanceledError("statement timeout")
            except QueryCanceledError:
                repository.exception("repository.failed")
                raise

    def service_lookup() -> None:
        try:
            repository_select()
        except QueryCanceledError as exc:
            service.exception("service.failed")
            raise ServiceError("lookup failed") from exc

    try:
        try:
            service_lookup()
        except ServiceError:
            api.exception("api.failed")
            raise
    except ServiceError:
        api.exception("request.unhandled")
    try:
        raise KeyError("second, unrelated")
    except KeyError:
        api.exception("api.other_failure")
    summary = coordinator.end_request()
    emit_summary(summary, ctx)

    records = sink.records()
    full = _tracebacks(sink)
    assert len(full) == 2
    assert full[0]["event"] == "repository.failed"
    assert full[0]["layer"] == "repository"
    assert full[0]["exception"].count("Traceback") == 1
    assert full[1]["event"] == "api.other_failure"
    references = [
        r for r in records if r.get("error_id") == full[0]["error_id"]
    ]
    assert [r["event"] for r in references] == [
        "repository.failed",
        "operation.failed",
        "service.failed",
        "api.failed",
        "request.unhandled",
    ]
    assert all(r["propagated"] for r in references[1:])
    assert all(r["correlation_id"] == "c18" for r in records)
    assert summary["error"] is True
    assert summary["error_type"] == "QueryCanceledError"
    assert [e["type"] for e in summary["errors"]] == [
        "QueryCanceledError",
        "KeyError",
    ]
    assert summary["errors"][0]["origin_layer"] == "repository"
    assert summary["errors"][0]["origin_operation"] == "orders.select"
    assert summary["errors"][0]["layers"] == ["repository", "service", "api"]


async def test_a_task_group_failure_refers_to_its_children(
    sink: MemorySink,
) -> None:
    """An ExceptionGroup of logged failures adds no second traceback."""
    infra = stratalog.get_unified_logger("children", "infrastructure")
    service = stratalog.get_unified_logger("parent", "service")
    coordinator = LoggingCoordinator()
    coordinator.start_request()

    async def child(n: int) -> None:
        async with infra.operation("child", n=n):
            raise ConnectionError(f"child {n}")

    try:
        async with service.operation("outer"), asyncio.TaskGroup() as group:
            for n in range(3):
                group.create_task(child(n))
    except* ConnectionError:
        pass
    summary = coordinator.end_request()

    failed = [r for r in sink.records() if r["event"] == "operation.failed"]
    (outer,) = [r for r in failed if r["operation"] == "outer"]
    assert outer["propagated"] is True
    assert "exception" not in outer
    assert sum("exception" in r for r in failed) == 3
    assert summary["error_count"] == 3
