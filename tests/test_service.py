"""Tests for stratalog.service: the eight steps of execute_operation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stratalog.coordinator import LoggingCoordinator
from stratalog.exceptions import ValidationError
from stratalog.logger import get_unified_logger
from stratalog.service import BaseService, snake_case
from stratalog.testing import MemorySink, capture_logs


class OrderService(BaseService):
    """A service with one operation of each kind."""

    async def place(self, order: dict[str, Any]) -> dict[str, Any]:
        return await self.execute_operation(
            "place_order",
            self._store,
            order,
            validate_inputs=self._valid,
            transform_result=self._receipt,
        )

    async def _store(self, order: dict[str, Any]) -> int:
        await asyncio.sleep(0)
        return 42

    def _valid(self, order: dict[str, Any]) -> bool:
        return bool(order.get("items"))

    def _receipt(self, order_id: int) -> dict[str, Any]:
        return {"order_id": order_id}


class Broken(Exception):
    """A failure inside the work itself."""


def events(sink: MemorySink, name: str) -> list[dict[str, Any]]:
    """Return the records of event *name*."""
    return [r for r in sink.records() if r["event"] == name]


def tracebacks(sink: MemorySink) -> list[dict[str, Any]]:
    """Return the records that carry a full traceback."""
    return [r for r in sink.records() if "exception" in r]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("OrderService", "order_service", id="camel"),
        pytest.param("HTTPService", "http_service", id="acronym"),
        pytest.param("LLMRouterV2", "llm_router_v2", id="digits"),
        pytest.param("plain", "plain", id="lower"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    """Class names become snake_case service names."""
    assert snake_case(name) == expected


def test_name_defaults_to_the_class_and_names_the_logger() -> None:
    """The service name and logger come from the class unless given."""
    service = OrderService()
    named = OrderService("orders")

    assert service.service_name == "order_service"
    assert service.logger.logger_name == "service.order_service"
    assert service.logger.layer == "service"
    assert named.logger.logger_name == "service.orders"


async def test_async_operation_runs_all_steps(sink: MemorySink) -> None:
    """Inbound, timed operation, outbound and a business event, in order."""
    service = OrderService()
    ctx = LoggingCoordinator().start_request()
    receipt = await service.place({"items": [1, 2]})

    assert receipt == {"order_id": 42}
    names = [
        r["event"]
        for r in sink.records()
        if r["level"] != "debug" and r.get("logger") == "service.order_service"
    ]
    assert names == [
        "boundary.inbound",
        "operation.completed",
        "boundary.outbound",
        "order_service.place_order.completed",
    ]
    (inbound,) = events(sink, "boundary.inbound")
    assert inbound["payload_keys"] == ["items"]
    (outbound,) = events(sink, "boundary.outbound")
    assert outbound["payload_keys"] == ["order_id"]
    (business,) = events(sink, "order_service.place_order.completed")
    assert business["event_kind"] == "business"
    assert business["correlation_id"] == ctx.correlation_id


async def test_sync_function_and_callbacks_in_the_async_path(
    sink: MemorySink,
) -> None:
    """Plain callables work in execute_operation; results are not awaited."""
    service = BaseService("calc")
    result = await service.execute_operation(
        "double",
        lambda x: x * 2,
        21,
        validate_inputs=lambda x: x > 0,
        transform_result=lambda r: r + 0.5,
    )

    assert result == 42.5


async def test_async_callbacks_are_awaited(sink: MemorySink) -> None:
    """Coroutine validators and transformers are awaited."""

    async def positive(x: int) -> bool:
        return x > 0

    async def label(r: int) -> str:
        return f"#{r}"

    service = BaseService("calc")
    result = await service.execute_operation(
        "ident",
        lambda x: x,
        7,
        validate_inputs=positive,
        transform_result=label,
    )

    assert result == "#7"


async def test_awaitable_from_a_plain_callable_is_awaited(
    sink: MemorySink,
) -> None:
    """What decides is the result: a lambda returning a coroutine works."""

    async def fetch() -> str:
        return "fetched"

    service = BaseService("calc")
    assert await service.execute_operation("fetch", lambda: fetch()) == (
        "fetched"
    )


async def test_falsy_validator_rejects_with_a_warning(
    sink: MemorySink,
) -> None:
    """A falsy verdict raises ValidationError; the work never runs."""
    service = OrderService()
    calls: list[int] = []
    LoggingCoordinator().start_request()
    with pytest.raises(ValidationError) as raised:
        await service.execute_operation(
            "place_order",
            calls.append,
            1,
            validate_inputs=lambda x: 0,
        )

    assert isinstance(raised.value, ValueError)
    assert "returned 0" in str(raised.value)
    assert calls == []
    (warning,) = events(sink, "operation.rejected")
    assert warning["level"] == "warning"
    assert warning["outcome"] == "rejected"
    (line,) = events(sink, "operation.completed")
    assert line["outcome"] == "rejected"
    assert events(sink, "operation.failed") == []
    assert events(sink, "boundary.outbound") == []
    assert service.rejections == 1
    assert service.failures == 0


async def test_raising_validator_is_chained(sink: MemorySink) -> None:
    """The validator's own error is the rejection's cause."""

    def strict(order: dict[str, Any]) -> bool:
        raise KeyError("items")

    service = OrderService()
    with pytest.raises(ValidationError) as raised:
        await service.execute_operation(
            "place_order", service._store, {}, validate_inputs=strict
        )

    assert isinstance(raised.value.__cause__, KeyError)
    assert "KeyError" in str(raised.value)
    assert events(sink, "operation.failed") == []


async def test_rejection_crossing_an_outer_operation_has_one_traceback(
    sink: MemorySink,
) -> None:
    """An outer layer refers to the rejection instead of repeating it."""
    api = get_unified_logger("api.orders", "api")
    LoggingCoordinator().start_request()
    with pytest.raises(ValidationError):
        async with api.operation("post_order"):
            await OrderService().place({})

    (full,) = tracebacks(sink)
    assert full["event"] == "operation.rejected"
    (outer,) = events(sink, "operation.failed")
    assert outer["propagated"] is True
    assert outer["origin_layer"] == "service"
    assert outer["origin_operation"] == "place_order"


async def test_failure_propagates_unchanged_with_one_traceback(
    sink: MemorySink,
) -> None:
    """The work's error reaches the caller as itself, logged once in full."""
    error = Broken("disk full")

    async def store() -> None:
        raise error

    service = BaseService("orders")
    api = get_unified_logger("api.orders", "api")
    coordinator = LoggingCoordinator()
    ctx = coordinator.start_request()
    with pytest.raises(Broken) as raised:
        async with api.operation("post_order"):
            await service.execute_operation("place_order", store)
    summary = coordinator.end_request(ctx)

    assert raised.value is error
    (full,) = tracebacks(sink)
    assert full["operation"] == "place_order"
    assert full["layer"] == "service"
    failed = events(sink, "operation.failed")
    assert [r.get("propagated", False) for r in failed] == [False, True]
    assert events(sink, "order_service.place_order.completed") == []
    assert summary["errors"][0]["origin_layer"] == "service"
    assert service.failures == 1


