"""The route every application serves, and where the logs go."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

__all__ = ["log_path", "make_app"]


def log_path(name: str) -> Path:
    """Return the log file of application *name*, emptied."""
    folder = Path(os.environ.get("BENCH_LOG_DIR", "var/bench"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"http-{name}.log"
    path.unlink(missing_ok=True)
    return path


def make_app() -> FastAPI:
    """Return a FastAPI app with ``GET /hello``."""
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"message": "hello"}

    return app
