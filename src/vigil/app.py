"""The application context: one project, its store, sources, channels and clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TextIO

from vigil.clock import Clock, SystemClock
from vigil.config.project import Project
from vigil.errors import SourceError
from vigil.notify import Channel, build_channel
from vigil.sources import Source, build_source
from vigil.store import Store, open_store

log = logging.getLogger(__name__)


@dataclass
class App:
    """Everything a cycle needs; built once by `build_app` and passed down."""

    project: Project
    store: Store
    sources: dict[str, Source]
    channels: dict[str, Channel]
    clock: Clock
    out: TextIO | None = None

    @contextmanager
    def session(self) -> Iterator[None]:
        """Hold the store and every source open for a batch of cycles."""
        with ExitStack() as stack:
            stack.enter_context(self.store.session())
            for name, source in self.sources.items():
                try:
                    stack.enter_context(source.session())
                except SourceError as e:
                    # Its datasets fail (and are retried, reported) one by one; the rest run.
                    log.warning("source '%s' is not reachable: %s", name, e)
            yield

    def close(self) -> None:
        """Release source connections."""
        for source in self.sources.values():
            source.close()


def build_app(project: Project, clock: Clock | None = None, out: TextIO | None = None) -> App:
    """Create the store (migrated), sources and channels the project configures."""
    clock = clock or SystemClock()
    store = open_store(project, clock.now)
    sources = {
        name: build_source(name, config, project.root)
        for name, config in project.settings.sources.items()
    }
    channels = {
        name: build_channel(name, config, out) for name, config in project.settings.channels.items()
    }
    return App(project, store, sources, channels, clock, out)


@contextmanager
def running_app(
    project: Project, clock: Clock | None = None, out: TextIO | None = None
) -> Iterator[App]:
    """`build_app` as a context manager that closes the sources."""
    app = build_app(project, clock, out)
    try:
        yield app
    finally:
        app.close()
