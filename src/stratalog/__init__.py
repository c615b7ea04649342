"""Request-scoped, layer-aware structured logging for async services.

One correlated story per request, from the HTTP edge through the service,
core and infrastructure layers to external calls, ending in one summary
line with a per-layer timeline.
"""

from ._retry import RetryPolicy, is_retryable
from ._setup import configure, flush, shutdown
from .asgi import instrument_app
from .breaker import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    RedisBreakerState,
)
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
from .external import (
    BaseExternalClient,
    HTTPExternalClient,
    add_header_provider,
    remove_header_provider,
)
from .logger import UnifiedLogger, get_unified_logger
from .metrics import PrometheusMetrics, install_metrics, metrics_app
from .middleware import LoggingMiddleware, RequestObserver
from .output import AsyncLogBuffer, install_signal_handlers
from .performance import PerformanceTracker
from .processors import Redactor
from .service import BaseService
from .sessions import (
    InMemorySessionStore,
    ISessionStore,
    RedisSessionStore,
    SessionService,
)
from .tracing import TracingIntegration

__all__ = [
    "AsyncLogBuffer",
    "BaseExternalClient",
    "BaseService",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitState",
    "ConfigurationError",
    "ContextManager",
    "DeduplicationPolicy",
    "ErrorContext",
    "ErrorRecord",
    "ExternalCallError",
    "HTTPExternalClient",
    "ISessionStore",
    "InMemorySessionStore",
    "LoggingConfig",
    "LoggingCoordinator",
    "LoggingMiddleware",
    "PerformanceTracker",
    "PrometheusMetrics",
    "Redactor",
    "RedisBreakerState",
    "RedisSessionStore",
    "RequestContext",
    "RequestObserver",
    "ResponseValidationError",
    "RetryPolicy",
    "SessionService",
    "StratalogError",
    "TracingIntegration",
    "UnifiedLogger",
    "ValidationError",
    "add_header_provider",
    "bind",
    "bind_context",
    "configure",
    "flush",
    "generate_operation_key",
    "get_context",
    "get_unified_logger",
    "install_metrics",
    "install_signal_handlers",
    "instrument_app",
    "is_retryable",
    "metrics_app",
    "remove_header_provider",
    "request_context",
    "run_in_executor",
    "shutdown",
    "submit",
    "to_thread",
]
