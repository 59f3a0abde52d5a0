"""What every request of the web app needs, as FastAPI dependencies: the project (following
edits of its files), the clock, a store per request, the caller and their role.

The API (`web.api`), the pages (`web.pages`) and the app that mounts them (`web.app`) all
depend on this module and on nothing of each other's but what they import one way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from vigil.clock import Clock
from vigil.config import load_project
from vigil.config.project import Project
from vigil.config.watch import ConfigWatcher
from vigil.errors import VigilError
from vigil.store import Store, create_store
from vigil.timeutil import parse_instant
from vigil.web.auth import Principal, authenticate

log = logging.getLogger(__name__)
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
        close_store(opened)


def close_store(opened: Store) -> None:
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
    try:
        return parse_instant(text, ctx.project.timezone, ctx.clock.now())
    except (ValueError, OverflowError) as e:
        raise HTTPException(400, f"{name}: {e}") from None


Viewer = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(admin)]
Opened = Annotated[Store, Depends(store)]
