"""Tests for stratalog._retry: classification, waits, stops, cancellation."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TypeVar

import httpx
import pytest

from stratalog import _diagnostics
from stratalog._retry import (
    RetryPolicy,
    is_client_error,
    is_retryable,
    retry_after_seconds,
    run_retries,
    run_retries_sync,
)
from stratalog.breaker import CircuitBreaker, CircuitBreakerConfig
from stratalog.exceptions import (
    ConfigurationError,
    ResponseValidationError,
    ValidationError,
)

T = TypeVar("T")

URL = "http://llm.test/v1/chat"


def c19_policy(**overrides: object) -> RetryPolicy:
    """The policy of case C19: 4 attempts, 0.2 s base, all but ValueError."""
    settings = {
        "max_attempts": 4,
        "base_delay": 0.2,
        "retry_on": lambda exc: not isinstance(exc, ValueError),
        **overrides,
    }
    return RetryPolicy(**settings)  # type: ignore[arg-type]


class Scheduled:
    """Records the on_retry calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, float, Exception]] = []

    def __call__(self, attempt: int, delay_s: float, exc: Exception) -> None:
        self.calls.append((attempt, delay_s, exc))


async def call(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    breaker: CircuitBreaker | None = None,
    on_retry: Scheduled | None = None,
) -> T:
    """Run *fn* as the external client does: bare first, engine after."""

    async def attempt() -> T:
        if breaker is None:
            return await fn()
        async with breaker.attempt():
            return await fn()

    try:
        return await attempt()
    except Exception as exc:
        if not policy.should_retry(exc):
            raise
        return await run_retries(attempt, policy, exc, on_retry=on_retry)


def call_sync(fn: Callable[[], T], policy: RetryPolicy) -> T:
    """The blocking twin of :func:`call`."""
    try:
        return fn()
    except Exception as exc:
        if not policy.should_retry(exc):
            raise
        return run_retries_sync(fn, policy, exc)


def status_error(status: int, **headers: str) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", URL)
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(
        str(status), request=request, response=response
    )


class Downstream:
    """An httpx MockTransport answering from a script, timing each request."""

    def __init__(self, *responses: httpx.Response) -> None:
        self._responses = iter(responses)
        self.times: list[float] = []
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.monotonic())
        return next(self._responses)

    async def fetch(self) -> int:
        response = await self.client.get(URL)
        response.raise_for_status()
        return response.status_code


@pytest.fixture
def breaker() -> CircuitBreaker:
    """A breaker that would trip after three counted failures."""
    return CircuitBreaker("llm", CircuitBreakerConfig(failure_threshold=3))


# C19 (a): cancellation is never retried.


async def test_wait_for_cancels_a_slow_first_attempt(
    breaker: CircuitBreaker,
) -> None:
    """wait_for(0.05) ends the call at once; nothing runs on afterwards."""
    calls = 0
    scheduled = Scheduled()

    async def fetch_slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            call(
                fetch_slow, c19_policy(), breaker=breaker, on_retry=scheduled
            ),
            0.05,
        )
    elapsed = time.monotonic() - started
    await asyncio.sleep(1.0)

    assert elapsed < 0.5
    assert calls == 1
    assert scheduled.calls == []
    assert breaker.failure_count == 0


async def test_wait_for_cancels_a_retry_attempt() -> None:
    """Cancelled during a retry attempt: no further attempt, ever."""
    calls = 0
    scheduled = Scheduled()

    async def flaky_then_slow() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("reset by peer")
        await asyncio.sleep(10)

    policy = c19_policy(base_delay=0.001)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(
            call(flaky_then_slow, policy, on_retry=scheduled), 0.2
        )
    await asyncio.sleep(0.5)

    assert calls == 2
    assert [attempt for attempt, _, _ in scheduled.calls] == [2]


async def test_wait_for_cancels_the_backoff_sleep() -> None:
    """Cancelled while waiting to retry: the retry never starts."""
    calls = 0

    async def unavailable() -> None:
        nonlocal calls
        calls += 1
        raise status_error(503, **{"Retry-After": "5"})

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call(unavailable, c19_policy()), 0.05)

    assert time.monotonic() - started < 0.5
    await asyncio.sleep(0.2)
    assert calls == 1


async def test_cancelled_error_bypasses_the_retry_predicate() -> None:
    """CancelledError from an attempt propagates; retry_on never sees it."""
    seen: list[BaseException] = []

    def retry_on(exc: Exception) -> bool:
        seen.append(exc)
        return True

    async def cancelled() -> None:
        raise asyncio.CancelledError

    first = ConnectionResetError("reset by peer")
    with pytest.raises(asyncio.CancelledError):
        await run_retries(cancelled, c19_policy(retry_on=retry_on), first)

    assert seen == [first]


