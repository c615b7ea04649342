"""Retry an external call after its first attempt failed.

The caller runs the first attempt bare, so a call that succeeds never
touches this module. After a retryable failure it hands the attempt
function and that first error to :func:`run_retries`, which replays the
error to tenacity as attempt 1: attempt numbers, backoff and the stop
rules then count from the real first attempt.

Whatever the policy says, these are never retried: cancellation and the
other exceptions that are not ``Exception`` (``KeyboardInterrupt``,
``SystemExit``, ``GeneratorExit``), which propagate at once; HTTP 4xx
other than 408 and 429; :class:`ValidationError` and
:class:`ResponseValidationError`. A retry refused by an open circuit ends
the retries with the last real error, since that is what the call met.
"""

from __future__ import annotations

import asyncio
import email.utils
import errno
import functools
import math
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from stratalog import _diagnostics
from stratalog.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    ResponseValidationError,
    ValidationError,
)

if TYPE_CHECKING:
    from tenacity import RetryCallState

__all__ = [
    "RetryPolicy",
    "http_status",
    "is_client_error",
    "is_retryable",
    "retry_after_seconds",
    "run_retries",
    "run_retries_sync",
]

T = TypeVar("T")

OnRetry = Callable[[int, float, Exception], object]

_TRANSIENT_ERRNOS = frozenset(
    {
        errno.ECONNABORTED,
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETRESET,
        errno.ENETUNREACH,
        errno.EPIPE,
        errno.ETIMEDOUT,
    }
)
_RETRYABLE_STATUS = frozenset({408, 429})
_NEVER_RETRIED = (CircuitOpenError, ResponseValidationError, ValidationError)


def http_status(exc: BaseException) -> int | None:
    """Return the HTTP status code an exception carries, if any.

    Reads ``httpx.HTTPStatusError.response`` and any exception with an
    integer ``status_code``, as the OpenAI and Anthropic SDKs raise.
    """
    status = _attribute(exc, "status_code")
    if not isinstance(status, int):
        status = _attribute(_attribute(exc, "response"), "status_code")
    if isinstance(status, bool) or not isinstance(status, int):
        return None

    return status


def is_client_error(exc: BaseException) -> bool:
    """Tell whether *exc* is an HTTP 4xx that asking again cannot fix.

    408 (request timeout) and 429 (too many requests) are not: both say
    "later", not "never".
    """
    status = http_status(exc)

    return (
        status is not None
        and 400 <= status < 500
        and status not in _RETRYABLE_STATUS
    )


def is_retryable(exc: BaseException) -> bool:
    """Tell whether *exc* is a transient failure worth another attempt.

    Timeouts, connection failures, HTTP 5xx, 408 and 429 are; everything
    else, including unknown errors, is not.
    """
    if not isinstance(exc, Exception) or isinstance(exc, _NEVER_RETRIED):
        return False
    status = http_status(exc)
    if status is not None:
        return status >= 500 or status in _RETRYABLE_STATUS
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if isinstance(exc, _httpx_transient_errors()):
        return True
    if isinstance(exc, socket.gaierror):
        return exc.errno == socket.EAI_AGAIN

    return isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS


