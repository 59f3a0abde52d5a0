"""Fresh metric stores on each backend: a DuckDB file, or a PostgreSQL schema of its own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tests.engines import PG_URL, require_services
from vigil.store.duckdb import DuckDBStore
from vigil.store.sql import SQLStore

STORE_BACKENDS = ["duckdb", "postgres"]


@contextmanager
def make_store(
    backend: str, tmp_path: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Iterator[SQLStore]:
    """An empty store (not migrated); a PostgreSQL one is dropped afterwards."""
    if backend == "duckdb":
        yield DuckDBStore(tmp_path / "vigil.duckdb", clock=clock)
        return
    from vigil.store.postgres import PostgresStore

    require_services("postgres")
    schema = f"vigil_s_{uuid.uuid4().hex[:10]}"
    try:
        yield PostgresStore(PG_URL, schema, clock=clock)
    finally:
        drop_schema(schema)


def drop_schema(schema: str) -> None:
    """Remove a test schema and everything in it."""
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def reopen(store: SQLStore) -> SQLStore:
    """A second store object on the same data, as another process would open it."""
    if isinstance(store, DuckDBStore):
        return DuckDBStore(store.path, clock=store.clock)
    from vigil.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url, store.schema, clock=store.clock)
