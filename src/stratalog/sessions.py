"""Session lookup for the middleware: who is behind a session id.

Design note. The lookup sits on every request that carries a session id,
so a store that is down, slow or silent must cost a request at most the
lookup budget, and the log one warning per outage. :class:`SessionService`
therefore keeps a small state machine::

    healthy --failure--> unavailable --probe succeeds--> healthy
                 (one warning)    |  (one info line)
                                  +--probe fails--> unavailable (silent)

While unavailable, lookups return ``None`` at once until the backoff has
passed; then a single request probes the store while the others still
skip it. A failure is any exception from the store, including the budget
running out; a missing session is not a failure.

The budget is enforced from outside the store: a client may hold on past
a cancel (redis-py on Python 3.11 loses one that arrives as a send
completes, then reads on for its socket timeout). So the lookup runs as a
task of its own, the caller waits for it at most the budget, and a late
lookup is cancelled and left to end in the background, its outcome
collected so that nothing is reported as never retrieved.

The stores follow the lightweight pattern for internal infrastructure:
no log line per call, timeouts on every socket, no retries of their own.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

import orjson

from . import _diagnostics
from .exceptions import ConfigurationError
from .logger import UnifiedLogger, get_unified_logger

__all__ = [
    "ISessionStore",
    "InMemorySessionStore",
    "RedisSessionStore",
    "SessionService",
]


@runtime_checkable
class ISessionStore(Protocol):
    """Where sessions live: a session id maps to a dict, or to nothing."""

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the session document, or ``None`` when there is none."""
        ...


class InMemorySessionStore:
    """Sessions in a dict of this process, each expiring after a TTL.

    For a single process and for tests. At most *max_sessions* are kept;
    the oldest is dropped to make room. Not shared between threads.
    """

    def __init__(
        self, ttl: float = 3_600.0, *, max_sessions: int = 100_000
    ) -> None:
        _check_positive("ttl", ttl)
        _check_positive("max_sessions", max_sessions)
        self.ttl = ttl
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, tuple[float, dict[str, Any]]] = (
            OrderedDict()
        )

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """Return a copy of the live session, or ``None``."""
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        expires, data = entry
        if time.monotonic() >= expires:
            del self._sessions[session_id]
            return None
        return dict(data)

    async def set(
        self,
        session_id: str,
        data: dict[str, Any],
        ttl: float | None = None,
    ) -> None:
        """Store *data* under *session_id* for *ttl* seconds (or the TTL)."""
        expires = time.monotonic() + (self.ttl if ttl is None else ttl)
        self._sessions.pop(session_id, None)
        self._sessions[session_id] = (expires, dict(data))
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    async def delete(self, session_id: str) -> None:
        """Forget *session_id*."""
        self._sessions.pop(session_id, None)


