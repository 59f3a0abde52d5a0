"""The metric store: every value, check, alert and notification. Backend chosen by `type`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vigil.config.project import Project
from vigil.store.base import AlertRow, Store
from vigil.store.duckdb import DuckDBStore

BACKENDS: dict[str, Callable[[Project, Callable[[], datetime]], Store]] = {
    "duckdb": lambda project, clock: DuckDBStore(
        project.resolve_path(project.settings.store.path), project.timezone, clock
    ),
}


def open_store(project: Project, clock: Callable[[], datetime]) -> Store:
    """Create the configured store backend and bring its schema up to date."""
    store = BACKENDS[project.settings.store.type](project, clock)
    store.migrate()
    return store


__all__ = ["AlertRow", "DuckDBStore", "Store", "open_store"]
