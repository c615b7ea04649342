"""How an external call is told: its lines, metrics and summary entry.

One :class:`OutcomeRecorder` per client writes what happened to each call
and to the client's breaker, so that :mod:`stratalog.external` holds only
the flow of a call. A failure is written once, with its exception, inside
the call's operation: the cascade then records it as this layer's, and
the operation's own failure line and every layer further out refer to it
without a second traceback.

A call the breaker refuses is a decision, not a failure: its line has no
traceback. The refusal is still entered in the request's errors (once
per client and operation, as the cascade holds repeats), so the layers
it passes out through write references rather than tracebacks, also
when the refusal line itself is filtered out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._external_metrics import ClientMetrics, failure_kind
from .breaker import CircuitState
from .context import request_context
from .logger import _errors_of

if TYPE_CHECKING:
    from ._external_call import Call
    from .breaker import CircuitBreaker
    from .errors import ErrorRecord
    from .exceptions import CircuitOpenError
    from .logger import UnifiedLogger

__all__ = ["OutcomeRecorder"]

_TRANSITION_EVENTS = {
    CircuitState.OPEN: ("circuit.opened", "warning"),
    CircuitState.HALF_OPEN: ("circuit.half_opened", "info"),
    CircuitState.CLOSED: ("circuit.closed", "info"),
}


class OutcomeRecorder:
    """Writes the lines, metrics and request attributes of one client."""

    __slots__ = ("breaker", "client", "logger", "metrics")

    def __init__(self, client: str, logger: UnifiedLogger) -> None:
        self.client = client
        self.logger = logger
        self.metrics = ClientMetrics()
        self.breaker: CircuitBreaker | None = None

    def attempt_started(self, call: Call) -> None:
        """Write the debug line of one attempt, with its number."""
        self.logger.debug(
            "external.call.started",
            client=self.client,
            operation=call.operation,
            attempt=call.attempts,
        )

    def retry_hook(
        self, call: Call
    ) -> Callable[[int, float, Exception], None]:
        """Return the retry engine's callback for *call*."""

        def scheduled(attempt: int, delay: float, error: Exception) -> None:
            # An event, never deduplicated: each retry is worth its line.
            self.logger.log_event(
                "external.retry.scheduled",
                severity="warning",
                client=self.client,
                operation=call.operation,
                attempt=attempt,
                delay_s=round(delay, 3),
                error_type=type(error).__name__,
                failure_kind=failure_kind(error),
            )

        return scheduled

    def succeeded(self, call: Call, fields: dict[str, Any]) -> None:
        """Record a call that returned; *fields* go on its operation line."""
        self.metrics.succeeded(time.monotonic() - call.started)
        fields["attempts"] = call.attempts
        fields["outcome"] = "ok"
        if call.retries:
            fields["retries"] = call.retries
            self.logger.info(
                "external.call.succeeded",
                client=self.client,
                operation=call.operation,
                attempts=call.attempts,
                retries=call.retries,
            )
        self._remember(call, "ok")

    def failed(
        self, call: Call, error: Exception, fields: dict[str, Any]
    ) -> None:
        """Record a call that ended in *error*; write it, traceback once."""
        kind = failure_kind(error)
        self.metrics.failed(time.monotonic() - call.started, kind)
        fields["attempts"] = call.attempts
        fields["outcome"] = "error"
        self.logger.error(
            "external.call.failed",
            client=self.client,
            operation=call.operation,
            outcome="error",
            failure_kind=kind,
            attempts=call.attempts,
            retries=call.retries,
            attempted=call.attempted,
            breaker_state=self._breaker_state(),
            exc_info=error,
        )
        self._remember(call, "error")

    def cancelled(self, call: Call, fields: dict[str, Any]) -> None:
        """Record a call its caller abandoned."""
        self.metrics.was_cancelled()
        fields["attempts"] = call.attempts
        self._remember(call, "cancelled")

    def short_circuited(self, call: Call, refused: CircuitOpenError) -> None:
        """Record a call the breaker refused before it was made."""
        self.metrics.short_circuited()
        record = self._refusal_record(call, refused)
        self.logger.warning(
            "external.call.short_circuited",
            client=self.client,
            operation=call.operation,
            outcome="short_circuited",
            attempted=False,
            breaker_state=refused.state,
            retry_in_s=round(refused.next_probe_in, 3),
            error_type=record.type,
            error_id=record.error_id,
        )
        self._remember(call, "short_circuited")

    def circuit_moved(
        self,
        old: CircuitState,
        new: CircuitState,
        info: dict[str, object],
    ) -> None:
        """Write one line per breaker transition (its ``on_transition``)."""
        event, severity = _TRANSITION_EVENTS[new]
        self.logger.log_event(
            event,
            severity=severity,
            client=self.client,
            failures=info.get("failures"),
            from_state=old.value,
            to_state=new.value,
            reason=info.get("reason"),
            shared=info.get("shared"),
        )

    def _refusal_record(
        self, call: Call, refused: CircuitOpenError
    ) -> ErrorRecord:
        ctx = request_context.get()
        errors = _errors_of(ctx)
        key = f"external.{self.client}.{call.operation}.short_circuited"
        if ctx is not None:
            errors.repeat_under(key, refused)
        record = errors.find(refused)
        if record is None:
            layer = self.logger.layer
            record = errors.record(refused, layer, call.operation)
            if ctx is not None:
                errors.first_under(key, refused)

        return record

    def _remember(self, call: Call, outcome: str) -> None:
        ctx = request_context.get()
        if ctx is None:
            return
        key = f"external.{self.client}.{call.operation}"
        seen = ctx.attributes.get(key)
        calls = attempts = retries = 0
        if isinstance(seen, dict):
            calls = seen.get("calls", 0)
            attempts = seen.get("attempts", 0)
            retries = seen.get("retries", 0)
        ctx.set_attribute(
            key,
            {
                "calls": calls + 1,
                "attempts": attempts + call.attempts,
                "retries": retries + call.retries,
                "outcome": outcome,
                "breaker_state": self._breaker_state(),
            },
        )

    def _breaker_state(self) -> str | None:
        breaker = self.breaker
        return None if breaker is None else breaker.state.value