def retry_after_seconds(exc: BaseException) -> float | None:
    """Return the wait an error response asks for, in seconds, if any.

    Reads ``Retry-After`` (seconds or an HTTP date) and the
    ``retry-after-ms`` header some LLM providers send, from the response
    an exception carries (``httpx.HTTPStatusError`` and the like).
    """
    headers = _attribute(_attribute(exc, "response"), "headers")
    if not isinstance(headers, Mapping):
        return None
    millis = _parse_seconds(_header(headers, "retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = _header(headers, "retry-after")
    seconds = _parse_seconds(value)
    if seconds is not None:
        return seconds

    return _parse_http_date(value)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry one external call.

    *max_attempts* counts the first attempt. Waits use full jitter: a
    random time up to ``base_delay * 2 ** (attempt - 1)``, at most
    *max_delay*. With *honor_retry_after*, a wait is never shorter than
    the response's Retry-After. *deadline* bounds the whole call in
    seconds; without one, a Retry-After longer than *max_delay* ends the
    retries instead of waiting. *retry_on* narrows or widens
    :func:`is_retryable`, but never past the rules in the module
    docstring.
    """

    max_attempts: int
    base_delay: float = 0.2
    max_delay: float = 10.0
    deadline: float | None = None
    retry_on: Callable[[Exception], bool] = is_retryable
    honor_retry_after: bool = True

    def __post_init__(self) -> None:
        rules = (
            ("max_attempts", _is_count(self.max_attempts), "an int >= 1"),
            ("base_delay", _is_seconds(self.base_delay), "seconds >= 0"),
            (
                "max_delay",
                _is_seconds(self.max_delay)
                and self.max_delay >= self.base_delay,
                "finite seconds >= base_delay",
            ),
            (
                "deadline",
                self.deadline is None
                or (_is_seconds(self.deadline) and self.deadline > 0),
                "None or finite seconds > 0",
            ),
            ("retry_on", callable(self.retry_on), "a callable"),
        )
        for field, valid, allowed in rules:
            if not valid:
                value = getattr(self, field)
                raise ConfigurationError(
                    f"RetryPolicy.{field}", value, allowed
                )

    def should_retry(self, exc: BaseException) -> bool:
        """Tell whether a failed attempt that raised *exc* may be repeated.

        A *retry_on* that raises counts as "no" and is reported through
        the diagnostics channel.
        """
        if not isinstance(exc, Exception) or isinstance(exc, _NEVER_RETRIED):
            return False
        if is_client_error(exc):
            return False
        try:
            return bool(self.retry_on(exc))
        except Exception as err:
            _diagnostics.report(
                "retry.retry_on_failed", "retry_on raised", err
            )
            return False


async def run_retries(
    attempt_fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    first_error: Exception,
    *,
    on_retry: OnRetry | None = None,
    deadline_at: float | None = None,
) -> T:
    """Retry *attempt_fn* after the first attempt failed with *first_error*.

    *attempt_fn* performs one attempt (its own timeout and breaker
    admission included). *on_retry(attempt, delay_s, error)* runs before
    each wait, with the number the next attempt will carry. *deadline_at*
    is the ``time.monotonic()`` instant the call must end by; it defaults
    to ``policy.deadline`` seconds from now, and an attempt still running
    then is cancelled and ends as ``TimeoutError``.

    Returns the first success; otherwise raises the last real error.
    """
    import tenacity

    replay = _Replay(first_error, _deadline(policy, deadline_at))
    retrying = tenacity.AsyncRetrying(
        sleep=asyncio.sleep, **_rules(policy, replay.deadline, on_retry)
    )
    try:
        return await retrying(functools.partial(replay.call_async, attempt_fn))
    except _ShortCircuited as stopped:
        error = stopped.error
    raise error


def run_retries_sync(
    attempt_fn: Callable[[], T],
    policy: RetryPolicy,
    first_error: Exception,
    *,
    on_retry: OnRetry | None = None,
    deadline_at: float | None = None,
) -> T:
    """Retry *attempt_fn* after a failed first attempt, blocking.

    The twin of :func:`run_retries`, except that a deadline cannot
    interrupt an attempt that is already running: it only stops further
    attempts and waits.
    """
    import tenacity

    replay = _Replay(first_error, _deadline(policy, deadline_at))
    retrying = tenacity.Retrying(
        sleep=time.sleep, **_rules(policy, replay.deadline, on_retry)
    )
    try:
        return retrying(functools.partial(replay.call, attempt_fn))
    except _ShortCircuited as stopped:
        error = stopped.error
    raise error


class _ShortCircuited(Exception):
    """A retry was refused by the breaker; carries the last real error."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class _Replay:
    """Replays the first failure, then runs and watches real attempts."""

    def __init__(self, first_error: Exception, deadline: float | None):
        self.last_error = first_error
        self.deadline = deadline
        self._replayed = False

    def call(self, attempt_fn: Callable[[], T]) -> T:
        self._replay_first()
        try:
            return attempt_fn()
        except CircuitOpenError as exc:
            raise _ShortCircuited(self.last_error) from exc
        except Exception as exc:
            self.last_error = exc
            raise

    async def call_async(self, attempt_fn: Callable[[], Awaitable[T]]) -> T:
        self._replay_first()
        try:
            async with asyncio.timeout(self._remaining()):
                return await attempt_fn()
        except CircuitOpenError as exc:
            raise _ShortCircuited(self.last_error) from exc
        except Exception as exc:
            self.last_error = exc
            raise

    def _replay_first(self) -> None:
        if not self._replayed:
            self._replayed = True
            raise self.last_error

    def _remaining(self) -> float | None:
        if self.deadline is None:
            return None

        return self.deadline - time.monotonic()


def _deadline(policy: RetryPolicy, deadline_at: float | None) -> float | None:
    if deadline_at is not None or policy.deadline is None:
        return deadline_at

    return time.monotonic() + policy.deadline


def _rules(
    policy: RetryPolicy, deadline: float | None, on_retry: OnRetry | None
) -> dict[str, Any]:
    import tenacity

    return {
        "stop": _stop_rule(policy, deadline),
        "wait": _wait_rule(policy),
        "retry": tenacity.retry_if_exception(_retry_rule(policy)),
        "before_sleep": _announcer(on_retry),
        "reraise": True,
    }


def _retry_rule(policy: RetryPolicy) -> Callable[[BaseException], bool]:
    def retry(exc: BaseException) -> bool:
        if isinstance(exc, _ShortCircuited):
            return False

        return policy.should_retry(exc)

    return retry


def _stop_rule(
    policy: RetryPolicy, deadline: float | None
) -> Callable[[RetryCallState], bool]:
    # tenacity's stop_before_delay counts from when tenacity started, which
    # is after the first attempt; the deadline here is the caller's, so it
    # is compared with the monotonic clock directly.
    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= policy.max_attempts:
            return True
        if deadline is None:
            return state.upcoming_sleep > policy.max_delay

        return time.monotonic() + state.upcoming_sleep >= deadline

    return stop


def _wait_rule(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    import tenacity

    jitter = tenacity.wait_random_exponential(
        multiplier=policy.base_delay, max=policy.max_delay
    )
    if not policy.honor_retry_after:
        return jitter

    def wait(state: RetryCallState) -> float:
        delay = jitter(state)
        error = _outcome_error(state)
        requested = None if error is None else retry_after_seconds(error)
        if requested is None:
            return delay

        return max(delay, requested)

    return wait


def _announcer(
    on_retry: OnRetry | None,
) -> Callable[[RetryCallState], None] | None:
    if on_retry is None:
        return None

    def announce(state: RetryCallState) -> None:
        error = _outcome_error(state)
        if not isinstance(error, Exception):
            return
        try:
            on_retry(state.attempt_number + 1, state.upcoming_sleep, error)
        except Exception as exc:
            _diagnostics.report(
                "retry.on_retry_failed", "on_retry raised", exc
            )

    return announce


def _outcome_error(state: RetryCallState) -> BaseException | None:
    if state.outcome is None or not state.outcome.failed:
        return None

    return state.outcome.exception()


@functools.cache
def _httpx_transient_errors() -> tuple[type[Exception], ...]:
    try:
        import httpx
    except ImportError:
        return ()

    return (
        httpx.TimeoutException,
        httpx.NetworkError,
        httpx.RemoteProtocolError,
        httpx.ProxyError,
    )


def _attribute(obj: object, name: str) -> object:
    # Error objects from third-party SDKs sometimes expose properties that
    # raise when a field was never set; classification must not.
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _header(headers: Mapping[str, object], name: str) -> str | None:
    value = headers.get(name, headers.get(name.title()))

    return value if isinstance(value, str) else None


def _parse_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None

    return seconds


def _parse_http_date(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # An HTTP date can only be compared with the wall clock.
    seconds = (when - datetime.now(UTC)).total_seconds()

    return max(seconds, 0.0)


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _is_count(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and value >= 1
    )
