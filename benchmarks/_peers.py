"""The peers' logging setups, each writing one JSON line per call.

Every setup logs the same line: the event ``order.placed`` with the
request's ids (correlation, session and user) and the five fields of
:data:`FIELDS`, to its own file. Each peer is set up the way its own
documentation recommends for production JSON, and the request ids are
bound the way that peer binds them.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "FIELDS",
    "IDS",
    "LoguruSetup",
    "OtelLogSetup",
    "StdlibSetup",
    "StructlogSetup",
    "configure_structlog",
    "count_lines",
]

FIELDS: dict[str, Any] = {
    "order_id": "o-81723",
    "items": 3,
    "amount": 129.95,
    "currency": "EUR",
    "express": True,
}
"""The five fields of the benchmarked line."""

IDS: dict[str, str] = {
    "correlation_id": "6f1d3c2a-8e4b-4b7a-9d2e-1c5f7a9b3e21",
    "session_id": "s-5521",
    "user_id": "u-1042",
}
"""The request ids every peer binds once, as a request would."""


def count_lines(path: Path) -> int:
    """Return the number of lines in *path* (0 when it does not exist)."""
    if not path.exists():
        return 0
    count = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            count += chunk.count(b"\n")
    return count


def configure_structlog(file: BinaryIO) -> None:
    """Configure structlog's fastest JSON setup, writing to *file*."""
    import orjson
    import structlog

    structlog.configure(
        cache_logger_on_first_use=True,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        logger_factory=structlog.BytesLoggerFactory(file),
    )


class StructlogSetup:
    """structlog: orjson, bytes logger to a file, cached filtering logger."""

    label = "structlog (orjson, BytesLogger, cached filtering logger)"

    def __init__(self, path: Path) -> None:
        import structlog

        self.path = path
        self._file = path.open("ab")
        configure_structlog(self._file)
        structlog.contextvars.bind_contextvars(**IDS)
        self.log = structlog.get_logger("bench")

    def emit(self, n: int) -> None:
        """Write *n* info lines."""
        info = self.log.info
        for _ in range(n):
            info("order.placed", **FIELDS)

    def filtered(self, n: int) -> None:
        """Make *n* debug calls below the level."""
        debug = self.log.debug
        for _ in range(n):
            debug("order.placed", **FIELDS)

    def close(self) -> None:
        """Close the file."""
        self._file.close()


_stdlib_ids: contextvars.ContextVar[dict[str, str] | None] = (
    contextvars.ContextVar("bench_stdlib_ids", default=None)
)


class _JsonFormatter(logging.Formatter):
    """One JSON object per record, with ``json.dumps``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(
                record.created, dt.UTC
            ).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        ids = _stdlib_ids.get()
        if ids:
            line.update(ids)
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        return json.dumps(line)


class StdlibSetup:
    """stdlib logging: a FileHandler with a ``json.dumps`` formatter."""

    label = "stdlib logging, JSON formatter (json.dumps), FileHandler"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(_JsonFormatter())
        self.log = logging.getLogger("bench.stdlib")
        self.log.handlers[:] = [self.handler]
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        _stdlib_ids.set(dict(IDS))

    def emit(self, n: int) -> None:
        """Write *n* info lines."""
        info = self.log.info
        extra = {"fields": FIELDS}
        for _ in range(n):
            info("order.placed", extra=extra)

    def filtered(self, n: int) -> None:
        """Make *n* debug calls below the level."""
        debug = self.log.debug
        extra = {"fields": FIELDS}
        for _ in range(n):
            debug("order.placed", extra=extra)

    def close(self) -> None:
        """Close the handler."""
        self.handler.close()


class LoguruSetup:
    """loguru: ``serialize=True`` to a file, ids through contextualize."""

    label = "loguru, serialize=True to a file"

    def __init__(self, path: Path) -> None:
        from loguru import logger

        self.path = path
        logger.remove()
        self._sink = logger.add(
            path, serialize=True, level="INFO", enqueue=False
        )
        self._context = logger.contextualize(**IDS)
        self._context.__enter__()
        self.log = logger

    def emit(self, n: int) -> None:
        """Write *n* info lines."""
        info = self.log.info
        for _ in range(n):
            info("order.placed", **FIELDS)

    def filtered(self, n: int) -> None:
        """Make *n* debug calls below the level."""
        debug = self.log.debug
        for _ in range(n):
            debug("order.placed", **FIELDS)

    def close(self) -> None:
        """Remove the sink."""
        self._context.__exit__(None, None, None)
        self.log.remove(self._sink)


_OTEL_QUEUE_SAFE = 1024


class _NoOpLogExporter:
    """Accept every batch and drop it: OpenTelemetry's cost without I/O."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, batch: Any) -> Any:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        self.exported += len(batch)
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


class OtelLogSetup:
    """OpenTelemetry SDK logger, BatchLogRecordProcessor, no-op exporter.

    The SDK logger has no level of its own: a filtered call is made
    through the stdlib bridge (``LoggingHandler`` on a logger at info),
    which is how Python services filter OpenTelemetry logs by level.
    """

    label = (
        "OpenTelemetry SDK logger, BatchLogRecordProcessor, "
        "no-op exporter (no serialisation, no I/O)"
    )

    def __init__(self) -> None:
        from opentelemetry._logs import SeverityNumber
        from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        self.provider = LoggerProvider(shutdown_on_exit=False)
        self.exporter = _NoOpLogExporter()
        self.processor = BatchLogRecordProcessor(self.exporter)
        self.provider.add_log_record_processor(self.processor)
        self.log = self.provider.get_logger("bench")
        self.severity = SeverityNumber.INFO
        self.bridge = logging.getLogger("bench.otel")
        self.bridge.handlers[:] = [
            LoggingHandler(logger_provider=self.provider)
        ]
        self.bridge.setLevel(logging.INFO)
        self.bridge.propagate = False

    def emit(self, n: int) -> None:
        """Emit *n* info records, then flush the batch processor."""
        emit = self.log.emit
        attributes = {**IDS, **FIELDS}
        severity = self.severity
        for done in range(1, n + 1):
            emit(
                body="order.placed",
                severity_number=severity,
                severity_text="INFO",
                attributes=attributes,
            )
            if not done % _OTEL_QUEUE_SAFE:
                # The processor's queue drops its oldest records when
                # full: flushing well before that keeps every record.
                self.processor.force_flush()
        self.processor.force_flush()

    def filtered(self, n: int) -> None:
        """Make *n* debug calls through the stdlib bridge."""
        debug = self.bridge.debug
        extra = {"fields": FIELDS}
        for _ in range(n):
            debug("order.placed", extra=extra)

    def close(self) -> None:
        """Shut the provider down."""
        self.provider.shutdown()
