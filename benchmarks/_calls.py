"""Comparison 5: execute_operation and call_external against retry wrappers.

Every contender awaits the same coroutine function, which returns at
once: what is timed is the wrapper. Batches run on one event loop, a
batch per ``run_until_complete``.

stratalog is timed two ways. ``*.first`` is the call as a request's first
of its kind: each call runs in a fresh request (opened and closed
untimed), so every line it makes is written. ``*.repeated`` is the call
made again and again in one request, where its boundary and operation
lines are deduplicated after the first. The client has a circuit breaker
(the default) and a policy of three attempts, as the retry wrappers do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from ._family import Family, require
from ._peers import IDS
from ._subject import Options, configure_file
from ._timing import Contender, Stopwatch, interleave

__all__ = ["run"]


async def fetch_stock(sku: str) -> dict[str, Any]:
    """The wrapped work: returns at once."""
    return {"sku": sku, "available": 12}


Batch = Callable[[int], Awaitable[Any]]


def _on_loop(loop: asyncio.AbstractEventLoop, batch: Batch) -> Any:
    def run(n: int) -> Any:
        return loop.run_until_complete(batch(n))

    return run


async def bare(n: int) -> None:
    """Await the work *n* times."""
    for _ in range(n):
        await fetch_stock("sku-1")


async def tenacity_async_retrying(n: int) -> None:
    """Await the work *n* times inside tenacity's AsyncRetrying."""
    from tenacity import AsyncRetrying, stop_after_attempt

    for _ in range(n):
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(3), reraise=True
        ):
            with attempt:
                await fetch_stock("sku-1")


async def stamina_retry_context(n: int) -> None:
    """Await the work *n* times inside ``stamina.retry_context``."""
    import stamina

    for _ in range(n):
        async for attempt in stamina.retry_context(
            on=ConnectionError, attempts=3
        ):
            with attempt:
                await fetch_stock("sku-1")


def _stamina_decorated() -> Batch:
    import stamina

    fetch = stamina.retry(on=ConnectionError, attempts=3)(fetch_stock)

    async def decorated(n: int) -> None:
        for _ in range(n):
            await fetch("sku-1")

    return decorated


class _Subject:
    """A service and an external client, as a service would hold them."""

    def __init__(self, options: Options) -> None:
        path = options.var / "calls-stratalog.log"
        path.unlink(missing_ok=True)
        self.stratalog = configure_file(path)
        service = require("stratalog.service", "BaseService")
        external = require("stratalog.external", "BaseExternalClient")
        retry = require("stratalog._retry", "RetryPolicy")
        coordinator = require("stratalog.coordinator", "LoggingCoordinator")
        self.coordinator = coordinator.LoggingCoordinator()
        self.service = service.BaseService("inventory_service")
        self.client = external.BaseExternalClient(
            "inventory_api", retry=retry.RetryPolicy(max_attempts=3)
        )

    def execute(self) -> Callable[[], Awaitable[Any]]:
        """Return one execute_operation call."""
        execute = self.service.execute_operation
        return lambda: execute("check_stock", fetch_stock, "sku-1")

    def external(self) -> Callable[[], Awaitable[Any]]:
        """Return one call_external call."""
        call = self.client.call_external
        return lambda: call("get_stock", fetch_stock, "sku-1")

    def first(self, make: Callable[[], Awaitable[Any]]) -> Batch:
        """Time *n* calls, each the first in a fresh request."""
        coordinator = self.coordinator

        async def batch(n: int) -> tuple[int, int]:
            watch = Stopwatch()
            for _ in range(n):
                coordinator.start_request(**IDS)
                watch.start()
                await make()
                watch.stop()
                coordinator.end_request()
            watch.start()
            self.stratalog.flush()
            watch.stop()
            return watch.totals()

        return batch

    def repeated(self, make: Callable[[], Awaitable[Any]]) -> Batch:
        """Make *n* calls in one request (opened and closed untimed)."""
        coordinator = self.coordinator

        async def batch(n: int) -> tuple[int, int]:
            watch = Stopwatch()
            coordinator.start_request(**IDS)
            await make()
            watch.start()
            for _ in range(n):
                await make()
            self.stratalog.flush()
            watch.stop()
            coordinator.end_request()
            return watch.totals()

        return batch


_LABELS = {
    "bare": "a bare `await` of the coroutine",
    "tenacity.async_retrying": "tenacity `AsyncRetrying(stop_after_attempt"
    "(3))` around it",
    "stamina.retry_context": "`stamina.retry_context(on=..., attempts=3)` "
    "around it",
    "stamina.retry": "`@stamina.retry(on=..., attempts=3)` on it",
    "execute_operation.first": "`BaseService.execute_operation`, first in "
    "a fresh request (all lines written)",
    "execute_operation.repeated": "`execute_operation` repeated in one "
    "request (lines deduplicated)",
    "call_external": "`BaseExternalClient.call_external` (breaker, 3 "
    "attempts), first in a fresh request (all lines written)",
    "call_external.repeated": "`call_external` repeated in one request "
    "(lines deduplicated)",
}


def _subject_contenders(
    family: Family, options: Options, loop: asyncio.AbstractEventLoop
) -> list[Contender]:
    subject = family.attempt("call_external", lambda: _Subject(options))
    if subject is None:
        reason = family.unavailable["call_external"]
        for key in _LABELS:
            if key.startswith(("execute", "call_external.")):
                family.unavailable[key] = reason
        return []
    batches = {
        "execute_operation.first": subject.first(subject.execute()),
        "execute_operation.repeated": subject.repeated(subject.execute()),
        "call_external": subject.first(subject.external()),
        "call_external.repeated": subject.repeated(subject.external()),
    }
    return [
        Contender(name, _on_loop(loop, batch), self_timed=True)
        for name, batch in batches.items()
    ]


def run(options: Options) -> Family:
    """Time the wrappers, interleaved, on one event loop."""
    family = Family("calls", "Service operations and external calls")
    loop = asyncio.new_event_loop()
    contenders = [
        Contender("bare", _on_loop(loop, bare)),
        Contender(
            "tenacity.async_retrying", _on_loop(loop, tenacity_async_retrying)
        ),
        Contender(
            "stamina.retry_context", _on_loop(loop, stamina_retry_context)
        ),
        Contender("stamina.retry", _on_loop(loop, _stamina_decorated())),
        *_subject_contenders(family, options, loop),
    ]
    samples = interleave(
        contenders, options.rounds(40), options.target(0.04, 0.01)
    )
    loop.close()
    for key, sample in samples.items():
        family.timing(key, _LABELS[key], sample)
    for subject in ("call_external", "call_external.repeated"):
        family.compare += [
            (subject, "tenacity.async_retrying"),
            (subject, "stamina.retry_context"),
            (subject, "bare"),
        ]
    family.compare += [
        ("execute_operation.first", "bare"),
        ("execute_operation.repeated", "bare"),
    ]
    family.notes.append(
        "The first-in-request figures time each call alone (two clock "
        "readings per call, about 0.3 µs) while the request around it is "
        "opened and closed untimed; the writer's flush at the end of "
        "each batch is timed."
    )
    return family
