"""structlog configured as in the log-call comparison, to a file."""

from __future__ import annotations

from typing import Any

import structlog

from benchmarks._peers import configure_structlog
from benchmarks.apps._hello import log_path

__all__ = ["request_logger"]


def request_logger(name: str) -> Any:
    """Configure structlog to write to *name*'s file; return a logger."""
    configure_structlog(log_path(name).open("ab"))
    return structlog.get_logger("request")