class RedisSessionStore:
    """Sessions as JSON documents in Redis, under ``prefix + session_id``.

    Pass a ``redis.asyncio`` client, or a *url* to build one with socket
    timeouts and no retries: the caller's budget decides how long a lookup
    may take, and a retry loop inside the client would only spend it.
    Needs the ``redis`` extra when no client is given.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        client: Any = None,
        prefix: str = "session:",
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
    ) -> None:
        _check_positive("socket_timeout", socket_timeout)
        _check_positive("connect_timeout", connect_timeout)
        self.prefix = prefix
        self.client = client
        if client is None:
            self.client = _redis_client(url, socket_timeout, connect_timeout)

    async def get(self, session_id: str) -> dict[str, Any] | None:
        """Return the session document, or ``None`` (also when unreadable)."""
        raw = await self.client.get(self.prefix + session_id)
        if raw is None:
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            _diagnostics.report(
                "session-store", "a session document is not JSON", exc
            )
            return None
        return data if isinstance(data, dict) else None

    async def set(
        self,
        session_id: str,
        data: dict[str, Any],
        ttl: float | None = None,
    ) -> None:
        """Store *data* as JSON, expiring after *ttl* seconds if given."""
        expires = None if ttl is None else max(1, int(ttl * 1000))
        await self.client.set(
            self.prefix + session_id, orjson.dumps(data), px=expires
        )

    async def delete(self, session_id: str) -> None:
        """Remove the session."""
        await self.client.delete(self.prefix + session_id)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()


def _redis_client(url: str, socket_timeout: float, connect: float) -> Any:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=connect,
        retry=Retry(NoBackoff(), 0),
    )


class SessionService:
    """Look up sessions within a time budget, riding out store outages.

    Every lookup is bounded by *budget* seconds. A failing store is
    reported once per outage (``session_lookup.unavailable``, a warning)
    and its recovery once (``session_lookup.recovered``, info); for
    *backoff* seconds after a failure, lookups are skipped. Meant for one
    event loop: the state is not guarded for use from several threads.
    """

    def __init__(
        self,
        store: ISessionStore | None = None,
        *,
        budget: float = 0.05,
        backoff: float = 1.0,
        user_key: str = "user_id",
    ) -> None:
        _check_positive("budget", budget)
        _check_positive("backoff", backoff)
        self.store: ISessionStore = (
            store if store is not None else InMemorySessionStore()
        )
        self.budget = budget
        self.backoff = backoff
        self.user_key = user_key
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False
        self._skipped = 0
        self._abandoned: set[asyncio.Task[dict[str, Any] | None]] = set()

    @property
    def available(self) -> bool:
        """Whether the store is believed to be reachable."""
        return self._down_since is None

    async def get_session(
        self, session_id: str, *, budget: float | None = None
    ) -> dict[str, Any] | None:
        """Return the session, or ``None`` if missing or not reachable now.

        Never raises, except ``CancelledError`` when the caller is
        cancelled.
        """
        down = self._down_since is not None
        if down:
            if not self._may_probe():
                self._skipped += 1
                return None
            self._probing = True
        limit = self.budget if budget is None else budget
        try:
            session = await self._lookup(session_id, limit)
        except Exception as exc:
            self._failed(exc, limit)
            return None
        finally:
            if down:
                self._probing = False
        if self._down_since is not None:
            self._recovered()
        return session

    async def get_user_id(
        self, session_id: str, *, budget: float | None = None
    ) -> str | None:
        """Return the user id of the session, or ``None``."""
        session = await self.get_session(session_id, budget=budget)
        if not session:
            return None
        user_id = session.get(self.user_key)
        return None if user_id is None else str(user_id)

    async def _lookup(
        self, session_id: str, budget: float
    ) -> dict[str, Any] | None:
        task = asyncio.create_task(self.store.get(session_id))
        try:
            done, _ = await asyncio.wait({task}, timeout=budget)
        finally:
            if not task.done():
                self._abandon(task)
        if not done:
            raise TimeoutError

        return task.result()

    def _abandon(self, task: asyncio.Task[dict[str, Any] | None]) -> None:
        # The loop keeps only weak references to tasks: hold this one
        # until it ends.
        self._abandoned.add(task)
        task.add_done_callback(self._collect)
        task.cancel()

    def _collect(self, task: asyncio.Task[dict[str, Any] | None]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()

    def _may_probe(self) -> bool:
        return not self._probing and time.monotonic() >= self._retry_at

    def _failed(self, exc: Exception, budget: float) -> None:
        now = time.monotonic()
        self._retry_at = now + self.backoff
        if self._down_since is not None:
            return
        self._down_since = now
        self._skipped = 0
        _logger().warning(
            "session_lookup.unavailable",
            store=type(self.store).__name__,
            error_type=type(exc).__name__,
            error_message=_message(exc, budget),
            retry_in_s=self.backoff,
        )

    def _recovered(self) -> None:
        down_since, self._down_since = self._down_since, None
        if down_since is None:
            return
        _logger().info(
            "session_lookup.recovered",
            store=type(self.store).__name__,
            unavailable_s=round(time.monotonic() - down_since, 3),
            skipped=self._skipped,
        )


def _logger() -> UnifiedLogger:
    return get_unified_logger("stratalog.sessions", "infrastructure")


def _message(exc: Exception, budget: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within the {budget * 1000:g} ms budget"
    try:
        text = str(exc)
    except Exception:
        return type(exc).__name__
    return text[:200]


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigurationError(name, value, "a positive number")
