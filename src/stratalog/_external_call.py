"""One call to an external service: its attempts, timeouts and verdicts.

Design note. Most calls succeed at once, so the first attempt runs bare:
breaker admission, ``asyncio.timeout`` only when a timeout applies, the
call, the breaker's verdict. The retry engine (and tenacity behind it) is
entered only after a failure it may retry. Each attempt settles its own
breaker admission exactly once: success, failure (the breaker decides
whether the error counts), or release when the attempt ends by
cancellation or another ``BaseException``, which never counts against
the service. A plain ``call_func`` runs in a worker thread through
``asyncio.to_thread``, which copies the context, so its lines keep the
request's ids; a timeout stops waiting for that thread, not the thread.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Any

from . import _state
from ._external_metrics import failure_kind, reached
from ._retry import RetryPolicy, run_retries

if TYPE_CHECKING:
    from .breaker import Admission, CircuitBreaker
    from .external import BaseExternalClient

__all__ = ["Call", "is_coroutine_function"]

DEBUG = 10


def is_coroutine_function(func: Callable[..., Any]) -> bool:
    """Tell whether calling *func* makes a coroutine, cheaply.

    Plain and bound coroutine functions are recognised from their code
    flags; anything else (partials, marked callables) is left to
    :func:`inspect.iscoroutinefunction`.
    """
    code = getattr(func, "__code__", None)
    if isinstance(code, CodeType) and code.co_flags & inspect.CO_COROUTINE:
        return True

    return inspect.iscoroutinefunction(func)


class Call:
    """The state of one ``call_external`` from admission to outcome."""

    __slots__ = (
        "args",
        "attempted",
        "attempts",
        "breaker",
        "client",
        "deadline",
        "func",
        "is_async",
        "kwargs",
        "operation",
        "policy",
        "retries",
        "shared",
        "started",
        "timeout",
    )

    def __init__(
        self,
        client: BaseExternalClient,
        operation: str,
        func: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        policy: RetryPolicy,
    ) -> None:
        self.client = client
        self.operation = operation
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.policy = policy
        self.breaker: CircuitBreaker | None = client.breaker
        self.shared = client.shares_breaker_state
        self.is_async = is_coroutine_function(func)
        self.started = time.monotonic()
        self.deadline = (
            None if policy.deadline is None else self.started + policy.deadline
        )
        self.attempts = 0
        self.retries = 0
        self.attempted = False

    async def admit(self) -> Admission | None:
        """Ask the breaker for one attempt; raises CircuitOpenError."""
        breaker = self.breaker
        if breaker is None:
            return None
        if self.shared:
            return await breaker.acquire_async(self.operation)

        return breaker.acquire(self.operation)

    async def run(self, admission: Admission | None) -> Any:
        """Run the first attempt, then the retries the policy allows."""
        try:
            return await self.attempt(admission)
        except Exception as error:
            if self.policy.max_attempts < 2 or not self.policy.should_retry(
                error
            ):
                raise
            first = error
        # Outside the handler, so that later errors are not chained to
        # the first one as "during handling of".
        return await run_retries(
            self.retry,
            self.policy,
            first,
            on_retry=self.client.outcomes.retry_hook(self),
            deadline_at=self.deadline,
        )

    async def retry(self) -> Any:
        """One retry: a fresh admission, then an attempt.

        A retry the breaker refuses is not counted: it reached nothing.
        """
        admission = await self.admit()
        self.retries += 1
        self.client.metrics.retries += 1

        return await self.attempt(admission)

    async def attempt(self, admission: Admission | None) -> Any:
        """Make one attempt and settle its breaker admission."""
        self.attempts += 1
        if _state.PIPELINE.min_level <= DEBUG:
            self.client.outcomes.attempt_started(self)
        try:
            if self.is_async and self.timeout is None and not self.deadline:
                # The common case, without the frames of _timed/_invoke.
                result = await self.func(*self.args, **self.kwargs)
            else:
                result = await self._timed()
        except Exception as error:
            self._note_failure(error)
            await self._settle_failure(admission, error)
            raise
        except BaseException:
            await self._release(admission)
            raise
        self.attempted = True
        breaker = self.breaker
        if breaker is not None and admission is not None:
            if self.shared:
                await breaker.record_success_async(admission)
            else:
                breaker.record_success(admission)

        return result

    async def _timed(self) -> Any:
        timeout = self._attempt_timeout()
        if timeout is None:
            return await self._invoke()
        async with asyncio.timeout(timeout):
            return await self._invoke()

    def _attempt_timeout(self) -> float | None:
        deadline = self.deadline
        if deadline is None:
            return self.timeout
        remaining = deadline - time.monotonic()
        if self.timeout is None:
            return remaining

        return min(self.timeout, remaining)

    async def _invoke(self) -> Any:
        if self.is_async:
            return await self.func(*self.args, **self.kwargs)
        result = await asyncio.to_thread(self.func, *self.args, **self.kwargs)
        if inspect.isawaitable(result):
            result = await result

        return result

    def _note_failure(self, error: Exception) -> None:
        if reached(error):
            self.attempted = True
        if failure_kind(error) == "timeout":
            self.client.metrics.timeouts += 1

    async def _settle_failure(
        self, admission: Admission | None, error: Exception
    ) -> None:
        breaker = self.breaker
        if breaker is None or admission is None:
            return
        if self.shared:
            await breaker.record_failure_async(admission, error)
        else:
            breaker.record_failure(admission, error)

    async def _release(self, admission: Admission | None) -> None:
        breaker = self.breaker
        if breaker is None or admission is None:
            return
        if self.shared:
            # Shielded: the caller is being cancelled, and the admission
            # must still be settled where it was granted.
            await asyncio.shield(breaker.release_async(admission))
        else:
            breaker.release(admission)
