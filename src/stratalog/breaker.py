"""Circuit breaker: stop calling a service that keeps failing.

After ``failure_threshold`` consecutive failures the breaker opens and
refuses calls with :class:`CircuitOpenError`, without contacting the
service. After ``recovery_timeout`` it turns half-open and admits up to
``half_open_max_calls`` probes at once; the first probe to succeed closes
it, the first to fail, or to end without a verdict (cancelled, excluded
error, 4xx), opens it again.

Design note. One ``threading.Lock`` guards the state. It is held only for
bookkeeping: never across an await, a call out or the ``on_transition``
callback, which runs after the lock is released so that it may read the
breaker. Every transition starts a new generation and an admission
remembers its own, so a call admitted before the breaker opened cannot
move it when it finally ends. Probe slots are leases: a slot is freed
when its probe settles or its lease runs out, whatever happened to the
state meanwhile, so a slow probe from an earlier half-open period still
counts against the limit, and a probe that is never settled (a caller
that forgot, a process that crashed) cannot wedge the breaker half-open.
:class:`RedisBreakerState` applies the same rules in Lua scripts, with the
Redis server's clock as the one clock all processes share.
"""

from __future__ import annotations

import enum
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from stratalog import _diagnostics
from stratalog._breaker_redis import RedisBreakerState
from stratalog._retry import is_client_error
from stratalog.exceptions import (
    CircuitOpenError,
    ConfigurationError,
    ResponseValidationError,
    ValidationError,
)

__all__ = [
    "Admission",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitState",
    "RedisBreakerState",
]


