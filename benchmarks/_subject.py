"""stratalog set up as a service would run it: JSON lines to a file.

The configuration is the default one (info level, deduplication on,
tracing ``auto``, buffer of 1,000 lines flushed every second, overflow
``drop_low``) with output to a file only, as ``LOG_FILE`` with
``LOG_OUTPUT=`` empty would make it. Standard-library capture is off so
that the stdlib peer's logger stays its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._family import require

__all__ = ["Options", "configure_file", "open_request"]


@dataclass(frozen=True)
class Options:
    """How hard to run: ``quick`` for development, else the full run."""

    quick: bool
    var: Path

    def rounds(self, full: int, quick: int = 5) -> int:
        """Return the number of rounds for this mode."""
        return quick if self.quick else full

    def target(self, full: float = 0.04, quick: float = 0.01) -> float:
        """Return the wall time each batch aims at, in seconds."""
        return quick if self.quick else full


def configure_file(path: Path, **overrides: Any) -> Any:
    """Configure stratalog to write JSON lines to *path*; return the module.

    Raises :class:`~benchmarks._family.Unavailable` while the buffered
    writer has not landed.
    """
    require("stratalog.output", "build_output", "AsyncLogBuffer")
    stratalog = require("stratalog", "configure", "flush")
    settings: dict[str, Any] = {
        "file": str(path),
        "outputs": (),
        "format": "json",
        "level": "info",
        "capture_stdlib": False,
    }
    settings.update(overrides)
    stratalog.configure(**settings)
    return stratalog


def open_request(**ids: Any) -> Any:
    """Start a request in the current context and return its context."""
    coordinator = require("stratalog.coordinator", "LoggingCoordinator")
    return coordinator.LoggingCoordinator().start_request(**ids)
