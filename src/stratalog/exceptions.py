"""Errors that stratalog raises on purpose.

The hierarchy::

    StratalogError
     +-- ConfigurationError (also ValueError)
     +-- ValidationError (also ValueError)
     +-- ExternalCallError
          +-- ResponseValidationError
          +-- CircuitOpenError

Errors from a downstream service (timeouts, HTTP errors, resets) are not
wrapped: they reach the caller as themselves, so that code which catches
``httpx.ReadTimeout`` keeps working. Only what stratalog decides on its own
behalf, such as refusing a call while a circuit is open, gets a type here.
"""

from __future__ import annotations

__all__ = [
    "CircuitOpenError",
    "ConfigurationError",
    "ExternalCallError",
    "ResponseValidationError",
    "StratalogError",
    "ValidationError",
]


class StratalogError(Exception):
    """Base class of every error stratalog raises on purpose."""


class ConfigurationError(StratalogError, ValueError):
    """A configuration value is outside what its setting allows.

    *variable* names the setting (a field or an environment variable),
    *value* is what was given and *allowed* says what would be accepted.
    """

    def __init__(self, variable: str, value: object, allowed: str) -> None:
        super().__init__(f"{variable}={value!r} is invalid: {allowed}")
        self.variable = variable
        self.value = value
        self.allowed = allowed


class ValidationError(StratalogError, ValueError):
    """An input validator rejected the arguments of an operation."""


class ExternalCallError(StratalogError):
    """Base class of errors about a call to an external service.

    *attempted* tells whether the request may have reached the service:
    ``False`` means it certainly did not, so repeating it is safe.
    """

    def __init__(
        self,
        message: str,
        *,
        client: str,
        operation: str | None = None,
        attempted: bool,
    ) -> None:
        super().__init__(message)
        self.client = client
        self.operation = operation
        self.attempted = attempted


class ResponseValidationError(ExternalCallError):
    """A response validator rejected what the service returned.

    The service answered, so the call was attempted; it is never retried,
    since asking again for the same thing rarely fixes the answer.
    """

    def __init__(
        self,
        message: str,
        *,
        client: str,
        operation: str | None = None,
    ) -> None:
        super().__init__(
            message, client=client, operation=operation, attempted=True
        )


class CircuitOpenError(ExternalCallError):
    """A circuit breaker refused the call without contacting the service.

    *state* is the breaker's state (``"open"``, or ``"half_open"`` while
    its probes are under way) and *next_probe_in* the seconds until it
    admits a probe again: ``0.0`` when half-open, where a probe already
    running decides.
    """

    def __init__(
        self,
        client: str,
        *,
        state: str,
        next_probe_in: float,
        operation: str | None = None,
    ) -> None:
        message = (
            f"circuit {client!r} is {state}; call not attempted, "
            f"next probe in {next_probe_in:.1f} s"
        )
        super().__init__(
            message, client=client, operation=operation, attempted=False
        )
        self.state = state
        self.next_probe_in = next_probe_in