async def test_cancellation_is_not_a_failure(sink: MemorySink) -> None:
    """A cancelled operation is logged as cancelled and not counted."""
    service = BaseService("slow")
    task = asyncio.create_task(
        service.execute_operation("wait", asyncio.sleep, 10)
    )
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert service.failures == 0
    assert len(events(sink, "operation.cancelled")) == 1


def test_sync_twin_runs_the_same_steps(sink: MemorySink) -> None:
    """execute_operation_sync validates, runs and transforms."""
    service = BaseService("calc")
    result = service.execute_operation_sync(
        "double",
        lambda x: x * 2,
        4,
        validate_inputs=lambda x: x > 0,
        transform_result=str,
    )

    assert result == "8"
    assert len(events(sink, "calc.double.completed")) == 1
    with pytest.raises(ValidationError):
        service.execute_operation_sync(
            "double", lambda x: x, -1, validate_inputs=lambda x: x > 0
        )
    assert service.rejections == 1


@pytest.mark.parametrize(
    "where",
    [pytest.param(w, id=w) for w in ("func", "validator", "transform")],
)
def test_sync_twin_refuses_awaitables(sink: MemorySink, where: str) -> None:
    """An awaitable from any callable raises TypeError, unawaited safely."""

    async def coroutine(*args: Any) -> bool:
        return True

    callables: dict[str, Any] = {
        "func": lambda: 1,
        "validator": lambda: True,
        "transform": lambda r: r,
    }
    callables[where] = coroutine
    service = BaseService("calc")
    with pytest.raises(TypeError, match="execute_operation instead"):
        service.execute_operation_sync(
            "op",
            callables["func"],
            validate_inputs=callables["validator"],
            transform_result=callables["transform"],
        )


def test_business_events_and_metrics(sink: MemorySink) -> None:
    """The helpers write business events and tagged metric lines."""
    service = BaseService("billing")
    service.log_business_event(
        "invoice.sent", {"amount": 12}, severity="warning"
    )
    service.log_metric("invoice.amount", 12.0, "EUR", region="eu")

    (event,) = events(sink, "invoice.sent")
    assert event["level"] == "warning"
    assert event["event_kind"] == "business"
    assert event["data"] == {"amount": 12}
    (metric,) = events(sink, "metric.recorded")
    assert metric["metric"] == "invoice.amount"
    assert metric["unit"] == "EUR"
    assert metric["service"] == "billing"
    assert metric["region"] == "eu"


def test_business_event_on_success_can_be_turned_off() -> None:
    """``record_business_events = False`` drops the automatic event."""

    class Quiet(BaseService):
        record_business_events = False

    with capture_logs() as captured:
        Quiet().execute_operation_sync("op", lambda: 1)

    assert all(r.get("event_kind") != "business" for r in captured)


async def test_health_check_reports_counts(sink: MemorySink) -> None:
    """health_check names the service and counts operations and failures."""
    service = BaseService("orders")
    await service.execute_operation("ok", lambda: 1)
    with pytest.raises(Broken):
        await service.execute_operation("bad", _raise_broken)

    health = await service.health_check()
    assert health["status"] == "healthy"
    assert health["service"] == "orders"
    assert health["operations"] == 2
    assert health["failures"] == 1
    assert health["uptime_s"] >= 0


def _raise_broken() -> None:
    raise Broken("no")


async def test_the_completion_event_is_written_once_per_request(
    sink: MemorySink,
) -> None:
    """Repeating an operation in one request repeats no completion event."""

    class Lookups(BaseService):
        pass

    service = Lookups()
    coordinator = LoggingCoordinator()
    coordinator.start_request()
    for n in range(5):
        await service.execute_operation("find", lambda n: n, n)
    coordinator.end_request()

    events = [r for r in sink.records() if r.get("event_kind") == "business"]
    assert [r["event"] for r in events] == ["lookups.find.completed"]
