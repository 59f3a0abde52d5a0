"""The metric store: every value, check, alert and notification. Backend chosen by `type`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from vigil.config.project import Project
from vigil.store.base import AlertRow, Store
from vigil.store.duckdb import DuckDBStore


def create_store(project: Project, clock: Callable[[], datetime]) -> Store:
    """The configured store backend, schema not yet migrated."""
    config = project.settings.store
    if config.type == "clickhouse":
        from vigil.store.clickhouse import ClickHouseStore

        return ClickHouseStore(
            url=config.url.get_secret_value() if config.url is not None else None,
            path=project.resolve_path(config.path) if config.path is not None else None,
            database=config.database,
            tz=project.timezone,
            clock=clock,
        )
    if config.type == "postgres":
        from vigil.store.postgres import PostgresStore  # the driver loads only when used

        return PostgresStore(
            config.url.get_secret_value(), config.schema_name, project.timezone, clock
        )
    return DuckDBStore(project.resolve_path(config.path), project.timezone, clock)


def open_store(project: Project, clock: Callable[[], datetime]) -> Store:
    """Create the configured store backend and bring its schema up to date."""
    store = create_store(project, clock)
    store.migrate()
    return store


__all__ = ["AlertRow", "DuckDBStore", "Store", "create_store", "open_store"]
