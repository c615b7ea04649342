"""Session stores and the session service: budgets, outages, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import stratalog
from _servers import (
    BlackHole,
    RedisServer,
    SilentServer,
    UvicornThread,
    refused_port,
)
from stratalog import _diagnostics
from stratalog.exceptions import ConfigurationError
from stratalog.middleware import LoggingMiddleware
from stratalog.sessions import (
    InMemorySessionStore,
    ISessionStore,
    RedisSessionStore,
    SessionService,
)
from stratalog.testing import MemorySink

log = stratalog.get_unified_logger("tests.profile", "api")

BUDGET = 0.1


def lines(sink: MemorySink, event: str) -> list[dict[str, Any]]:
    """Return the lines of one event."""
    return [r for r in sink.records() if r["event"] == event]


@contextlib.contextmanager
def unreachable(kind: str) -> Iterator[str]:
    """Yield a Redis URL that never answers in the way *kind* says."""
    if kind == "refused":
        yield f"redis://127.0.0.1:{refused_port()}/0"
        return
    target = BlackHole() if kind == "black-hole" else SilentServer()
    try:
        yield f"redis://127.0.0.1:{target.port}/0"
    finally:
        target.close()


UNREACHABLE = ["black-hole", "silent", "refused"]


class FailingStore:
    """A store that fails every call until told otherwise; counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = True

    async def get(self, session_id: str) -> dict[str, Any] | None:
        self.calls += 1
        await asyncio.sleep(0)
        if self.failing:
            raise ConnectionError("store down")
        return {"user_id": "u-back"}


# -- the in-memory store -----------------------------------------------------


async def test_in_memory_sessions_are_stored_and_copied() -> None:
    """A stored session comes back as a copy; deleted, it is gone."""
    store = InMemorySessionStore()
    await store.set("s-1", {"user_id": "u-1"})
    found = await store.get("s-1")
    assert found == {"user_id": "u-1"}
    assert found is not None
    found["user_id"] = "changed"
    assert await store.get("s-1") == {"user_id": "u-1"}
    await store.delete("s-1")
    assert await store.get("s-1") is None
    assert isinstance(store, ISessionStore)


async def test_in_memory_sessions_expire_after_their_ttl() -> None:
    """An expired session reads as missing."""
    store = InMemorySessionStore(ttl=0.01)
    await store.set("s-1", {"user_id": "u-1"})
    await store.set("s-2", {"user_id": "u-2"}, ttl=60)
    await asyncio.sleep(0.03)
    assert await store.get("s-1") is None
    assert await store.get("s-2") == {"user_id": "u-2"}


async def test_in_memory_store_keeps_at_most_max_sessions() -> None:
    """The oldest session makes room for a new one."""
    store = InMemorySessionStore(max_sessions=2)
    for n in range(3):
        await store.set(f"s-{n}", {"n": n})
    assert await store.get("s-0") is None
    assert await store.get("s-2") == {"n": 2}


# -- the Redis store ---------------------------------------------------------


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A RedisSessionStore on the test's own redis-server."""
    store = RedisSessionStore(redis_server.url)
    try:
        yield store
    finally:
        await store.aclose()


async def test_redis_sessions_round_trip_as_json(
    redis_store: RedisSessionStore, redis_server: RedisServer
) -> None:
    """Set, get and delete through a real server; the TTL is applied."""
    await redis_store.set("s-1", {"user_id": "u-1", "roles": ["a"]}, ttl=30)
    assert await redis_store.get("s-1") == {"user_id": "u-1", "roles": ["a"]}
    ttl = int(redis_server.command("PTTL", "session:s-1")[1:-2])
    assert 0 < ttl <= 30_000
    await redis_store.delete("s-1")
    assert await redis_store.get("s-1") is None


@pytest.mark.parametrize("stored", ["not json", "[1, 2]"])
async def test_an_unreadable_redis_session_reads_as_missing(
    redis_store: RedisSessionStore, redis_server: RedisServer, stored: str
) -> None:
    """A corrupt document is no session, and not an outage."""
    redis_server.command("SET", "session:s-bad", stored)
    assert await redis_store.get("s-bad") is None


async def test_redis_lookups_write_no_lines(
    redis_store: RedisSessionStore,
) -> None:
    """The lightweight pattern: no log line per call."""
    sink = MemorySink()
    stratalog.configure(sink=sink, format="json", level="info")
    service = SessionService(redis_store)
    await redis_store.set("s-1", {"user_id": "u-1"})
    for _ in range(10):
        assert await service.get_user_id("s-1") == "u-1"
    assert sink.lines == []


# -- the service: budget, outage, recovery ------------------------------------


async def test_the_service_returns_the_user_id() -> None:
    """A live session gives its user; a missing one gives None."""
    store = InMemorySessionStore()
    await store.set("s-1", {"user_id": 42})
    service = SessionService(store)
    assert await service.get_user_id("s-1") == "42"
    assert await service.get_user_id("s-2") is None
    assert service.available


