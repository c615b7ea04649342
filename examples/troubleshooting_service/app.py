"""The HTTP API: routes in the api layer, errors mapped to statuses."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import stratalog

from .container import Container, Settings

api = stratalog.get_unified_logger(__name__, "api")


class Login(BaseModel):
    """Who is logging in."""

    user: str


class NewCase(BaseModel):
    """A problem report."""

    title: str
    description: str


def create_app(container: Container | None = None) -> FastAPI:
    """Build the app around *container* (from the environment by default)."""
    services = container or Container(Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stratalog.configure()
        yield
        await services.aclose()
        stratalog.shutdown()

    app = FastAPI(title="troubleshooting service", lifespan=lifespan)
    app.add_middleware(
        stratalog.LoggingMiddleware,
        session_service=services.session_service,
    )
    _add_routes(app, services)
    _add_error_handlers(app)
    return app


def _add_routes(app: FastAPI, services: Container) -> None:
    @app.post("/sessions", status_code=201)
    async def login(body: Login) -> dict[str, str]:
        session_id = secrets.token_hex(16)
        await services.session_store.set(session_id, {"user_id": body.user})
        return {"session_id": session_id}

    @app.post("/cases", status_code=201)
    async def create_case(body: NewCase) -> dict[str, str]:
        async with api.operation("create_case"):
            case = await services.case_service.create_case(
                body.title, body.description
            )
        return {"case_id": case.case_id}

    @app.get("/cases/{case_id}")
    async def read_case(case_id: str) -> dict[str, object]:
        async with api.operation("read_case"):
            case = await services.case_service.get_case(case_id)
        return {"case_id": case.case_id, "findings": case.findings}

    @app.post("/cases/{case_id}/troubleshoot")
    async def troubleshoot(case_id: str) -> dict[str, object]:
        async with api.operation("troubleshoot_case"):
            return await services.troubleshooting_service.troubleshoot(case_id)

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {
            "status": "ok",
            "llm": await services.llm_provider.health_check(),
        }


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(KeyError)
    async def not_found(request: Request, exc: KeyError) -> JSONResponse:
        return JSONResponse({"detail": "no such case"}, status_code=404)

    @app.exception_handler(stratalog.ValidationError)
    async def rejected(
        request: Request, exc: stratalog.ValidationError
    ) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(stratalog.CircuitOpenError)
    async def unavailable(
        request: Request, exc: stratalog.CircuitOpenError
    ) -> JSONResponse:
        return JSONResponse(
            {"detail": "the classifier is unavailable, retry later"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    @app.exception_handler(httpx.HTTPError)
    async def upstream(request: Request, exc: httpx.HTTPError) -> JSONResponse:
        return JSONResponse(
            {"detail": f"the classifier failed: {type(exc).__name__}"},
            status_code=502,
        )

    @app.exception_handler(stratalog.ResponseValidationError)
    async def bad_answer(
        request: Request, exc: stratalog.ResponseValidationError
    ) -> JSONResponse:
        return JSONResponse(
            {"detail": "the classifier answered nonsense"}, status_code=502
        )


app = create_app()