# C19 (b): 4xx client errors are not retried.


@pytest.mark.parametrize(
    "status", [pytest.param(s, id=str(s)) for s in (401, 404, 400, 422)]
)
async def test_client_errors_get_one_attempt(
    breaker: CircuitBreaker, status: int
) -> None:
    """A 4xx is raised after one attempt, even with a permissive retry_on."""
    downstream = Downstream(httpx.Response(status), httpx.Response(200))

    with pytest.raises(httpx.HTTPStatusError) as raised:
        await call(downstream.fetch, c19_policy(), breaker=breaker)
    await downstream.client.aclose()

    assert raised.value.response.status_code == status
    assert len(downstream.times) == 1
    assert breaker.failure_count == 0


# C19 (c), (d): 503 with Retry-After, and 429, are retried.


async def test_retry_after_is_honoured() -> None:
    """503 with Retry-After: 1, then 200: the retry waits at least 1 s."""
    scheduled = Scheduled()
    downstream = Downstream(
        httpx.Response(503, headers={"Retry-After": "1"}),
        httpx.Response(200),
    )

    status = await call(downstream.fetch, c19_policy(), on_retry=scheduled)
    await downstream.client.aclose()

    assert status == 200
    first, second = downstream.times
    assert second - first >= 0.999
    assert scheduled.calls[0][1] >= 1.0


async def test_too_many_requests_is_retried() -> None:
    """429, then 200: two attempts."""
    downstream = Downstream(httpx.Response(429), httpx.Response(200))

    status = await call(downstream.fetch, c19_policy())
    await downstream.client.aclose()

    assert status == 200
    assert len(downstream.times) == 2


async def test_retry_after_beyond_the_deadline_stops() -> None:
    """A Retry-After past the deadline raises the 429 without waiting."""
    downstream = Downstream(
        httpx.Response(429, headers={"Retry-After": "30"}),
        httpx.Response(200),
    )

    started = time.monotonic()
    with pytest.raises(httpx.HTTPStatusError):
        await call(downstream.fetch, c19_policy(deadline=5.0))
    await downstream.client.aclose()

    assert time.monotonic() - started < 1.0
    assert len(downstream.times) == 1


def test_retry_after_beyond_max_delay_stops_without_deadline() -> None:
    """Without a deadline, a Retry-After over max_delay ends the retries."""
    error = status_error(503, **{"Retry-After": "60"})
    calls = 0

    def succeed() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(httpx.HTTPStatusError):
        run_retries_sync(succeed, RetryPolicy(3, max_delay=10.0), error)

    assert calls == 0


# C19 (e): KeyboardInterrupt and friends on the sync path.


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(KeyboardInterrupt, id="keyboard-interrupt"),
        pytest.param(SystemExit, id="system-exit"),
        pytest.param(GeneratorExit, id="generator-exit"),
    ],
)
def test_sync_interrupts_propagate_at_once(
    error: type[BaseException],
) -> None:
    """An interrupt during a retry is raised at once, never retried."""
    seen: list[BaseException] = []
    calls = 0

    def interrupted() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("reset by peer")
        raise error

    def retry_on(exc: Exception) -> bool:
        seen.append(exc)
        return True

    policy = c19_policy(base_delay=0.001, retry_on=retry_on)
    with pytest.raises(error):
        call_sync(interrupted, policy)

    assert calls == 2
    assert all(isinstance(exc, ConnectionResetError) for exc in seen)


def test_keyboard_interrupt_in_the_first_attempt_is_not_retried() -> None:
    """The first attempt's KeyboardInterrupt never reaches the engine."""
    calls = 0

    def interrupted() -> None:
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call_sync(interrupted, c19_policy())

    assert calls == 1


# Deadlines, exhaustion and the breaker.


async def test_deadline_caps_the_total_time() -> None:
    """Retries stop before the deadline, raising the last real error."""
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError(f"reset {calls}")

    policy = RetryPolicy(100, base_delay=0.05, max_delay=0.05, deadline=0.3)
    started = time.monotonic()
    with pytest.raises(ConnectionResetError):
        await call(flaky, policy)

    assert time.monotonic() - started < 1.0
    assert 2 <= calls < 100


async def test_deadline_cuts_a_hanging_retry_attempt() -> None:
    """An attempt still running at the deadline ends as TimeoutError."""
    calls = 0

    async def flaky_then_hang() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionResetError("reset by peer")
        await asyncio.sleep(10)

    policy = RetryPolicy(4, base_delay=0.001, deadline=0.2)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await call(flaky_then_hang, policy)

    assert time.monotonic() - started < 1.0
    assert calls == 2


