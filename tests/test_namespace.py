"""The public namespace: everything promised is there, nothing leaks."""

from __future__ import annotations

import importlib
import inspect

import stratalog

DESIGN_NAMES = {
    "AsyncLogBuffer",
    "BaseExternalClient",
    "BaseService",
    "ContextManager",
    "DeduplicationPolicy",
    "ErrorContext",
    "LoggingCoordinator",
    "LoggingMiddleware",
    "PerformanceTracker",
    "RequestContext",
    "TracingIntegration",
    "UnifiedLogger",
    "generate_operation_key",
    "request_context",
}


def test_all_is_sorted_and_resolvable() -> None:
    """``__all__`` is sorted, and every name in it exists."""
    assert list(stratalog.__all__) == sorted(stratalog.__all__)
    for name in stratalog.__all__:
        assert hasattr(stratalog, name), name


def test_design_names_are_exported() -> None:
    """Every component of the architecture is importable from stratalog."""
    assert set(stratalog.__all__) >= DESIGN_NAMES


def test_no_public_name_leaks() -> None:
    """Public attributes of the package are exactly ``__all__`` + modules."""
    public = {
        name
        for name, value in vars(stratalog).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(stratalog.__all__)


def test_exceptions_share_one_base() -> None:
    """Every exception stratalog exports derives from StratalogError."""
    errors = [
        getattr(stratalog, name)
        for name in stratalog.__all__
        if name.endswith("Error")
    ]
    assert errors
    for error in errors:
        assert issubclass(error, stratalog.StratalogError), error


def test_integrations_import_lazily() -> None:
    """Importing stratalog loads none of the optional integrations."""
    code = (
        "import sys, stratalog; "
        "heavy = {'redis', 'opentelemetry', 'prometheus_client', 'httpx',"
        " 'tenacity', 'click', 'starlette'}; "
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_public_modules_import() -> None:
    """Each public module imports on its own."""
    for name in ("config", "context", "coordinator", "dedup", "errors"):
        importlib.import_module(f"stratalog.{name}")