class CircuitState(enum.StrEnum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


OnTransition = Callable[
    [CircuitState, CircuitState, dict[str, object]], object
]

_NEVER_COUNTED = (CircuitOpenError, ResponseValidationError, ValidationError)


@dataclass(frozen=True, slots=True)
class CircuitBreakerConfig:
    """When a circuit breaker opens, and how it tries to close again.

    Errors that are instances of *excluded_exceptions* never count as
    failures, nor do HTTP 4xx other than 408 and 429. *probe_lease* is how
    long a probe holds its slot before it is presumed lost.
    """

    failure_threshold: int = 5
    recovery_timeout: float = 60.0
    half_open_max_calls: int = 1
    excluded_exceptions: tuple[type[BaseException], ...] = ()
    probe_lease: float = 120.0

    def __post_init__(self) -> None:
        rules = (
            ("failure_threshold", _is_count, "an int >= 1"),
            ("recovery_timeout", _is_seconds, "finite seconds >= 0"),
            ("half_open_max_calls", _is_count, "an int >= 1"),
            ("excluded_exceptions", _is_error_types, "a tuple of classes"),
            ("probe_lease", _is_positive_seconds, "finite seconds > 0"),
        )
        for field, is_valid, allowed in rules:
            value = getattr(self, field)
            if not is_valid(value):
                raise ConfigurationError(
                    f"CircuitBreakerConfig.{field}", value, allowed
                )


class Admission:
    """Permission for one attempt; settle it exactly once.

    *probe* tells whether the attempt is a half-open probe, *state* is the
    breaker's state when it was admitted and *shared* whether that state
    came from a shared store. Settling it twice does nothing.
    """

    __slots__ = ("_generation", "_settled", "_slot", "shared", "state")

    def __init__(
        self,
        state: CircuitState,
        generation: int,
        slot: int | str | None = None,
        *,
        shared: bool = False,
    ) -> None:
        self.state = state
        self.shared = shared
        self._generation = generation
        self._slot = slot
        self._settled = False

    @property
    def probe(self) -> bool:
        """Whether this attempt is a half-open probe."""
        return self._slot is not None


class _Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


_Transition = tuple[CircuitState, CircuitState, dict[str, object]]


class CircuitBreaker:
    """A circuit breaker for the calls to one external service.

    Use it around each single attempt, not around a whole retry loop::

        admission = breaker.acquire()  # may raise CircuitOpenError
        try:
            result = call()
        except BaseException as exc:
            breaker.record_failure(admission, exc)
            raise
        breaker.record_success(admission)

    or ``with breaker.attempt():`` / ``async with breaker.attempt():``,
    which do the same. The error that trips the breaker reaches its caller
    unchanged. The methods are thread-safe and never block on I/O. With a
    *state_store*, the ``*_async`` methods share state through it and
    fall back to this process's state while it is unreachable; the plain
    methods always use this process's state, and an admission must be
    settled by the family of methods that granted it.

    *on_transition(old, new, info)* is called once per transition, with
    ``info`` holding ``client``, ``failures``, ``reason`` and ``shared``;
    if it raises, the error is reported and the breaker carries on.
    """

    def __init__(
        self,
        name: str,
        config: CircuitBreakerConfig | None = None,
        *,
        on_transition: OnTransition | None = None,
        clock: Callable[[], float] = time.monotonic,
        state_store: RedisBreakerState | None = None,
    ) -> None:
        self.name = name
        self.config = config or CircuitBreakerConfig()
        self._on_transition = on_transition
        self._clock = clock
        self._store = state_store
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._generation = 0
        self._failures = 0
        self._opened_at = 0.0
        self._probes: dict[int, float] = {}
        self._slot_ids = itertools.count(1)

    @property
    def state(self) -> CircuitState:
        """The state in this process."""
        return self._state

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted in this process."""
        return self._failures

    def snapshot(self) -> dict[str, object]:
        """Describe this process's state, for metrics and health checks."""
        with self._lock:
            now = self._clock()
            live = sum(1 for end in self._probes.values() if end > now)
            return {
                "client": self.name,
                "state": self._state.value,
                "failures": self._failures,
                "probes_in_flight": live,
                "next_probe_in": self._next_probe_in(now),
                "shared": False,
            }

    def counts_as_failure(self, exc: BaseException) -> bool:
        """Tell whether *exc* counts against the service's health.

        Cancellation, excluded errors, HTTP 4xx other than 408 and 429,
        and stratalog's validation errors do not.
        """
        if not isinstance(exc, Exception):
            return False
        if isinstance(exc, _NEVER_COUNTED + self.config.excluded_exceptions):
            return False

        return not is_client_error(exc)

    def acquire(self, operation: str | None = None) -> Admission:
        """Admit one attempt, or raise :class:`CircuitOpenError`.

        *operation* is only copied into the error.
        """
        with self._lock:
            now = self._clock()
            transitions = self._recover(now)
            verdict = self._admit(now) or self._refusal(now, operation)
        self._announce(transitions)
        if isinstance(verdict, CircuitOpenError):
            raise verdict

        return verdict

    def record_success(self, admission: Admission) -> None:
        """Settle *admission* as a success."""
        self._finish(admission, _Outcome.SUCCESS)

    def record_failure(self, admission: Admission, exc: BaseException) -> None:
        """Settle *admission* as failed with *exc*.

        An error that does not count (see :meth:`counts_as_failure`)
        settles it as :meth:`release` does.
        """
        self._finish(admission, self._outcome(exc))

    def release(self, admission: Admission) -> None:
        """Settle *admission* without a verdict on the service's health.

        Releasing a probe opens the breaker again.
        """
        self._finish(admission, _Outcome.NEUTRAL)

    async def acquire_async(self, operation: str | None = None) -> Admission:
        """Admit one attempt, deciding from the shared state if any."""
        store = self._store
        if store is None or not store.available:
            return self.acquire(operation)
        try:
            grant = await store.acquire(self.name, self.config)
        except Exception as exc:
            self._report_store(exc)
            return self.acquire(operation)
        state = CircuitState(grant.state)
        if grant.previous:
            old = CircuitState(grant.previous)
            transition = self._transition(
                old, state, grant.failures, None, shared=True
            )
            self._announce([transition])
        if not grant.admitted:
            raise CircuitOpenError(
                self.name,
                state=state,
                next_probe_in=grant.wait,
                operation=operation,
            )

        return Admission(state, grant.generation, grant.token, shared=True)

    async def record_success_async(self, admission: Admission) -> None:
        """Settle *admission* as a success."""
        await self._finish_async(admission, _Outcome.SUCCESS)

    async def record_failure_async(
        self, admission: Admission, exc: BaseException
    ) -> None:
        """Settle *admission* as failed with *exc*."""
        await self._finish_async(admission, self._outcome(exc))

    async def release_async(self, admission: Admission) -> None:
        """Settle *admission* without a verdict on the service's health."""
        await self._finish_async(admission, _Outcome.NEUTRAL)

    async def snapshot_async(self) -> dict[str, object]:
        """Describe the shared state if there is a store, else this one."""
        store = self._store
        if store is None or not store.available:
            return self.snapshot()
        try:
            return await store.snapshot(self.name, self.config)
        except Exception as exc:
            self._report_store(exc)
            return self.snapshot()

    def attempt(self, operation: str | None = None) -> _Attempt:
        """Guard one attempt with ``with`` or ``async with``.

        Entering admits the attempt (or raises :class:`CircuitOpenError`)
        and gives its :class:`Admission`; leaving settles it from how the
        block ended. Exceptions pass through unchanged.
        """
        return _Attempt(self, operation)

    def _outcome(self, exc: BaseException | None) -> _Outcome:
        if exc is None:
            return _Outcome.SUCCESS
        if self.counts_as_failure(exc):
            return _Outcome.FAILURE

        return _Outcome.NEUTRAL

    def _finish(self, admission: Admission, outcome: _Outcome) -> None:
        if admission.shared:
            _diagnostics.report(
                "breaker.shared_admission_settled_sync",
                f"breaker {self.name!r}: an admission from acquire_async "
                "was settled by a sync method and is ignored",
            )
            return
        with self._lock:
            transitions = self._settle(admission, outcome)
        self._announce(transitions)

    async def _finish_async(
        self, admission: Admission, outcome: _Outcome
    ) -> None:
        store = self._store
        if not admission.shared or store is None:
            self._finish(admission, outcome)
            return
        with self._lock:
            if admission._settled:
                return
            admission._settled = True
        if outcome is _Outcome.NEUTRAL and not admission.probe:
            return
        try:
            verdict = await store.settle(
                self.name,
                self.config,
                outcome=outcome.value,
                generation=admission._generation,
                token=_token(admission),
            )
        except Exception as exc:
            self._report_store(exc)
            return
        if verdict.previous:
            old, new = (
                CircuitState(verdict.previous),
                CircuitState(verdict.state),
            )
            transition = self._transition(
                old, new, verdict.failures, outcome, shared=True
            )
            self._announce([transition])

    def _settle(
        self, admission: Admission, outcome: _Outcome
    ) -> list[_Transition]:
        if admission._settled:
            return []
        admission._settled = True
        now = self._clock()
        if not self._free_slot(admission, now):
            return []
        if admission._generation != self._generation:
            return []
        if outcome is _Outcome.FAILURE:
            self._failures += 1
        elif outcome is _Outcome.SUCCESS:
            self._failures = 0
        target = self._next_state(outcome)
        if target is self._state:
            return []

        return [self._move(target, now, outcome)]

    def _next_state(self, outcome: _Outcome) -> CircuitState:
        if self._state is CircuitState.HALF_OPEN:
            if outcome is _Outcome.SUCCESS:
                return CircuitState.CLOSED
            return CircuitState.OPEN
        if self._failures >= self.config.failure_threshold:
            return CircuitState.OPEN

        return self._state

    def _free_slot(self, admission: Admission, now: float) -> bool:
        slot = admission._slot
        if not isinstance(slot, int):
            return True
        lease_end = self._probes.pop(slot, None)

        return lease_end is not None and lease_end > now

    def _recover(self, now: float) -> list[_Transition]:
        if self._state is not CircuitState.OPEN:
            return []
        if now < self._opened_at + self.config.recovery_timeout:
            return []

        return [self._move(CircuitState.HALF_OPEN, now, None)]

    def _admit(self, now: float) -> Admission | None:
        if self._state is CircuitState.CLOSED:
            return Admission(self._state, self._generation)
        self._probes = {s: end for s, end in self._probes.items() if end > now}
        if self._state is CircuitState.OPEN:
            return None
        if len(self._probes) >= self.config.half_open_max_calls:
            return None
        slot = next(self._slot_ids)
        self._probes[slot] = now + self.config.probe_lease

        return Admission(self._state, self._generation, slot)

    def _refusal(self, now: float, operation: str | None) -> CircuitOpenError:
        return CircuitOpenError(
            self.name,
            state=self._state,
            next_probe_in=self._next_probe_in(now),
            operation=operation,
        )

    def _move(
        self, new: CircuitState, now: float, outcome: _Outcome | None
    ) -> _Transition:
        old = self._state
        self._state = new
        self._generation += 1
        if new is CircuitState.OPEN:
            self._opened_at = now

        return self._transition(
            old, new, self._failures, outcome, shared=False
        )

    def _next_probe_in(self, now: float) -> float:
        if self._state is not CircuitState.OPEN:
            return 0.0

        return max(0.0, self._opened_at + self.config.recovery_timeout - now)

    def _transition(
        self,
        old: CircuitState,
        new: CircuitState,
        failures: int,
        outcome: _Outcome | None,
        *,
        shared: bool,
    ) -> _Transition:
        info: dict[str, object] = {
            "client": self.name,
            "failures": failures,
            "reason": _reason(old, new, outcome),
            "shared": shared,
        }

        return old, new, info

    def _announce(self, transitions: list[_Transition]) -> None:
        callback = self._on_transition
        if callback is None:
            return
        for old, new, info in transitions:
            try:
                callback(old, new, info)
            except Exception as exc:
                _diagnostics.report(
                    "breaker.on_transition_failed",
                    f"on_transition of breaker {self.name!r} raised",
                    exc,
                )

    def _report_store(self, exc: Exception) -> None:
        _diagnostics.report(
            "breaker.state_store_unavailable",
            f"breaker {self.name!r} cannot reach its shared state; "
            "deciding from this process's state until it answers",
            exc,
        )


class _Attempt:
    """The context manager behind :meth:`CircuitBreaker.attempt`."""

    __slots__ = ("_admission", "_breaker", "_operation")

    def __init__(self, breaker: CircuitBreaker, operation: str | None):
        self._breaker = breaker
        self._operation = operation
        self._admission: Admission | None = None

    def __enter__(self) -> Admission:
        self._admission = self._breaker.acquire(self._operation)
        return self._admission

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._admission is not None:
            outcome = self._breaker._outcome(exc)
            self._breaker._finish(self._admission, outcome)

    async def __aenter__(self) -> Admission:
        self._admission = await self._breaker.acquire_async(self._operation)
        return self._admission

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._admission is not None:
            outcome = self._breaker._outcome(exc)
            await self._breaker._finish_async(self._admission, outcome)


def _reason(
    old: CircuitState, new: CircuitState, outcome: _Outcome | None
) -> str:
    if new is CircuitState.CLOSED:
        return "probe_succeeded"
    if new is CircuitState.HALF_OPEN:
        return "recovery_timeout_elapsed"
    if old is CircuitState.CLOSED:
        return "failure_threshold_reached"
    if outcome is _Outcome.FAILURE:
        return "probe_failed"

    return "probe_abandoned"


def _token(admission: Admission) -> str | None:
    slot = admission._slot

    return slot if isinstance(slot, str) else None


def _is_count(value: object) -> bool:
    return (
        isinstance(value, int) and not isinstance(value, bool) and value >= 1
    )


def _is_seconds(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _is_positive_seconds(value: object) -> bool:
    return _is_seconds(value) and value != 0


def _is_error_types(value: object) -> bool:
    return isinstance(value, tuple) and all(
        isinstance(t, type) and issubclass(t, BaseException) for t in value
    )
