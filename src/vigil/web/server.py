"""Serve the web app with uvicorn: in the foreground (`vigil serve`) or beside the scheduler."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from vigil import secrets
from vigil.clock import Clock
from vigil.config.project import Project
from vigil.errors import VigilError
from vigil.web.app import create_app
from vigil.web.auth import check_binding


class WebServer:
    """One uvicorn server for the project's dashboard and API."""

    def __init__(
        self, project: Project, clock: Clock, host: str | None = None, port: int | None = None
    ) -> None:
        web = project.settings.web
        self.host = host or web.host
        self.port = web.port if port is None else port
        check_binding(web, self.host)
        config = uvicorn.Config(
            create_app(project, clock), host=self.host, port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            secrets.install(logging.getLogger(name))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where it listens (the real port once started, when 0 was asked for)."""
        port = self.port
        if self.server.started and self.server.servers:
            port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.host}:{port}"

    def serve(self) -> None:
        """Serve until SIGINT or SIGTERM."""
        self.server.run()

    def start(self, timeout: float = 15.0) -> str:
        """Serve in a background thread; return the URL once it listens."""
        self._thread = threading.Thread(target=self.server.run, name="vigil-web", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise VigilError(f"the dashboard could not listen on {self.host}:{self.port}")
            time.sleep(0.05)
        return self.url

    @property
    def running(self) -> bool:
        """Whether the background server thread is still serving."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Finish open requests and stop."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
