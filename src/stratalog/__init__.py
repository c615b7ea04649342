"""Request-scoped, layer-aware structured logging for async services.

One correlated story per request, from the HTTP edge through the service,
core and infrastructure layers to external calls, ending in one summary
line with a per-layer timeline.
"""

from ._retry import RetryPolicy, is_retryable
from ._setup import configure, flush, shutdown
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
from .external import BaseExternalClient, HTTPExternalClient
from .logger import UnifiedLogger, get_unified_logger
from .middleware import LoggingMiddleware
from .output import AsyncLogBuffer
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
    "Redactor",
    "RedisBreakerState",
    "RedisSessionStore",
    "RequestContext",
    "ResponseValidationError",
    "RetryPolicy",
    "SessionService",
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
    "is_retryable",
    "request_context",
    "run_in_executor",
    "shutdown",
    "submit",
    "to_thread",
]
