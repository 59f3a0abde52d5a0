"""Fresh metric stores on each backend: a DuckDB file, a PostgreSQL schema of its own, or a
ClickHouse database of its own on a local ClickHouse HTTP server (chDB in another process)."""

from __future__ import annotations

import atexit
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from tests.engines import PG_URL, ClickHouseHTTP, require_services
from vigil.store.duckdb import DuckDBStore
from vigil.store.sql import SQLStore

STORE_BACKENDS = ["duckdb", "postgres", "clickhouse"]

_clickhouse: list[ClickHouseHTTP] = []


def clickhouse_url() -> str:
    """The URL of one ClickHouse HTTP server for the whole test run (started on first use)."""
    if not _clickhouse:
        folder = Path(tempfile.mkdtemp(prefix="vigil-ch-store-"))
        _clickhouse.append(ClickHouseHTTP(folder / "data"))
        atexit.register(_clickhouse[0].close)
    return _clickhouse[0].url


@contextmanager
def make_store(
    backend: str, tmp_path: Path, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Iterator[SQLStore]:
    """An empty store (not migrated); a PostgreSQL one is dropped afterwards."""
    if backend == "duckdb":
        yield DuckDBStore(tmp_path / "vigil.duckdb", clock=clock)
        return
    if backend == "clickhouse":
        from vigil.store.clickhouse import ClickHouseStore

        database = f"vigil_s_{uuid.uuid4().hex[:10]}"
        made = ClickHouseStore(url=clickhouse_url(), database=database, clock=clock)
        try:
            yield made
        finally:
            made.client.query(f"DROP DATABASE IF EXISTS {database}", output="TSV")
            made.close()
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
    from vigil.store.clickhouse import ClickHouseStore
    from vigil.store.postgres import PostgresStore

    if isinstance(store, ClickHouseStore):
        return ClickHouseStore(url=store.url, database=store.database, clock=store.clock)
    assert isinstance(store, PostgresStore)
    return PostgresStore(store.url, store.schema, clock=store.clock)


@contextmanager
def store_yaml(backend: str) -> Iterator[str]:
    """The vigil.yaml `store:` entry of a fresh store on the backend; dropped afterwards."""
    if backend == "duckdb":
        yield "{type: duckdb, path: vigil.duckdb}"
        return
    name = f"vigil_e_{uuid.uuid4().hex[:10]}"
    if backend == "postgres":
        require_services("postgres")
        try:
            yield f"{{type: postgres, url: '{PG_URL}', schema: {name}}}"
        finally:
            drop_schema(name)
        return
    from vigil.clickhouse import ClickHouseClient

    url = clickhouse_url()
    try:
        yield f"{{type: clickhouse, url: '{url}', database: {name}}}"
    finally:
        client = ClickHouseClient(url=url)
        client.query(f"DROP DATABASE IF EXISTS {name}", output="TSV")
        client.close()
