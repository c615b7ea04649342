"""Log 50 records and a span to an OTLP collector, then just return.

Run by the tests as a script: the endpoint and the export timeout come
from the environment (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``LOG_OTLP_TIMEOUT``), and nothing calls ``stratalog.shutdown()``, so
whatever reaches the collector was sent at exit.
"""

from __future__ import annotations

import stratalog
from stratalog.coordinator import emit_summary
from stratalog.testing import MemorySink


def main() -> None:
    """Log inside a request and an operation, write the summary, return."""
    stratalog.configure(sink=MemorySink(), service_name="exit-probe")
    log = stratalog.get_unified_logger("probe", "service")
    coordinator = stratalog.LoggingCoordinator()
    ctx = coordinator.start_request(correlation_id="exit-1")
    with log.operation("batch"):
        for n in range(50):
            log.info("record.written", n=n)
    emit_summary(coordinator.end_request(ctx), ctx)


if __name__ == "__main__":
    main()
