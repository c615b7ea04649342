"""Circuit breaker state kept in Redis, shared by many processes.

Each step of the breaker is one Lua script, run atomically on the server
and timed by the server's clock, so that processes whose monotonic clocks
have nothing in common still agree on when the breaker opened and when a
probe's lease ends. The rules are those of :mod:`stratalog.breaker`.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from stratalog.breaker import CircuitBreakerConfig

__all__ = ["RedisBreakerState"]


class SharedGrant(NamedTuple):
    """What the store answered to a request for admission."""

    state: str
    generation: int
    admitted: bool
    token: str | None
    wait: float
    previous: str
    failures: int


class SharedVerdict(NamedTuple):
    """The state after an attempt was settled in the store."""

    state: str
    failures: int
    previous: str


class RedisBreakerState:
    """Circuit breaker state shared through Redis by many processes.

    Give each process's :class:`~stratalog.breaker.CircuitBreaker` of one
    service the same name and a store on the same Redis: failures, the
    open period and the probe slots are then counted once for all of
    them, and each transition is announced by the one process that made
    it. Needs Redis 5 or later. *timeout* bounds each round trip; after a
    failure the store is left alone for *retry_interval* seconds, while
    breakers decide from their own process's state.
    """

    def __init__(
        self,
        redis_client: Redis,
        key_prefix: str = "stratalog:breaker",
        *,
        timeout: float = 0.1,
        retry_interval: float = 5.0,
    ) -> None:
        self._prefix = key_prefix
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._down_until = -math.inf
        self._acquire = redis_client.register_script(_ACQUIRE_LUA)
        self._settle = redis_client.register_script(_SETTLE_LUA)
        self._snapshot = redis_client.register_script(_SNAPSHOT_LUA)

    @property
    def available(self) -> bool:
        """False for *retry_interval* seconds after Redis failed."""
        return time.monotonic() >= self._down_until

    async def acquire(
        self, name: str, config: CircuitBreakerConfig
    ) -> SharedGrant:
        """Ask for admission of one attempt of breaker *name*."""
        token = secrets.token_hex(8)
        args = (
            _millis(config.recovery_timeout),
            config.half_open_max_calls,
            _millis(config.probe_lease),
            token,
        )
        reply = await self._run(self._acquire, name, args)
        state, generation, admitted, wait_ms, previous, failures = reply
        state = _text(state)
        probe = bool(admitted) and state == "half_open"

        return SharedGrant(
            state=state,
            generation=int(generation),
            admitted=bool(admitted),
            token=token if probe else None,
            wait=int(wait_ms) / 1000.0,
            previous=_text(previous),
            failures=int(failures),
        )

    async def settle(
        self,
        name: str,
        config: CircuitBreakerConfig,
        *,
        outcome: str,
        generation: int,
        token: str | None,
    ) -> SharedVerdict:
        """Record how an attempt admitted by :meth:`acquire` ended."""
        args = (outcome, generation, token or "", config.failure_threshold)
        state, failures, previous = await self._run(self._settle, name, args)

        return SharedVerdict(_text(state), int(failures), _text(previous))

    async def snapshot(
        self, name: str, config: CircuitBreakerConfig
    ) -> dict[str, object]:
        """Describe the shared state of breaker *name*."""
        args = (_millis(config.recovery_timeout),)
        reply = await self._run(self._snapshot, name, args)
        state, failures, probes, wait_ms = reply

        return {
            "client": name,
            "state": _text(state),
            "failures": int(failures),
            "probes_in_flight": int(probes),
            "next_probe_in": int(wait_ms) / 1000.0,
            "shared": True,
        }

    async def _run(
        self, script: Any, name: str, args: tuple[object, ...]
    ) -> list[Any]:
        # The braces put both keys in one Redis Cluster slot, which a
        # script touching several keys needs.
        base = f"{self._prefix}:{{{name}}}"
        try:
            async with asyncio.timeout(self._timeout):
                reply = await script(keys=[base, f"{base}:probes"], args=args)
        except Exception:
            self._down_until = time.monotonic() + self._retry_interval
            raise

        return list(reply)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()

    return str(value)


def _millis(seconds: float) -> int:
    return math.ceil(seconds * 1000)


# Times are integer milliseconds of the server's clock. Hash fields:
# state, generation, failures, opened_at. The probes key is a sorted set
# of probe tokens scored by the end of their lease.
_READ_LUA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local h = redis.call('HMGET', KEYS[1], 'state', 'generation', 'failures',
                     'opened_at')
local state = h[1] or 'closed'
local generation = tonumber(h[2] or '0')
local failures = tonumber(h[3] or '0')
local opened_at = tonumber(h[4] or '0')
"""

# ARGV: recovery_ms, max_probes, lease_ms, token.
# Returns state, generation, admitted, wait_ms, previous state, failures.
_ACQUIRE_LUA = (
    _READ_LUA
    + """
if state == 'closed' then
  return {state, generation, 1, 0, '', failures}
end
local previous = ''
if state == 'open' then
  local wait = opened_at + tonumber(ARGV[1]) - now
  if wait > 0 then
    return {state, generation, 0, wait, '', failures}
  end
  previous = state
  state = 'half_open'
  generation = generation + 1
  redis.call('HSET', KEYS[1], 'state', state, 'generation', generation)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  return {state, generation, 0, 0, previous, failures}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return {state, generation, 1, 0, previous, failures}
"""
)

# ARGV: outcome, generation, token ('' unless a probe), failure_threshold.
# Returns state, failures, previous state ('' unless it changed).
_SETTLE_LUA = (
    _READ_LUA
    + """
if ARGV[3] ~= '' then
  local lease_end = redis.call('ZSCORE', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[2], ARGV[3])
  if not lease_end or tonumber(lease_end) <= now then
    return {state, failures, ''}
  end
end
if tonumber(ARGV[2]) ~= generation then
  return {state, failures, ''}
end
local new = state
if ARGV[1] == 'success' then
  failures = 0
  if state == 'half_open' then new = 'closed' end
elseif ARGV[1] == 'failure' then
  failures = failures + 1
  if state == 'half_open' or failures >= tonumber(ARGV[4]) then
    new = 'open'
  end
elseif state == 'half_open' then
  new = 'open'
end
if new == state then
  redis.call('HSET', KEYS[1], 'failures', failures)
  return {state, failures, ''}
end
redis.call('HSET', KEYS[1], 'state', new, 'generation', generation + 1,
           'failures', failures, 'opened_at', now)
return {new, failures, state}
"""
)

# ARGV: recovery_ms. Returns state, failures, live probes, wait_ms.
_SNAPSHOT_LUA = (
    _READ_LUA
    + """
local probes = redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf')
local wait = 0
if state == 'open' then
  wait = math.max(0, opened_at + tonumber(ARGV[1]) - now)
end
return {state, failures, probes, wait}
"""
)