async def test_exhaustion_raises_the_last_real_error() -> None:
    """After max_attempts the last attempt's own error is raised."""
    errors = [ConnectionResetError("second"), TimeoutError("third")]
    scheduled = Scheduled()

    async def flaky() -> None:
        raise errors.pop(0)

    first = ConnectionResetError("first")
    with pytest.raises(TimeoutError, match="third"):
        await run_retries(
            flaky, RetryPolicy(3, base_delay=0.001), first, on_retry=scheduled
        )

    assert [(a, e) for a, _, e in scheduled.calls] == [
        (2, first),
        (3, scheduled.calls[1][2]),
    ]
    assert str(scheduled.calls[1][2]) == "second"
    assert all(0 <= delay <= 0.004 for _, delay, _ in scheduled.calls)


async def test_open_circuit_ends_retries_with_the_real_error() -> None:
    """A short-circuited retry ends with the ReadTimeout that tripped it."""
    breaker = CircuitBreaker("llm", CircuitBreakerConfig(failure_threshold=2))
    calls = 0

    async def timing_out() -> None:
        nonlocal calls
        calls += 1
        raise httpx.ReadTimeout(f"read timeout {calls}")

    policy = RetryPolicy(4, base_delay=0.001)
    with pytest.raises(httpx.ReadTimeout, match="read timeout 2"):
        await call(timing_out, policy, breaker=breaker)

    assert calls == 2
    assert breaker.failure_count == 2


def test_sync_retries_until_success() -> None:
    """The blocking engine returns the first success."""
    results: Iterator[object] = iter(
        [TimeoutError("slow"), ConnectionResetError("reset"), "ok"]
    )

    def flaky() -> object:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    assert call_sync(flaky, RetryPolicy(3, base_delay=0.001)) == "ok"


def test_single_attempt_policy_reraises_the_first_error() -> None:
    """With max_attempts=1 the engine never calls the attempt again."""
    first = TimeoutError("slow")

    def never() -> None:
        raise AssertionError("must not be called")

    with pytest.raises(TimeoutError) as raised:
        run_retries_sync(never, RetryPolicy(1), first)

    assert raised.value is first


def test_raising_on_retry_is_reported_not_raised() -> None:
    """A failing on_retry is reported each time; the retries go on."""
    results = iter([ConnectionResetError("reset"), "ok"])

    def flaky() -> object:
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    def broken_hook(attempt: int, delay_s: float, exc: Exception) -> None:
        raise RuntimeError("logging is down")

    policy = RetryPolicy(3, base_delay=0.001)
    result = run_retries_sync(
        flaky, policy, TimeoutError("slow"), on_retry=broken_hook
    )

    assert result == "ok"
    assert _diagnostics.counts() == {"retry.on_retry_failed": 2}


def test_raising_retry_on_means_no_retry() -> None:
    """A failing retry_on is reported and the real error is raised."""

    def broken_predicate(exc: Exception) -> bool:
        raise RuntimeError("bug")

    def never() -> None:
        raise AssertionError("must not be called")

    first = TimeoutError("slow")
    with pytest.raises(TimeoutError) as raised:
        run_retries_sync(
            never, RetryPolicy(3, retry_on=broken_predicate), first
        )

    assert raised.value is first
    assert _diagnostics.counts() == {"retry.retry_on_failed": 1}


# Classification.


def os_error(code: int) -> OSError:
    return OSError(code, "simulated")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(TimeoutError(), True, id="TimeoutError"),
        pytest.param(httpx.ReadTimeout("t"), True, id="httpx.ReadTimeout"),
        pytest.param(httpx.ConnectError("c"), True, id="httpx.ConnectError"),
        pytest.param(httpx.ReadError("r"), True, id="httpx.ReadError"),
        pytest.param(
            httpx.RemoteProtocolError("gone"), True, id="httpx.RemoteProtocol"
        ),
        pytest.param(
            httpx.UnsupportedProtocol("ftp"), False, id="httpx.Unsupported"
        ),
        pytest.param(ConnectionResetError(), True, id="reset"),
        pytest.param(ConnectionRefusedError(), True, id="refused"),
        pytest.param(BrokenPipeError(), True, id="broken-pipe"),
        pytest.param(os_error(errno.EHOSTUNREACH), True, id="host-unreach"),
        pytest.param(os_error(errno.ENOENT), False, id="os-error-enoent"),
        pytest.param(FileNotFoundError(), False, id="file-not-found"),
        pytest.param(
            socket.gaierror(socket.EAI_AGAIN, "try again"),
            True,
            id="dns-again",
        ),
        pytest.param(
            socket.gaierror(socket.EAI_NONAME, "no name"), False, id="dns-none"
        ),
        pytest.param(status_error(500), True, id="500"),
        pytest.param(status_error(502), True, id="502"),
        pytest.param(status_error(503), True, id="503"),
        pytest.param(status_error(429), True, id="429"),
        pytest.param(status_error(408), True, id="408"),
        pytest.param(status_error(400), False, id="400"),
        pytest.param(status_error(401), False, id="401"),
        pytest.param(status_error(404), False, id="404"),
        pytest.param(ValueError(), False, id="ValueError"),
        pytest.param(KeyError(), False, id="KeyError"),
        pytest.param(ValidationError("bad"), False, id="ValidationError"),
        pytest.param(
            ResponseValidationError("bad", client="llm"),
            False,
            id="ResponseValidationError",
        ),
        pytest.param(asyncio.CancelledError(), False, id="CancelledError"),
        pytest.param(KeyboardInterrupt(), False, id="KeyboardInterrupt"),
        pytest.param(SystemExit(), False, id="SystemExit"),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    """Transient failures are retryable; the caller's own mistakes are not."""
    assert is_retryable(exc) is expected


