"""Request-scoped, layer-aware structured logging for async services.

One correlated story per request, from the HTTP edge through the service,
core and infrastructure layers to external calls, ending in one summary
line with a per-layer timeline.
"""

from ._setup import configure, flush, shutdown
from .config import LoggingConfig
from .context import (
    ContextManager,
    RequestContext,
    bind,
    bind_context,
    get_context,
    request_context,
    run_in_executor,
    submit,
    to_thread,
)
from .coordinator import LoggingCoordinator
from .dedup import DeduplicationPolicy, generate_operation_key
from .errors import ErrorContext, ErrorRecord
from .exceptions import (
    CircuitOpenError,
    ConfigurationError,
    ExternalCallError,
    ResponseValidationError,
    StratalogError,
    ValidationError,
)
from .logger import UnifiedLogger, get_unified_logger
from .performance import PerformanceTracker
from .processors import Redactor
from .tracing import TracingIntegration

__all__ = [
    "CircuitOpenError",
    "ConfigurationError",
    "ContextManager",
    "DeduplicationPolicy",
    "ErrorContext",
    "ErrorRecord",
    "ExternalCallError",
    "LoggingConfig",
    "LoggingCoordinator",
    "PerformanceTracker",
    "Redactor",
    "RequestContext",
    "ResponseValidationError",
    "StratalogError",
    "TracingIntegration",
    "UnifiedLogger",
    "ValidationError",
    "bind",
    "bind_context",
    "configure",
    "flush",
    "generate_operation_key",
    "get_context",
    "get_unified_logger",
    "request_context",
    "run_in_executor",
    "shutdown",
    "submit",
    "to_thread",
]
