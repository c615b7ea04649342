"""Tests for stratalog.external against a real, misbehaving HTTP server."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis.asyncio
from hypothesis import given
from hypothesis import strategies as st

import stratalog
from _flaky_server import FlakyServer, hang, ok, reset, status
from stratalog import _diagnostics
from stratalog._external_metrics import (
    LATENCY_WINDOW,
    ClientMetrics,
    percentiles,
)
from stratalog._retry import RetryPolicy
from stratalog.breaker import CircuitBreakerConfig, RedisBreakerState
from stratalog.coordinator import LoggingCoordinator, emit_summary
from stratalog.exceptions import CircuitOpenError, ResponseValidationError
from stratalog.external import (
    BaseExternalClient,
    HTTPExternalClient,
    add_header_provider,
    remove_header_provider,
)
from stratalog.logger import get_unified_logger
from stratalog.testing import MemorySink

# The policy of case C19: four attempts, 0.2 s base, anything but
# ValueError is retryable (the built-in rules still refuse 4xx).
C19_POLICY = RetryPolicy(
    max_attempts=4,
    base_delay=0.2,
    retry_on=lambda error: not isinstance(error, ValueError),
)
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def server() -> Iterator[FlakyServer]:
    """A fresh flaky server for the test."""
    with FlakyServer() as running:
        yield running


@pytest.fixture
async def api(server: FlakyServer) -> AsyncIterator[HTTPExternalClient]:
    """A client of the flaky server with quick retries and a short timeout."""
    async with HTTPExternalClient(
        "api", server.base_url, http_timeout=2.0, retry=FAST_RETRY
    ) as client:
        yield client


def lines(sink: MemorySink, event: str) -> list[dict[str, Any]]:
    """Return the records of *event*, oldest first."""
    return [r for r in sink.records() if r["event"] == event]


def tracebacks(sink: MemorySink) -> list[dict[str, Any]]:
    """Return the records that carry a full traceback."""
    return [r for r in sink.records() if "exception" in r]


def failure_count(client: BaseExternalClient) -> int:
    """Return the breaker's consecutive failure count."""
    assert client.breaker is not None
    return client.breaker.failure_count


# -- the happy path -----------------------------------------------------------