class SdkStatusError(Exception):
    """An LLM SDK error: the status sits on the exception itself."""

    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


class BrokenResponseError(Exception):
    """An error whose response property raises when read."""

    @property
    def response(self) -> object:
        raise RuntimeError("no response was recorded")


def test_sdk_style_errors_are_classified_by_status() -> None:
    """An integer status_code on the exception is read like httpx's."""
    assert is_retryable(SdkStatusError(529))
    assert is_client_error(SdkStatusError(403))
    assert not is_retryable(SdkStatusError(403))


def test_classification_survives_raising_properties() -> None:
    """A property that raises reads as absent."""
    assert not is_retryable(BrokenResponseError())
    assert retry_after_seconds(BrokenResponseError()) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"Retry-After": "1"}, 1.0, id="seconds"),
        pytest.param({"retry-after": "2.5"}, 2.5, id="fraction"),
        pytest.param({"Retry-After": "0"}, 0.0, id="zero"),
        pytest.param({"retry-after-ms": "250"}, 0.25, id="millis"),
    ],
)
def test_retry_after_parses_seconds(
    headers: dict[str, str], expected: float
) -> None:
    """Retry-After in seconds, or retry-after-ms, as some LLM APIs send."""
    assert retry_after_seconds(status_error(503, **headers)) == expected


@pytest.mark.parametrize(
    ("offset", "low", "high"),
    [
        pytest.param(30, 20.0, 30.0, id="future"),
        pytest.param(-30, 0.0, 0.0, id="past"),
    ],
)
def test_retry_after_parses_http_dates(
    offset: int, low: float, high: float
) -> None:
    """An HTTP date gives the seconds until then, never less than zero."""
    when = datetime.now(UTC) + timedelta(seconds=offset)
    headers = {"Retry-After": format_datetime(when, usegmt=True)}

    seconds = retry_after_seconds(status_error(503, **headers))

    assert seconds is not None
    assert low <= seconds <= high


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("soon", id="word"),
        pytest.param("-5", id="negative"),
        pytest.param("nan", id="nan"),
        pytest.param("inf", id="inf"),
        pytest.param("", id="empty"),
    ],
)
def test_retry_after_rejects_nonsense(value: str) -> None:
    """An unusable Retry-After reads as absent."""
    assert (
        retry_after_seconds(status_error(503, **{"Retry-After": value}))
        is None
    )


def test_retry_after_needs_a_response() -> None:
    """Errors without a response carry no Retry-After."""
    assert retry_after_seconds(TimeoutError()) is None
    assert retry_after_seconds(status_error(503)) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("max_attempts", 0, id="attempts-zero"),
        pytest.param("max_attempts", 2.0, id="attempts-float"),
        pytest.param("base_delay", -0.1, id="base-negative"),
        pytest.param("max_delay", 0.1, id="max-below-base"),
        pytest.param("max_delay", float("inf"), id="max-infinite"),
        pytest.param("deadline", 0, id="deadline-zero"),
        pytest.param("retry_on", "ValueError", id="retry-on-not-callable"),
    ],
)
def test_policy_rejects_nonsense(field: str, value: object) -> None:
    """A bad setting raises ConfigurationError naming field and value."""
    settings: dict[str, object] = {"max_attempts": 3, field: value}

    with pytest.raises(ConfigurationError) as raised:
        RetryPolicy(**settings)  # type: ignore[arg-type]

    assert isinstance(raised.value, ValueError)
    assert f"RetryPolicy.{field}={value!r}" in str(raised.value)