@pytest.mark.parametrize("kind", UNREACHABLE)
async def test_an_unreachable_redis_costs_at_most_the_budget(
    sink: MemorySink, kind: str
) -> None:
    """Black hole, silence or refusal: None within the budget, one warning."""
    with unreachable(kind) as url:
        store = RedisSessionStore(url)
        service = SessionService(store, budget=BUDGET, backoff=0.2)
        try:
            started = time.perf_counter()
            found = await asyncio.gather(
                *(service.get_user_id("s-abc") for _ in range(20))
            )
            elapsed = time.perf_counter() - started
            again = await service.get_user_id("s-abc")
        finally:
            await store.aclose()
    assert found == [None] * 20
    assert again is None
    # A stall would last the client's 1 s socket timeout or more.
    assert elapsed < 0.9
    assert not service.available
    (warning,) = lines(sink, "session_lookup.unavailable")
    assert warning["level"] == "warning"
    assert warning["store"] == "RedisSessionStore"


async def timed_lookup(service: SessionService) -> float:
    """Return how long one user id lookup took, in seconds."""
    started = time.perf_counter()
    assert await service.get_user_id("s-abc") is None
    return time.perf_counter() - started


async def busy_loop(stop: asyncio.Event) -> None:
    """Hold the event loop 10 ms at a time, as a busy application does."""
    while not stop.is_set():
        time.sleep(0.01)
        await asyncio.sleep(0)


async def test_a_silent_redis_costs_each_lookup_at_most_the_budget(
    sink: MemorySink,
) -> None:
    """Every one of 50 concurrent lookups ends within the budget.

    On a busy loop the cancel that ends a lookup can reach redis-py just
    as a send completes, and be lost: the client then reads on for its
    socket timeout. The caller must not wait for that.
    """
    server = SilentServer()
    stop = asyncio.Event()
    busy = asyncio.create_task(busy_loop(stop))
    slowest = []
    try:
        for _ in range(3):
            store = RedisSessionStore(f"redis://127.0.0.1:{server.port}/0")
            service = SessionService(store, budget=0.05)
            try:
                took = await asyncio.gather(
                    *(timed_lookup(service) for _ in range(50))
                )
            finally:
                await store.aclose()
            slowest.append(max(took))
    finally:
        stop.set()
        await busy
        server.close()
    # A lost cancel would cost the client's 1 s socket timeout.
    assert max(slowest) < 0.05 + 0.3
    assert len(lines(sink, "session_lookup.unavailable")) == 3


async def test_a_store_slow_to_cancel_costs_at_most_the_budget(
    sink: MemorySink,
) -> None:
    """A lookup that cleans up slowly when cancelled is left to finish."""
    finished = asyncio.Event()

    class SlowToCancel:
        async def get(self, session_id: str) -> dict[str, Any] | None:
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                await asyncio.sleep(0.5)
                finished.set()
                raise ConnectionError("closed late") from None
            return None

    service = SessionService(SlowToCancel(), budget=0.05)
    took = await asyncio.gather(*(timed_lookup(service) for _ in range(50)))
    assert max(took) < 0.05 + 0.3
    assert not finished.is_set()
    await asyncio.wait_for(finished.wait(), 5)
    await asyncio.sleep(0.01)
    (warning,) = lines(sink, "session_lookup.unavailable")
    assert warning["error_type"] == "TimeoutError"


async def test_lookups_are_skipped_during_the_backoff(
    sink: MemorySink,
) -> None:
    """After a failure the store is left alone until the backoff is over."""
    store = FailingStore()
    service = SessionService(store, backoff=0.5)
    for _ in range(50):
        assert await service.get_user_id("s-1") is None
    assert store.calls == 1
    await asyncio.sleep(0.55)
    await asyncio.gather(*(service.get_user_id("s-1") for _ in range(10)))
    assert store.calls == 2
    assert len(lines(sink, "session_lookup.unavailable")) == 1


async def test_the_service_recovers_by_itself(sink: MemorySink) -> None:
    """One probe after the backoff; success logs one recovery line."""
    store = FailingStore()
    service = SessionService(store, backoff=0.05)
    assert await service.get_user_id("s-1") is None
    store.failing = False
    await asyncio.sleep(0.06)
    assert await service.get_user_id("s-1") == "u-back"
    assert service.available
    (recovered,) = lines(sink, "session_lookup.recovered")
    assert recovered["level"] == "info"
    assert recovered["unavailable_s"] >= 0.05
    store.failing = True
    assert await service.get_user_id("s-1") is None
    assert len(lines(sink, "session_lookup.unavailable")) == 2


