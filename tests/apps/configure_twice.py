"""An app that configures stratalog at import and again at startup.

Run by the tests under uvicorn and gunicorn; ``STRATALOG_TEST_LOG`` names
the NDJSON file it writes beside stdout.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import stratalog


def _configure() -> None:
    stratalog.configure(
        format="json",
        outputs=("stdout",),
        file=os.environ["STRATALOG_TEST_LOG"],
        flush_interval=0.05,
    )


_configure()
log = stratalog.get_unified_logger("tests.apps.configure_twice", "api")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    _configure()
    handlers = sum(
        isinstance(h, logging.Handler) for h in logging.getLogger().handlers
    )
    log.info("startup.configured", root_handlers=handlers)
    yield
    stratalog.shutdown(2.0)


async def home(request: Request) -> PlainTextResponse:
    log.info("hello")
    return PlainTextResponse("ok")


app = Starlette(routes=[Route("/", home)], lifespan=lifespan)
