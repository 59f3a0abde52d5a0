"""The web app: the REST API under /api/v1 and the dashboard pages, on one store.

`create_app(project)` builds it; `vigil serve` and `vigil run` hand it to uvicorn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from vigil.clock import Clock, SystemClock
from vigil.config import load_project
from vigil.config.project import Project
from vigil.config.watch import ConfigWatcher
from vigil.errors import NotFoundError, StoreError, VigilError
from vigil.store import Store, create_store, open_store
from vigil.web.auth import Principal, authenticate

log = logging.getLogger(__name__)
API = "/api/v1"
RELOAD_POLL_SECONDS = 2.0


@dataclass
class WebContext:
    """What every request needs: the project, the clock and a way to open the store.

    The project follows edits of its files (checked at most every `poll_seconds`): a metric
    added while `vigil serve` runs is there on the next request; an edit that does not load
    keeps the running configuration (and is logged).
    """

    project: Project
    clock: Clock
    poll_seconds: float = RELOAD_POLL_SECONDS
    watcher: ConfigWatcher | None = None
    checked: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.watcher = ConfigWatcher(self.project.root)
        self.watcher.changed(self.project.settings.include)
        self.checked = time.monotonic()

    def open_store(self) -> Store:
        """A store for one request."""
        return create_store(self.project, self.clock.now)

    def refresh(self) -> None:
        """Load the project again if its files changed since the last look."""
        if time.monotonic() - self.checked < self.poll_seconds or self.watcher is None:
            return
        with self.lock:
            self.checked = time.monotonic()
            if not self.watcher.changed(self.project.settings.include):
                return
            try:
                self.project = load_project(self.project.root)
            except VigilError as e:
                log.warning("configuration edit not loaded; serving the running one: %s", e)
                return
            log.info("configuration reloaded")


def create_app(project: Project, clock: Clock | None = None) -> FastAPI:
    """The dashboard and API for `project` (the store's schema is brought up to date once)."""
    from vigil.web.api import router as api_router
    from vigil.web.pages import router as pages_router

    clock = clock or SystemClock()
    _close(open_store(project, clock.now))
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
    app.include_router(pages_router)
    static = resources.files("vigil.web") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _install_error_handlers(app)
    return app


# --- dependencies -------------------------------------------------------------------------


def context(request: Request) -> WebContext:
    """The app's context, with the project as its files now say."""
    found: WebContext = request.app.state.context
    found.refresh()
    return found


def store(request: Request) -> Iterator[Store]:
    """A store for this request (stores are not shared between threads)."""
    opened = context(request).open_store()
    try:
        yield opened
    finally:
        _close(opened)


def _close(opened: Store) -> None:
    close = getattr(opened, "close", None)
    if callable(close):
        close()


def principal(request: Request) -> Principal:
    """The caller, or 401 asking for credentials."""
    config = context(request).project.settings.web
    who = authenticate(config, request.headers.get("authorization"))
    if who is None:
        raise HTTPException(
            401,
            "credentials required: Authorization: Bearer <token> or basic auth",
            headers={"WWW-Authenticate": 'Basic realm="vigil", Bearer'},
        )
    return who


def admin(who: Principal = Depends(principal)) -> Principal:  # noqa: B008
    """The caller, who must be an admin (403 otherwise)."""
    if not who.is_admin:
        raise HTTPException(403, f"'{who.name}' is a viewer; this needs the admin role")
    return who


def instant(request: Request, text: str | None, name: str) -> datetime | None:
    """A time parameter (ISO 8601, `now`, `now-2h`; naive in the project zone), or 400."""
    if text is None or text == "":
        return None
    ctx = context(request)
    from vigil.timeutil import parse_instant

    try:
        return parse_instant(text, ctx.project.timezone, ctx.clock.now())
    except (ValueError, OverflowError) as e:
        raise HTTPException(400, f"{name}: {e}") from None


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
