"""Route stdlib ``logging`` records (uvicorn, httpx, ...) into the pipeline.

One handler on the root logger; installing it again replaces it. Loggers
of servers that print through handlers of their own (uvicorn) are handed
to the root logger instead, so each of their records comes out once, in
the same format as every other line and with the request's ids.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from . import _diagnostics, _state
from ._emit import emit
from .context import request_context
from .logger import _attach_error

__all__ = ["StratalogHandler", "install", "uninstall"]

TAKEN_OVER = ("uvicorn", "uvicorn.error", "uvicorn.access")

_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
) | {"message", "asctime", "color_message"}

_busy = threading.local()


class StratalogHandler(logging.Handler):
    """Hand each stdlib record to stratalog's pipeline."""

    def emit(self, record: logging.LogRecord) -> None:
        """Convert *record* and write it; never raises."""
        if getattr(_busy, "active", False):
            return
        _busy.active = True
        try:
            fields = _fields_of(record)
            ctx = request_context.get()
            if record.exc_info and record.exc_info[1] is not None:
                # A stdlib record belongs to no layer: it adds none to the
                # error's path.
                _attach_error(ctx, record.exc_info[1], None, None, fields)
            level = _level_of(record.levelno)
            message = _redacted(_message(record))
            emit(record.name, None, level, message, fields, ctx)
        except Exception as exc:
            _diagnostics.report("stdlib", "a stdlib record was lost", exc)
        finally:
            _busy.active = False


def _redacted(message: str) -> str:
    """Pass a record's message through the redactor.

    The message becomes the line's ``event``, which the redactor leaves
    alone on stratalog's own lines; here it is free text (an access line
    with a query string, an HTTP client's URL) and may hold a secret.
    """
    redact = _state.PIPELINE.redact
    if redact is None:
        return message
    holder = {"message": message}
    redact(holder)
    return str(holder["message"])


def _level_of(levelno: int) -> int:
    if levelno >= 50:
        return 50
    if levelno >= 40:
        return 40
    if levelno >= 30:
        return 30
    return 20 if levelno >= 20 else 10


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        return str(record.msg)


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _RECORD_ATTRS and not key.startswith("_")
    }


def install(level: int) -> StratalogHandler:
    """Put one handler on the root logger, replacing earlier ones."""
    root = logging.getLogger()
    uninstall()
    handler = StratalogHandler(level=level)
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    for name in TAKEN_OVER:
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    return handler


def uninstall() -> None:
    """Remove every handler this module installed on the root logger."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, StratalogHandler):
            root.removeHandler(handler)
