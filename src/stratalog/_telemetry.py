"""What ``configure()`` adds for telemetry: spans, export, integrations.

Operation spans and the trace headers of external calls follow the
settings. OTLP export is the last processor, so it sees every line as
written. Integrations (Prometheus metrics) are registered once and stay
in every pipeline ``configure()`` builds afterwards.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from typing import Any

from . import _state
from ._state import OperationObserver, Processor
from .config import LoggingConfig
from .exceptions import ConfigurationError

__all__ = [
    "add_integration",
    "flush",
    "observers",
    "processors",
    "propagate",
    "shutdown",
]

_OTLP = "stratalog._otlp"

# By name: the processors and observers each integration added.
_integrations: dict[
    str, tuple[tuple[Processor, ...], tuple[OperationObserver, ...]]
] = {}


def observers(
    settings: LoggingConfig, chosen: Iterable[OperationObserver]
) -> tuple[OperationObserver, ...]:
    """Return the operation span observer, *chosen*, then integrations."""
    from .tracing import operation_span_observer

    spans = operation_span_observer(settings)
    first = () if spans is None else (spans,)
    return (*first, *chosen, *_integration_observers())


def processors(
    settings: LoggingConfig, chosen: Iterable[Processor]
) -> tuple[Processor, ...]:
    """Return *chosen*, then integrations, then OTLP export if configured."""
    return (*chosen, *_integration_processors(), *_export(settings))


def propagate(settings: LoggingConfig) -> None:
    """Put trace headers on external calls unless tracing is off."""
    from .tracing import propagate_to_external

    propagate_to_external(settings)


def flush(timeout: float | None) -> bool:
    """Send the queued OTLP records within *timeout*; True without export."""
    otlp = sys.modules.get(_OTLP)
    return True if otlp is None else bool(otlp.flush(timeout))


def shutdown(timeout: float) -> bool:
    """Stop OTLP export within *timeout*; True without export."""
    otlp = sys.modules.get(_OTLP)
    return True if otlp is None else bool(otlp.shutdown(timeout))


def _export(settings: LoggingConfig) -> list[Processor]:
    if not settings.otlp_endpoint and _OTLP not in sys.modules:
        return []
    try:
        from . import _otlp
    except ImportError:
        raise ConfigurationError(
            "LOG_OTLP_ENDPOINT",
            settings.otlp_endpoint,
            "needs OpenTelemetry: pip install 'stratalog[otel]'",
        ) from None
    step = _otlp.install(settings)
    return [] if step is None else [step]


def add_integration(
    name: str,
    processors: Iterable[Processor] = (),
    observers: Iterable[OperationObserver] = (),
) -> None:
    """Add processors and observers to this and every later pipeline.

    Adding under a *name* already used replaces what it added before;
    adding nothing removes it.
    """
    from ._setup import _lock

    with _lock:
        old_steps, old_observers = _integrations.pop(name, ((), ()))
        new = (tuple(processors), tuple(observers))
        if new != ((), ()):
            _integrations[name] = new
        current = _state.PIPELINE
        if current.configured:
            _state.install(_replaced(current, old_steps, old_observers, new))


def _replaced(
    current: _state.Pipeline,
    old_steps: tuple[Processor, ...],
    old_observers: tuple[OperationObserver, ...],
    new: tuple[tuple[Processor, ...], tuple[OperationObserver, ...]],
) -> _state.Pipeline:
    export = _export_step()
    steps = [
        p for p in current.processors if p not in old_steps and p != export
    ]
    tail = [export] if export in current.processors else []
    kept = [o for o in current.observers if o not in old_observers]
    return dataclasses.replace(
        current,
        processors=(*steps, *new[0], *tail),
        observers=(*kept, *new[1]),
    )


def _export_step() -> Any:
    otlp = sys.modules.get(_OTLP)
    return None if otlp is None else otlp.current_processor()


def _integration_processors() -> list[Processor]:
    return [p for steps, _ in _integrations.values() for p in steps]


def _integration_observers() -> list[OperationObserver]:
    return [o for _, seen in _integrations.values() for o in seen]