async def test_a_real_redis_outage_and_return(
    redis_server: RedisServer, sink: MemorySink
) -> None:
    """Stop redis: one warning; start it again: lookups come back."""
    store = RedisSessionStore(redis_server.url)
    service = SessionService(store, budget=BUDGET, backoff=0.1)
    try:
        await store.set("s-1", {"user_id": "u-1"})
        assert await service.get_user_id("s-1") == "u-1"
        redis_server.stop()
        for _ in range(5):
            assert await service.get_user_id("s-1") is None
            await asyncio.sleep(0.05)
        redis_server.start()
        await store.set("s-1", {"user_id": "u-1"})
        deadline = time.monotonic() + 5
        while await service.get_user_id("s-1") != "u-1":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    finally:
        await store.aclose()
    assert len(lines(sink, "session_lookup.unavailable")) == 1
    assert len(lines(sink, "session_lookup.recovered")) == 1


async def test_cancellation_is_not_an_outage() -> None:
    """A caller cancelled mid-lookup leaves the store believed healthy."""

    class Slow:
        async def get(self, session_id: str) -> dict[str, Any] | None:
            await asyncio.sleep(1)
            return None

    service = SessionService(Slow(), budget=5)
    task = asyncio.create_task(service.get_user_id("s-1"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert service.available


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"budget": 0}, id="budget"),
        pytest.param({"backoff": -1}, id="backoff"),
    ],
)
def test_bad_service_settings_are_refused(options: dict[str, Any]) -> None:
    """Budget and backoff must be positive."""
    with pytest.raises(ConfigurationError):
        SessionService(**options)


# -- C22: through the middleware on a real server ----------------------------


def profile_app(store: Any, **options: Any) -> FastAPI:
    """An app whose /profile needs the user, behind the middleware."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await store.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/profile")
    async def profile() -> dict[str, bool]:
        log.info("profile.read")
        return {"ok": True}

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"up": True}

    service = SessionService(store, budget=BUDGET, **options)
    app.add_middleware(
        LoggingMiddleware, session_service=service, session_cookie="session"
    )
    return app


async def timed_get(
    client: httpx.AsyncClient, path: str, **kw: Any
) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.get(path, **kw)
    return response.status_code, time.perf_counter() - started


@pytest.mark.parametrize("kind", UNREACHABLE)
async def test_a_redis_outage_stalls_no_request(
    sink: MemorySink, kind: str
) -> None:
    """20 sessions and 5 health checks: normal answers, no stall (C22)."""
    with unreachable(kind) as url:
        app = profile_app(RedisSessionStore(url))
        with UvicornThread(app) as server:
            async with httpx.AsyncClient(base_url=server.url) as client:
                cookie = {"Cookie": "session=s-abc"}
                results = await asyncio.gather(
                    *(
                        timed_get(client, "/profile", headers=cookie)
                        for _ in range(20)
                    ),
                    *(timed_get(client, "/health") for _ in range(5)),
                )
    assert [status for status, _ in results] == [200] * 25
    # A stall would last the client's 1 s socket timeout or more.
    assert max(elapsed for _, elapsed in results) < 0.9
    profiles = lines(sink, "profile.read")
    assert len(profiles) == 20
    for line in profiles:
        assert line["session_id"] == "s-abc"
        assert "user_id" not in line
    assert len(lines(sink, "session_lookup.unavailable")) == 1


async def test_no_redis_call_without_a_session_id(
    redis_server: RedisServer, sink: MemorySink
) -> None:
    """Anonymous requests never reach Redis; a session does, once (C22)."""
    redis_server.command("SET", "session:s-abc", '{"user_id": "u-1"}')
    app = profile_app(RedisSessionStore(redis_server.url))
    with UvicornThread(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            for path in ["/health"] * 5 + ["/profile"] * 5:
                assert (await client.get(path)).status_code == 200
            assert redis_server.calls("get") == 0
            cookie = {"Cookie": "session=s-abc"}
            await client.get("/profile", headers=cookie)
    assert redis_server.calls("get") == 1
    (line,) = [r for r in lines(sink, "profile.read") if "session_id" in r]
    assert line["user_id"] == "u-1"


async def test_requests_recover_when_redis_comes_back(
    redis_server: RedisServer, sink: MemorySink
) -> None:
    """During the outage one warning; afterwards users are known (C22)."""
    redis_server.command("SET", "session:s-abc", '{"user_id": "u-1"}')
    app = profile_app(RedisSessionStore(redis_server.url), backoff=0.1)
    cookie = {"Cookie": "session=s-abc"}
    with UvicornThread(app) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            redis_server.stop()
            for _ in range(10):
                response = await client.get("/profile", headers=cookie)
                assert response.status_code == 200
            redis_server.start()
            redis_server.command("SET", "session:s-abc", '{"user_id": "u-1"}')
            deadline = time.monotonic() + 5
            while "user_id" not in lines(sink, "profile.read")[-1]:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
                await client.get("/profile", headers=cookie)
    assert len(lines(sink, "session_lookup.unavailable")) == 1
    assert len(lines(sink, "session_lookup.recovered")) == 1
    assert _diagnostics.counts().get("middleware", 0) == 0