async def test_success_logs_boundaries_and_one_timed_operation(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """A 200 writes inbound, the operation and outbound, in that order."""
    ctx = LoggingCoordinator().start_request()
    response = await api.get("/ok", operation="fetch")
    LoggingCoordinator().end_request(ctx)

    assert response.json() == {"ok": True}
    events = [
        r["event"]
        for r in sink.records()
        if r.get("operation") == "fetch" and r["level"] != "debug"
    ]
    assert events == [
        "boundary.inbound",
        "operation.completed",
        "boundary.outbound",
    ]
    (done,) = lines(sink, "operation.completed")
    assert done["layer"] == "infrastructure"
    assert done["logger"] == "external.api"
    assert done["attempts"] == 1
    assert done["outcome"] == "ok"
    assert done["correlation_id"] == ctx.correlation_id


async def test_outcome_reaches_the_request_summary(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """Calls, attempts and retries add up under ``external.<c>.<op>``."""
    server.script("/x", status(500), ok())
    coordinator = LoggingCoordinator()
    ctx = coordinator.start_request()
    await api.get("/x", operation="fetch")
    await api.get("/x", operation="fetch")
    summary = coordinator.end_request(ctx)

    assert summary["attributes"]["external.api.fetch"] == {
        "calls": 2,
        "attempts": 3,
        "retries": 1,
        "outcome": "ok",
        "breaker_state": "closed",
    }
    assert "infrastructure_layer" in summary["request_timeline"]
    assert summary["operations"]["infrastructure.fetch"]["count"] == 2


async def test_every_attempt_is_logged_with_its_number(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """Each attempt has a debug line with its number and correlation id."""
    server.script("/x", status(502), status(503), ok())
    ctx = LoggingCoordinator().start_request()
    await api.get("/x", operation="fetch")

    started = lines(sink, "external.call.started")
    assert [r["attempt"] for r in started] == [1, 2, 3]
    assert {r["correlation_id"] for r in started} == {ctx.correlation_id}
    retried = lines(sink, "external.retry.scheduled")
    assert [r["attempt"] for r in retried] == [2, 3]
    assert all(r["level"] == "warning" for r in retried)
    assert {r["error_type"] for r in retried} == {"HTTPStatusError"}
    assert {r["failure_kind"] for r in retried} == {"http_5xx"}
    (recovered,) = lines(sink, "external.call.succeeded")
    assert recovered["attempts"] == 3


# -- headers ------------------------------------------------------------------


async def test_request_id_and_provider_headers_are_sent(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """X-Request-ID carries the correlation id; providers add theirs."""

    def trace() -> dict[str, str]:
        return {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}

    add_header_provider(trace)
    try:
        ctx = LoggingCoordinator().start_request()
        await api.get("/h", headers={"X-Extra": "yes"})
    finally:
        remove_header_provider(trace)

    (seen,) = server.seen("/h")
    assert seen.headers["x-request-id"] == ctx.correlation_id
    assert seen.headers["traceparent"].startswith("00-111")
    assert seen.headers["x-extra"] == "yes"


async def test_request_id_header_can_be_turned_off(
    sink: MemorySink, server: FlakyServer
) -> None:
    """With ``request_id_header=None`` no request id leaves the process."""
    async with HTTPExternalClient(
        "quiet", server.base_url, request_id_header=None
    ) as client:
        LoggingCoordinator().start_request()
        await client.get("/h")

    assert "x-request-id" not in server.seen("/h")[0].headers


async def test_failing_header_provider_is_skipped(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """A provider that raises costs its headers, not the request."""

    def broken() -> dict[str, str]:
        raise RuntimeError("no span")

    add_header_provider(broken)
    try:
        response = await api.get("/h")
    finally:
        remove_header_provider(broken)

    assert response.status_code == 200
    assert _diagnostics.counts()["external.header_provider"] == 1


# -- injected faults ----------------------------------------------------------


async def test_latency_past_the_timeout_is_a_timeout(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """A slow answer past ``timeout`` raises TimeoutError, counted so."""
    server.script("/slow", ok(delay=1.0))
    with pytest.raises(TimeoutError):
        await api.get("/slow", timeout=0.1, retries=0)

    metrics = api.get_metrics()
    assert metrics["timeouts"] == 1
    assert metrics["failures_by_kind"]["timeout"] == 1
    (failed,) = lines(sink, "external.call.failed")
    assert failed["failure_kind"] == "timeout"
    assert failed["attempted"] is True


async def test_slow_first_attempt_is_retried_within_its_timeout(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """An attempt cut off by its timeout is retried like any timeout."""
    server.script("/slow", ok(delay=1.0), ok())
    response = await api.get("/slow", timeout=0.2)

    assert response.status_code == 200
    assert server.count("/slow") == 2


async def test_connection_reset_is_retried(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """A reset mid-response counts as a connection failure and is retried."""
    server.script("/r", reset(), ok())
    response = await api.get("/r")

    assert response.status_code == 200
    (retried,) = lines(sink, "external.retry.scheduled")
    assert retried["failure_kind"] == "connection"


async def test_exhausted_retries_raise_the_last_error_once(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """After the last attempt the real error propagates, logged once."""
    server.script("/down", status(500))
    LoggingCoordinator().start_request()
    with pytest.raises(httpx.HTTPStatusError) as raised:
        await api.get("/down", operation="fetch")

    assert raised.value.response.status_code == 500
    assert server.count("/down") == 3
    (failed,) = lines(sink, "external.call.failed")
    assert failed["attempts"] == 3
    assert failed["retries"] == 2
    assert failed["outcome"] == "error"
    assert failed["failure_kind"] == "http_5xx"
    assert failed["error_type"] == "HTTPStatusError"
    assert failed["attempted"] is True
    assert len(tracebacks(sink)) == 1


async def test_one_traceback_when_the_failure_crosses_layers(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """Outer operations refer to the external failure, never repeat it."""
    server.script("/down", status(503))
    service = get_unified_logger("svc", "service")
    coordinator = LoggingCoordinator()
    ctx = coordinator.start_request()
    with pytest.raises(httpx.HTTPStatusError):
        async with service.operation("place_order"):
            await api.get("/down", operation="fetch", retries=0)
    summary = coordinator.end_request(ctx)

    (full,) = tracebacks(sink)
    assert full["event"] == "external.call.failed"
    outer = [
        r
        for r in lines(sink, "operation.failed")
        if r["operation"] == "place_order"
    ]
    assert outer[0]["propagated"] is True
    assert outer[0]["origin_layer"] == "infrastructure"
    (error,) = summary["errors"]
    assert error["origin_layer"] == "infrastructure"
    assert error["origin_operation"] == "fetch"


async def test_overall_deadline_bounds_all_attempts(
    sink: MemorySink, server: FlakyServer
) -> None:
    """The policy deadline ends a call of hanging attempts in time."""
    server.script("/h", hang())
    policy = RetryPolicy(max_attempts=10, base_delay=0.01, deadline=0.5)
    async with HTTPExternalClient(
        "api", server.base_url, retry=policy
    ) as client:
        began = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.get("/h", timeout=0.2)
        took = time.monotonic() - began

    assert took < 1.5
    assert 2 <= server.count("/h") <= 4


# -- C19: never retry cancellation or client errors ---------------------------


async def test_c19a_cancellation_stops_the_call_at_once(
    sink: MemorySink,
) -> None:
    """wait_for cancels the only attempt; nothing retries afterwards."""
    client = BaseExternalClient("slow", retry=C19_POLICY)
    calls = 0

    async def fetch_slow() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)
        return "late"

    LoggingCoordinator().start_request()
    began = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.call_external("get", fetch_slow), 0.05)
    took = time.monotonic() - began
    await asyncio.sleep(1.0)

    assert took < 0.5
    assert calls == 1
    assert lines(sink, "external.retry.scheduled") == []
    assert failure_count(client) == 0
    (cancelled,) = lines(sink, "operation.cancelled")
    assert cancelled["attempts"] == 1
    assert client.get_metrics()["cancelled"] == 1


async def test_c19a_against_a_hanging_server(
    sink: MemorySink, server: FlakyServer
) -> None:
    """Cancelling a real request that hangs sends no second request."""
    server.script("/h", hang())
    async with HTTPExternalClient(
        "api", server.base_url, retry=C19_POLICY
    ) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get("/h"), 0.05)
        await asyncio.sleep(1.0)

        assert server.count("/h") == 1
        assert failure_count(client) == 0


async def test_cancellation_during_backoff_ends_the_retries(
    sink: MemorySink, server: FlakyServer
) -> None:
    """Cancelled while waiting to retry: no further attempt ever runs."""
    server.script("/down", status(503, retry_after="1"))
    async with HTTPExternalClient(
        "api", server.base_url, retry=C19_POLICY
    ) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get("/down"), 0.3)
        await asyncio.sleep(1.2)

        assert server.count("/down") == 1
        assert failure_count(client) == 1
    assert len(lines(sink, "external.retry.scheduled")) == 1
    assert lines(sink, "external.call.failed") == []


async def test_c19b_client_errors_are_attempted_once(
    sink: MemorySink, server: FlakyServer
) -> None:
    """401, 404 and 400 each make one attempt and leave the breaker be."""
    server.script("/auth", status(401), status(404), status(400))
    async with HTTPExternalClient(
        "api", server.base_url, retry=C19_POLICY
    ) as client:
        for expected in (401, 404, 400):
            before = server.count("/auth")
            with pytest.raises(httpx.HTTPStatusError) as raised:
                await client.get("/auth")

            assert raised.value.response.status_code == expected
            assert server.count("/auth") == before + 1
            assert failure_count(client) == 0

    assert lines(sink, "external.retry.scheduled") == []
    kinds = [r["failure_kind"] for r in lines(sink, "external.call.failed")]
    assert kinds == ["http_4xx"] * 3


async def test_c19c_retry_after_is_honoured(
    sink: MemorySink, server: FlakyServer
) -> None:
    """503 with Retry-After: 1 then 200: the retry waits at least 1 s."""
    server.script("/busy", status(503, retry_after="1"), ok())
    async with HTTPExternalClient(
        "api", server.base_url, retry=C19_POLICY
    ) as client:
        response = await client.get("/busy")

    first, second = server.seen("/busy")
    assert response.status_code == 200
    assert second.at - first.at >= 1.0
    (retried,) = lines(sink, "external.retry.scheduled")
    assert retried["delay_s"] >= 1.0


async def test_c19d_too_many_requests_is_retried(
    sink: MemorySink, server: FlakyServer
) -> None:
    """429 then 200 takes two attempts, waiting what retry-after-ms asks."""
    server.script("/rate", status(429, retry_after_ms="200"), ok())
    async with HTTPExternalClient(
        "api", server.base_url, retry=C19_POLICY
    ) as client:
        response = await client.get("/rate")

    first, second = server.seen("/rate")
    assert response.status_code == 200
    assert second.at - first.at >= 0.2


def test_c19e_keyboard_interrupt_propagates_at_once() -> None:
    """A sync callee's KeyboardInterrupt is raised, never retried."""
    client = BaseExternalClient("sync", retry=C19_POLICY)
    calls = 0

    def interrupted() -> None:
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt

    async def main() -> None:
        await client.call_external("get", interrupted)

    began = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())

    assert time.monotonic() - began < 1.0
    assert calls == 1
    assert failure_count(client) == 0


# -- C20: a breaker trip keeps the real error ---------------------------------


async def test_c20_trip_surfaces_read_timeout_then_short_circuits(
    sink: MemorySink, server: FlakyServer
) -> None:
    """Calls 1-3 raise ReadTimeout, call 4 CircuitOpenError unsent."""
    server.script("/h", hang())
    breaker = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=30)
    coordinator = LoggingCoordinator()
    async with HTTPExternalClient(
        "llm", server.base_url, http_timeout=0.2, circuit_breaker=breaker
    ) as client:
        for _ in range(3):
            ctx = coordinator.start_request()
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/h", operation="complete")
            coordinator.end_request(ctx)
        ctx = coordinator.start_request()
        with pytest.raises(CircuitOpenError) as refused:
            await client.get("/h", operation="complete")
        coordinator.end_request(ctx)

    assert refused.value.attempted is False
    assert server.count("/h") == 3
    failed = lines(sink, "external.call.failed")
    assert [r["error_type"] for r in failed] == ["ReadTimeout"] * 3
    assert {r["outcome"] for r in failed} == {"error"}
    assert {r["attempted"] for r in failed} == {True}
    (opened,) = lines(sink, "circuit.opened")
    assert opened["level"] == "warning"
    assert (opened["from_state"], opened["to_state"]) == ("closed", "open")
    assert opened["failures"] == 3
    assert opened["client"] == "llm"
    (short,) = lines(sink, "external.call.short_circuited")
    assert short["outcome"] == "short_circuited"
    assert short["attempted"] is False
    assert client.get_metrics()["short_circuits"] == 1


async def test_short_circuit_is_recorded_once_across_layers(
    sink: MemorySink,
) -> None:
    """Outer layers refer to the refusal instead of tracing it again."""
    client = BaseExternalClient(
        "llm", circuit_breaker=CircuitBreakerConfig(failure_threshold=1)
    )

    async def failing() -> None:
        raise ConnectionResetError("reset")

    service = get_unified_logger("svc", "service")
    coordinator = LoggingCoordinator()
    with pytest.raises(ConnectionResetError):
        await client.call_external("complete", failing)
    ctx = coordinator.start_request()
    with pytest.raises(CircuitOpenError):
        async with service.operation("answer"):
            await client.call_external("complete", failing)
    summary = coordinator.end_request(ctx)

    (outer,) = lines(sink, "operation.failed")[-1:]
    assert outer["operation"] == "answer"
    assert outer["propagated"] is True
    assert outer["origin_layer"] == "infrastructure"
    assert summary["errors"][0]["type"] == "CircuitOpenError"
    assert summary["attributes"]["external.llm.complete"]["outcome"] == (
        "short_circuited"
    )


async def tripped_client() -> BaseExternalClient:
    """Return a client whose breaker one failure has opened."""
    client = BaseExternalClient(
        "llm", circuit_breaker=CircuitBreakerConfig(failure_threshold=1)
    )

    async def failing() -> None:
        raise ConnectionResetError("reset")

    with pytest.raises(ConnectionResetError):
        await client.call_external("complete", failing)

    return client


async def refused_through_two_layers(client: BaseExternalClient) -> None:
    """Call *client* inside a service operation inside an api operation."""
    api = get_unified_logger("app", "api")
    service = get_unified_logger("svc", "service")

    async def never() -> None:
        raise AssertionError("a refused call must not be made")

    async def handle() -> None:
        async with api.operation("handle"), service.operation("answer"):
            await client.call_external("complete", never)

    with pytest.raises(CircuitOpenError):
        await handle()


def refused_operations(sink: MemorySink) -> list[dict[str, Any]]:
    """Return the failure lines of operations the refusal ended."""
    return [
        r
        for r in lines(sink, "operation.failed")
        if r["error_type"] == "CircuitOpenError"
    ]


def refusal_lines(sink: MemorySink) -> list[bytes]:
    """Return the raw lines that mention the refusal."""
    return [line for line in sink.lines if b"CircuitOpenError" in line]


async def test_a_short_circuit_is_written_as_a_decision(
    sink: MemorySink,
) -> None:
    """The refusal line has its facts and no traceback; nor has any line."""
    client = await tripped_client()
    coordinator = LoggingCoordinator()
    ctx = coordinator.start_request()
    await refused_through_two_layers(client)
    summary = coordinator.end_request(ctx)
    emit_summary(summary, ctx)

    (short,) = lines(sink, "external.call.short_circuited")
    assert short["level"] == "warning"
    assert short["error_type"] == "CircuitOpenError"
    assert short["attempted"] is False
    assert short["outcome"] == "short_circuited"
    assert short["breaker_state"] == "open"
    assert short["retry_in_s"] > 0
    assert "exception" not in short
    outer = refused_operations(sink)
    assert [r["layer"] for r in outer] == ["service", "api"]
    assert {r["propagated"] for r in outer} == {True}
    assert {r["error_id"] for r in outer} == {short["error_id"]}
    (error,) = summary["errors"]
    assert error["error_id"] == short["error_id"]
    assert error["layers"] == ["infrastructure", "service", "api"]
    assert len(refusal_lines(sink)) == 4
    for line in refusal_lines(sink):
        assert b"Traceback" not in line


async def test_a_filtered_short_circuit_still_spares_outer_tracebacks() -> (
    None
):
    """Below the warning level, outer failure lines still only refer to it."""
    sink = MemorySink()
    stratalog.configure(sink=sink, format="json", level="error")
    client = await tripped_client()
    coordinator = LoggingCoordinator()
    ctx = coordinator.start_request()
    await refused_through_two_layers(client)
    coordinator.end_request(ctx)

    assert lines(sink, "external.call.short_circuited") == []
    outer = refused_operations(sink)
    assert [r["layer"] for r in outer] == ["service", "api"]
    assert {r.get("propagated") for r in outer} == {True}
    for line in refusal_lines(sink):
        assert b"Traceback" not in line


async def test_repeated_short_circuits_are_one_error_of_the_request(
    sink: MemorySink,
) -> None:
    """Refusals repeated in a request: one line, one error, counted."""
    client = await tripped_client()
    coordinator = LoggingCoordinator()
    ctx = coordinator.start_request()
    for _ in range(5):
        await refused_through_two_layers(client)
    summary = coordinator.end_request(ctx)

    assert len(lines(sink, "external.call.short_circuited")) == 1
    assert [e["type"] for e in summary["errors"]] == ["CircuitOpenError"]
    assert summary["attributes"]["external.llm.complete"]["calls"] == 5
    for line in refusal_lines(sink):
        assert b"Traceback" not in line


async def test_short_circuits_outside_a_request_are_errors_of_their_own(
    sink: MemorySink,
) -> None:
    """Without a request, each refusal is its own error, still untraced."""
    client = await tripped_client()
    for _ in range(2):
        await refused_through_two_layers(client)

    shorts = lines(sink, "external.call.short_circuited")
    assert len(shorts) == 2
    assert len({r["error_id"] for r in shorts}) == 2
    outer = refused_operations(sink)
    assert [r["error_id"] for r in outer] == [
        shorts[0]["error_id"],
        shorts[0]["error_id"],
        shorts[1]["error_id"],
        shorts[1]["error_id"],
    ]
    for line in refusal_lines(sink):
        assert b"Traceback" not in line


async def test_breaker_half_opens_and_closes_with_lines(
    sink: MemorySink, server: FlakyServer
) -> None:
    """After the recovery timeout a good probe closes the circuit."""
    server.script("/x", status(500), ok())
    breaker = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=0.1)
    async with HTTPExternalClient(
        "api", server.base_url, circuit_breaker=breaker
    ) as client:
        with pytest.raises(httpx.HTTPStatusError):
            await client.get("/x")
        assert (await client.health_check())["status"] == "unhealthy"
        await asyncio.sleep(0.15)
        await client.get("/x")

    events = [
        r["event"] for r in sink.records() if r["event"][:8] == "circuit."
    ]
    assert events == [
        "circuit.opened",
        "circuit.half_opened",
        "circuit.closed",
    ]
    assert {r["level"] for r in lines(sink, "circuit.closed")} == {"info"}


async def test_retry_refused_by_the_breaker_raises_the_real_error(
    sink: MemorySink, server: FlakyServer
) -> None:
    """When the breaker opens between attempts, the 500 is what surfaces."""
    server.script("/down", status(500))
    breaker = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=30)
    async with HTTPExternalClient(
        "api", server.base_url, circuit_breaker=breaker, retry=FAST_RETRY
    ) as client:
        with pytest.raises(httpx.HTTPStatusError):
            await client.get("/down")

    assert server.count("/down") == 2
    (failed,) = lines(sink, "external.call.failed")
    assert (failed["attempts"], failed["retries"]) == (2, 1)
    assert failed["breaker_state"] == "open"
    assert client.get_metrics()["retries"] == 1


async def test_without_a_breaker_nothing_short_circuits(
    sink: MemorySink, server: FlakyServer
) -> None:
    """``circuit_breaker=None`` lets every call through."""
    server.script("/down", status(500))
    async with HTTPExternalClient(
        "api", server.base_url, circuit_breaker=None
    ) as client:
        LoggingCoordinator().start_request()
        for _ in range(8):
            with pytest.raises(httpx.HTTPStatusError):
                await client.get("/down", operation="fetch")
        ctx = LoggingCoordinator().end_request()

    assert server.count("/down") == 8
    assert ctx["attributes"]["external.api.fetch"]["breaker_state"] is None


# -- validation and transformation --------------------------------------------


async def test_rejected_response_is_not_retried(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """A falsy validator verdict raises once; the breaker saw a success."""
    server.script("/v", ok(b'{"ok": false}'))
    with pytest.raises(ResponseValidationError) as raised:
        await api.get("/v", validate_response=lambda r: r.json()["ok"])

    assert raised.value.attempted is True
    assert server.count("/v") == 1
    assert failure_count(api) == 0
    metrics = api.get_metrics()
    assert metrics["failures_by_kind"]["validation"] == 1
    (failed,) = lines(sink, "external.call.failed")
    assert failed["failure_kind"] == "validation"


async def test_raising_validator_is_chained(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """A validator's own error becomes the cause of the rejection."""

    async def strict(response: httpx.Response) -> bool:
        raise KeyError("choices")

    with pytest.raises(ResponseValidationError) as raised:
        await api.get("/v", validate_response=strict)

    assert isinstance(raised.value.__cause__, KeyError)


async def test_transform_maps_the_accepted_result(sink: MemorySink) -> None:
    """Sync and async transforms both shape what the caller gets."""
    client = BaseExternalClient("calc")

    async def answer(x: int) -> int:
        return x * 2

    async def plus_one(x: int) -> int:
        return x + 1

    assert await client.call_external("a", answer, 4, transform_response=str)
    result = await client.call_external(
        "a", answer, 4, transform_response=plus_one
    )
    assert result == 9


# -- sync callees -------------------------------------------------------------


async def test_sync_callee_runs_off_the_event_loop(sink: MemorySink) -> None:
    """A blocking callee leaves the loop free; its lines keep the ids."""
    client = BaseExternalClient("blocking")
    logger = get_unified_logger("blocking.sdk", "infrastructure")
    threads: list[str] = []
    ticks = 0

    def blocking(seconds: float) -> str:
        threads.append(threading.current_thread().name)
        logger.info("sdk.called")
        time.sleep(seconds)
        return "done"

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ctx = LoggingCoordinator().start_request()
    ticking = asyncio.create_task(ticker())
    result = await client.call_external("get", blocking, 0.3)
    ticking.cancel()

    assert result == "done"
    assert threads[0] != threading.current_thread().name
    assert ticks >= 10
    (called,) = lines(sink, "sdk.called")
    assert called["correlation_id"] == ctx.correlation_id


async def test_sync_callee_returning_an_awaitable_is_awaited(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """``lambda: client.get(...)`` works: the coroutine is awaited."""
    response = await api.call_external(
        "lambda", lambda: api.http.get(server.url("/ok"))
    )

    assert response.status_code == 200


# -- retries parameter, metrics and health ------------------------------------


async def test_retries_overrides_the_client_policy(sink: MemorySink) -> None:
    """``retries=n`` allows n retries; ``None`` keeps the policy."""
    client = BaseExternalClient(
        "flaky", retry=FAST_RETRY, circuit_breaker=None
    )
    calls = 0

    async def failing() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError("reset")

    with pytest.raises(ConnectionResetError):
        await client.call_external("get", failing, retries=0)
    assert calls == 1
    with pytest.raises(ConnectionResetError):
        await client.call_external("get", failing)
    assert calls == 4
    with pytest.raises(ConnectionResetError):
        await client.call_external("get", failing, retries=1)
    assert calls == 6


async def test_metrics_count_calls_kinds_and_latency(
    sink: MemorySink, server: FlakyServer, api: HTTPExternalClient
) -> None:
    """get_metrics reports counts by kind and latency percentiles."""
    server.script("/x", ok(), ok(), status(404), status(500))
    for _ in range(2):
        await api.get("/x")
    for _ in range(2):
        with pytest.raises(httpx.HTTPStatusError):
            await api.get("/x", retries=0)

    metrics = api.get_metrics()
    assert metrics["calls"] == 4
    assert metrics["successes"] == 2
    assert metrics["failures"] == 2
    assert metrics["failures_by_kind"]["http_4xx"] == 1
    assert metrics["failures_by_kind"]["http_5xx"] == 1
    latency = metrics["latency_ms"]
    assert latency["count"] == 4
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert metrics["breaker"]["state"] == "closed"


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=3000))
def test_latency_window_is_bounded_and_percentiles_ordered(
    latencies: list[float],
) -> None:
    """The window keeps the latest 1024; p50 <= p95 <= p99, all observed."""
    metrics = ClientMetrics()
    for latency in latencies:
        metrics.succeeded(latency)

    kept = latencies[-LATENCY_WINDOW:]
    assert list(metrics.latencies) == kept
    shown = percentiles(tuple(kept))
    assert shown["count"] == len(kept)
    if kept:
        observed = {round(x * 1000, 3) for x in kept}
        assert {shown["p50"], shown["p95"], shown["p99"]} <= observed
        assert shown["p50"] <= shown["p95"] <= shown["p99"]


async def test_health_follows_recent_failures(sink: MemorySink) -> None:
    """Health degrades at a fifth of recent calls failing, fails at half."""
    client = BaseExternalClient("h", circuit_breaker=None)

    async def result(fail: bool) -> None:
        if fail:
            raise ConnectionResetError("reset")

    async def run(fail: bool) -> None:
        try:
            await client.call_external("get", result, fail)
        except ConnectionResetError:
            pass

    for _ in range(9):
        await run(True)
    assert (await client.health_check())["status"] == "healthy"
    for _ in range(31):
        await run(False)
    health = await client.health_check()
    assert health["status"] == "degraded"
    assert health["recent_calls"] == 40
    for _ in range(31):
        await run(True)
    assert (await client.health_check())["status"] == "unhealthy"


# -- shared breaker state -----------------------------------------------------


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    """A throwaway redis-server on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            "redis-server",
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_redis(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_for_redis(port: int) -> None:
    """Block until the redis-server on *port* answers PING."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} never answered")


async def test_shared_breaker_state_spans_clients(
    sink: MemorySink, server: FlakyServer, redis_port: int
) -> None:
    """Failures seen by one process open the circuit for another."""
    server.script("/down", status(500))
    connections = [
        redis.asyncio.Redis(host="127.0.0.1", port=redis_port)
        for _ in range(2)
    ]
    await connections[0].flushall()
    breaker = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=30)
    clients = [
        HTTPExternalClient(
            "shared",
            server.base_url,
            circuit_breaker=breaker,
            breaker_state=RedisBreakerState(conn, "test:external"),
        )
        for conn in connections
    ]
    try:
        for _ in range(2):
            with pytest.raises(httpx.HTTPStatusError):
                await clients[0].get("/down")
        with pytest.raises(CircuitOpenError):
            await clients[1].get("/down")
        health = await clients[1].health_check()
    finally:
        for client, conn in zip(clients, connections, strict=True):
            await client.aclose()
            await conn.aclose()

    assert server.count("/down") == 2
    assert health["status"] == "unhealthy"
    assert len(lines(sink, "circuit.opened")) == 1


# -- lifecycle ----------------------------------------------------------------


async def test_aclose_leaves_a_given_httpx_client_open(
    sink: MemorySink, server: FlakyServer
) -> None:
    """A shared httpx client stays usable; an owned one is closed."""
    async with httpx.AsyncClient() as shared:
        async with HTTPExternalClient(
            "a", server.base_url, httpx_client=shared
        ) as client:
            await client.get("/ok")
        assert not shared.is_closed
        owned = HTTPExternalClient("b", server.base_url)
        await owned.aclose()
        assert owned.http.is_closed
