"""The web app: the REST API under /api/v1 and the dashboard pages, on one store.

`create_app(project)` builds it; `vigil serve` and `vigil run` hand it to uvicorn.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from vigil.clock import Clock, SystemClock
from vigil.config.project import Project
from vigil.errors import NotFoundError, StoreError, VigilError
from vigil.store import open_store
from vigil.web.api import router as api_router
from vigil.web.context import WebContext, close_store
from vigil.web.incidents import api as incidents_api
from vigil.web.incidents import router as incidents_router
from vigil.web.pages import router as pages_router
from vigil.web.prometheus import router as prometheus_router
from vigil.web.slack import router as slack_router

log = logging.getLogger(__name__)
API = "/api/v1"


def create_app(project: Project, clock: Clock | None = None) -> FastAPI:
    """The dashboard and API for `project` (the store's schema is brought up to date once)."""
    clock = clock or SystemClock()
    close_store(open_store(project, clock.now))
    app = FastAPI(
        title="Vigil",
        version="1",
        description="Metrics, their checks, alerts, incidents, feedback, silences and runs.",
        openapi_url=f"{API}/openapi.json",
        docs_url=None,  # the interactive docs load from a CDN; the schema is enough
        redoc_url=None,
    )
    app.state.context = WebContext(project, clock)
    app.include_router(api_router, prefix=API)
    app.include_router(incidents_api, prefix=API)
    app.include_router(prometheus_router)  # before the pages: it shares /metrics
    app.include_router(pages_router)
    app.include_router(incidents_router)
    app.include_router(slack_router)
    static = resources.files("vigil.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _install_error_handlers(app)
    _declare_security(app)
    return app


def _declare_security(app: FastAPI) -> None:
    """The schema says how to authenticate: a bearer token or basic auth (web.tokens, users);
    none is needed on localhost without credentials configured, and for /health."""
    from fastapi.openapi.utils import get_openapi

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            found = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            found.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "web.tokens"},
                "basic": {"type": "http", "scheme": "basic", "description": "web.users"},
            }
            found["security"] = [{"bearer": []}, {"basic": []}, {}]
            app.openapi_schema = found
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


# --- one error shape ----------------------------------------------------------------------


def error_body(status: int, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    """The JSON every error answers with."""
    return {"error": {"status": status, "message": message, "details": details or []}}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "body")),
                "message": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        text = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return JSONResponse(error_body(422, f"invalid request: {text}", details), 422)

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse(error_body(404, str(exc)), 404)

    @app.exception_handler(StoreError)
    async def store_failed(request: Request, exc: StoreError) -> JSONResponse:
        log.error("store error on %s: %s", request.url.path, exc)
        return JSONResponse(error_body(503, f"metric store unavailable: {exc}"), 503)

    @app.exception_handler(VigilError)
    async def vigil_error(request: Request, exc: VigilError) -> JSONResponse:
        return JSONResponse(error_body(400, str(exc)), 400)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError) -> JSONResponse:
        return JSONResponse(error_body(400, str(exc)), 400)

    @app.middleware("http")
    async def unexpected(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            return await call_next(request)
        except Exception:
            log.exception("unexpected error on %s", request.url.path)
            body = error_body(500, "internal error; the server log has the details")
            return JSONResponse(body, 500)
