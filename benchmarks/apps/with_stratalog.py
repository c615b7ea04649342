"""stratalog's LoggingMiddleware, its summary line written to a file."""

import stratalog
from benchmarks.apps._hello import log_path, make_app
from stratalog.middleware import LoggingMiddleware

stratalog.configure(
    file=str(log_path("stratalog")),
    outputs=(),
    format="json",
    level="info",
)

app = make_app()
app.add_middleware(LoggingMiddleware)
