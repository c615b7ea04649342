"""BaseService: the service layer's way to run a business operation.

Every operation runs the same eight steps: the inbound boundary, a timed
operation, input validation, the work, result transformation, the
outbound boundary, a business event on success, and error handling under
the cascade rules, so that a failure carries its traceback once however
many layers it crosses.

The operation function and both callbacks may be plain functions or
coroutine functions: :meth:`BaseService.execute_operation` awaits any
result that is awaitable, whatever the callable's declared type.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from .context import get_context
from .dedup import generate_operation_key
from .exceptions import ValidationError
from .logger import UnifiedLogger, get_unified_logger

__all__ = ["BaseService"]

_CAMEL_BOUNDARY = re.compile(
    r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])"
)

Validator = Callable[..., Any]
Transformer = Callable[[Any], Any]


def snake_case(name: str) -> str:
    """Return *name* (``OrderService``, ``HTTPService``) in snake_case."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


class BaseService:
    """Base class of service-layer components.

    *service_name* defaults to the class name in snake_case
    (``OrderService`` becomes ``order_service``). Lines are written by the
    logger ``service.<service_name>`` in the ``service`` layer.

    Counters are plain attributes updated without a lock: exact on one
    event loop, approximate when threads share the service.
    """

    record_business_events: bool = True
    """Whether a successful operation writes ``<service>.<op>.completed``."""

    def __init__(self, service_name: str | None = None) -> None:
        self.service_name = service_name or snake_case(type(self).__name__)
        self.logger: UnifiedLogger = get_unified_logger(
            f"service.{self.service_name}", "service"
        )
        self.operations = 0
        self.failures = 0
        self.rejections = 0
        self._started = time.monotonic()

    async def execute_operation(
        self,
        operation_name: str,
        operation_func: Callable[..., Any],
        *args: Any,
        validate_inputs: Validator | None = None,
        transform_result: Transformer | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run *operation_func* with ``args`` and ``kwargs`` as one operation.

        *validate_inputs* is called with the same arguments; a falsy
        result or an exception rejects the call with
        :class:`~stratalog.ValidationError` (chained to the validator's
        error), logged as the warning ``operation.rejected``, and the
        function is not called. *transform_result* receives the result
        and returns what the caller gets. Any other failure propagates
        unchanged.
        """
        log = self.logger
        log.log_boundary(operation_name, "inbound", _payload(args, kwargs))
        self.operations += 1
        rejected: ValidationError | None = None
        result: Any = None
        try:
            async with log.operation(operation_name) as fields:
                if validate_inputs is not None:
                    rejected = await _validated(
                        operation_name, validate_inputs, args, kwargs
                    )
                if rejected is None:
                    result = await _resolved(operation_func(*args, **kwargs))
                    if transform_result is not None:
                        result = await _resolved(transform_result(result))
                else:
                    fields["outcome"] = "rejected"
                    self._note_rejected(operation_name, rejected)
        except Exception:
            self.failures += 1
            raise
        if rejected is not None:
            raise rejected
        return self._succeed(operation_name, result)

    def execute_operation_sync(
        self,
        operation_name: str,
        operation_func: Callable[..., Any],
        *args: Any,
        validate_inputs: Validator | None = None,
        transform_result: Transformer | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run a plain function as one operation; see
        :meth:`execute_operation`.

        Raises TypeError when the function or a callback returns an
        awaitable: such work needs :meth:`execute_operation`.
        """
        log = self.logger
        log.log_boundary(operation_name, "inbound", _payload(args, kwargs))
        self.operations += 1
        rejected: ValidationError | None = None
        result: Any = None
        try:
            with log.operation(operation_name) as fields:
                if validate_inputs is not None:
                    rejected = _validated_sync(
                        operation_name, validate_inputs, args, kwargs
                    )
                if rejected is None:
                    result = _plain(
                        operation_name, operation_func(*args, **kwargs)
                    )
                    if transform_result is not None:
                        result = _plain(
                            operation_name, transform_result(result)
                        )
                else:
                    fields["outcome"] = "rejected"
                    self._note_rejected(operation_name, rejected)
        except Exception:
            self.failures += 1
            raise
        if rejected is not None:
            raise rejected
        return self._succeed(operation_name, result)

    def _note_rejected(
        self, operation_name: str, error: ValidationError
    ) -> None:
        self.rejections += 1
        # Logged with the error, inside the operation, so that the cascade
        # records it as this operation's: layers further out then write a
        # short reference instead of a second traceback.
        self.logger.warning(
            "operation.rejected",
            operation=operation_name,
            outcome="rejected",
            exc_info=error,
        )

    def _succeed(self, operation_name: str, result: Any) -> Any:
        log = self.logger
        log.log_boundary(operation_name, "outbound", result)
        if self.record_business_events:
            name = f"{self.service_name}.{operation_name}.completed"
            # Written by the library, not asked for by the caller: like the
            # operation's own lines, once per request, repeats counted.
            ctx = get_context()
            key = generate_operation_key(log.layer, "business_event", name)
            if ctx is None or log._admit(ctx, key):
                log.log_business_event(
                    name,
                    {
                        "service": self.service_name,
                        "operation": operation_name,
                    },
                )
        return result

    def log_business_event(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        severity: str = "info",
    ) -> None:
        """Write the business event *name* with payload *data*."""
        self.logger.log_business_event(name, data, severity)

    def log_metric(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        **tags: Any,
    ) -> None:
        """Write one measurement, tagged with this service's name."""
        self.logger.log_metric(
            name, value, unit, service=self.service_name, **tags
        )

    async def health_check(self) -> dict[str, Any]:
        """Return this service's status and counters.

        The base class always reports ``healthy``; subclasses that depend
        on something extend the dict and lower the status.
        """
        return {
            "status": "healthy",
            "service": self.service_name,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "operations": self.operations,
            "failures": self.failures,
            "rejections": self.rejections,
        }


async def _resolved(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value

    return value


def _plain(operation_name: str, value: Any) -> Any:
    if not inspect.isawaitable(value):
        return value
    close = getattr(value, "close", None)
    if callable(close):
        # An unawaited coroutine would otherwise warn when collected.
        close()
    raise TypeError(
        f"operation {operation_name!r} got an awaitable from a callable "
        "passed to execute_operation_sync; await it with "
        "execute_operation instead"
    )


async def _validated(
    operation_name: str,
    validator: Validator,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> ValidationError | None:
    try:
        verdict = await _resolved(validator(*args, **kwargs))
    except Exception as error:
        return _raised(operation_name, validator, error)

    return None if verdict else _refused(operation_name, validator, verdict)


def _validated_sync(
    operation_name: str,
    validator: Validator,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> ValidationError | None:
    try:
        verdict = validator(*args, **kwargs)
    except Exception as error:
        return _raised(operation_name, validator, error)
    verdict = _plain(operation_name, verdict)

    return None if verdict else _refused(operation_name, validator, verdict)


def _raised(
    operation_name: str, validator: Validator, error: Exception
) -> ValidationError:
    rejection = ValidationError(
        f"{operation_name}: the input validator {_name(validator)} raised "
        f"{type(error).__name__}: {error}"
    )
    rejection.__cause__ = error
    rejection.__suppress_context__ = True

    return rejection


def _refused(
    operation_name: str, validator: Validator, verdict: Any
) -> ValidationError:
    return ValidationError(
        f"{operation_name}: the input validator {_name(validator)} "
        f"returned {verdict!r}, so the inputs were rejected"
    )


def _name(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", None) or repr(func)


def _payload(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not kwargs:
        if len(args) == 1:
            return args[0]
        return args or None
    return kwargs if not args else (*args, kwargs)
