"""Real engines for the source and store tests: load tables into each, and name its source.

PostgreSQL and MariaDB run as services (`.ci/run` starts them); ClickHouse runs embedded
(chDB), directly or behind a local HTTP front that speaks ClickHouse's HTTP interface.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest

PG_URL = os.environ.get("VIGIL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("VIGIL_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")

SOURCE_ENGINES = [
    "duckdb",
    "postgres",
    "mariadb",
    "sqlite",
    "clickhouse",
    "clickhouse_http",
    "files",
]

# The same metric in each engine's own SQL.
FORMULAS: dict[str, dict[str, str]] = {
    "views": {
        "default": "count(*) FILTER (WHERE action = 'view')",
        "mysql": "SUM(action = 'view')",
        "clickhouse": "countIf(action = 'view')",
    },
    "likes": {
        "default": "count(*) FILTER (WHERE action = 'like')",
        "mysql": "SUM(action = 'like')",
        "clickhouse": "countIf(action = 'like')",
    },
    "users": {"default": "count(DISTINCT user_id)", "clickhouse": "uniqExact(user_id)"},
    "rows": {"default": "count(*)"},
    "ctr": {
        "default": "CAST(count(*) FILTER (WHERE action = 'like') AS DOUBLE PRECISION)"
        " / nullif(count(*) FILTER (WHERE action = 'view'), 0)",
        "duckdb": "count(*) FILTER (WHERE action = 'like')"
        " / nullif(count(*) FILTER (WHERE action = 'view'), 0)",
        "sqlite": "CAST(count(*) FILTER (WHERE action = 'like') AS REAL)"
        " / nullif(count(*) FILTER (WHERE action = 'view'), 0)",
        "mysql": "CAST(SUM(action = 'like') AS DOUBLE) / NULLIF(SUM(action = 'view'), 0)",
        "clickhouse": "countIf(action = 'like') / nullIf(countIf(action = 'view'), 0)",
    },
}

DIALECT_OF = {
    "duckdb": "duckdb",
    "files": "duckdb",
    "postgres": "postgres",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "clickhouse": "clickhouse",
    "clickhouse_http": "clickhouse",
}


def formula(metric: str, engine: str) -> str:
    """The metric's formula in the engine's dialect."""
    forms = FORMULAS[metric]
    return forms.get(DIALECT_OF[engine], forms["default"])


@dataclass
class LoadedEngine:
    """Tables loaded into one engine, and the vigil.yaml source entry that reads them."""

    engine: str
    source_yaml: str


class EngineLoader:
    """Loads DataFrames into an engine under a fresh namespace; drops it afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.suffix = uuid.uuid4().hex[:10]
        self._cleanups: list[Any] = []

    def load(self, engine: str, tables: dict[str, pd.DataFrame]) -> LoadedEngine:
        """Create the tables in `engine`; return the source config reading them."""
        return getattr(self, f"_load_{engine}")(tables)  # type: ignore[no-any-return]

    def close(self) -> None:
        """Drop what was created."""
        for cleanup in reversed(self._cleanups):
            cleanup()

    def _load_duckdb(self, tables: dict[str, pd.DataFrame]) -> LoadedEngine:
        import duckdb

        path = self.root / "engine.duckdb"
        with duckdb.connect(str(path)) as conn:
            for name, frame in tables.items():
                conn.register("incoming", frame)
                conn.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM incoming")
                conn.unregister("incoming")
        return LoadedEngine("duckdb", f"{{type: duckdb, path: {path}}}")

    def _load_files(self, tables: dict[str, pd.DataFrame]) -> LoadedEngine:
        entries = []
        for name, frame in tables.items():
            folder = self.root / "files" / name
            folder.mkdir(parents=True, exist_ok=True)
            # Two files per table: the source reads a glob.
            half = len(frame) // 2
            frame.iloc[:half].to_parquet(folder / "part-0.parquet", index=False)
            frame.iloc[half:].to_parquet(folder / "part-1.parquet", index=False)
            entries.append(f"{name}: {folder}/*.parquet")
        return LoadedEngine("files", f"{{type: files, tables: {{{', '.join(entries)}}}}}")

    def _load_sqlite(self, tables: dict[str, pd.DataFrame]) -> LoadedEngine:
        import sqlite3

        path = self.root / "engine.sqlite"
        with sqlite3.connect(path) as conn:
            for name, frame in tables.items():
                text = frame.copy()
                for column in text.columns:
                    if pd.api.types.is_datetime64_any_dtype(text[column]):
                        text[column] = text[column].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
                text.to_sql(name, conn, index=False, if_exists="replace")
        conn.close()
        return LoadedEngine("sqlite", f"{{type: sqlite, path: {path}}}")

    def _load_postgres(self, tables: dict[str, pd.DataFrame]) -> LoadedEngine:
        import psycopg

        schema = f"vigil_t_{self.suffix}"
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
            for name, frame in tables.items():
                columns = ", ".join(f"{c} {_pg_type(frame[c])}" for c in frame.columns)
                conn.execute(f"CREATE TABLE {schema}.{name} ({columns})")
                buffer = io.StringIO()
                frame.to_csv(buffer, index=False, header=False)
                with conn.cursor().copy(f"COPY {schema}.{name} FROM STDIN (FORMAT csv)") as copy:
                    copy.write(buffer.getvalue())
        self._cleanups.append(lambda: _pg_drop(schema))
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        return LoadedEngine("postgres", f"{{type: postgres, url: '{url}'}}")

    def _load_mariadb(self, tables: dict[str, pd.DataFrame]) -> LoadedEngine:
        import pymysql

        database = f"vigil_t_{self.suffix}"
        conn = _mysql_connect(None)
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {database}")
                cursor.execute(f"USE {database}")
                for name, frame in tables.items():
                    columns = ", ".join(f"`{c}` {_mysql_type(frame[c])}" for c in frame.columns)
                    cursor.execute(f"CREATE TABLE {name} ({columns})")
                    marks = ", ".join(["%s"] * len(frame.columns))
                    rows = [
                        tuple(None if pd.isna(v) else v for v in row)
                        for row in frame.astype(object).itertuples(index=False)
                    ]
                    for i in range(0, len(rows), 5000):
                        cursor.executemany(
                            f"INSERT INTO {name} VALUES ({marks})", rows[i : i + 5000]
                        )
        except pymysql.Error:
            conn.close()
            raise
        conn.close()
        self._cleanups.append(lambda: _mysql_drop(database))
        url = MYSQL_URL.rsplit("/", 1)[0] + f"/{database}"
        return LoadedEngine("mariadb", f"{{type: mariadb, url: '{url}'}}")

    def _load_clickhouse(self, tables: dict[str, pd.DataFrame]) -> LoadedEngine:
        path = self._clickhouse_tables(tables, "chdb")
        return LoadedEngine("clickhouse", f"{{type: clickhouse, path: {path}}}")

    def _load_clickhouse_http(self, tables: dict[str, pd.DataFrame]) -> LoadedEngine:
        path = self._clickhouse_tables(tables, "chdb-http")
        server = ClickHouseHTTP(path)
        self._cleanups.append(server.close)
        return LoadedEngine("clickhouse_http", f"{{type: clickhouse, url: '{server.url}'}}")

    def _clickhouse_tables(self, tables: dict[str, pd.DataFrame], folder: str) -> Path:
        from chdb import session

        path = self.root / folder
        staged = self.root / "chdb-staging"
        staged.mkdir(exist_ok=True)
        engine = session.Session(str(path))
        try:
            for name, frame in tables.items():
                parquet = staged / f"{name}.parquet"
                frame.to_parquet(parquet, index=False)
                engine.query(
                    f"CREATE TABLE {name} ENGINE = MergeTree ORDER BY tuple() AS"
                    f" SELECT * FROM file('{parquet}', Parquet)"
                    " SETTINGS session_timezone = 'UTC'"
                )
        finally:
            engine.close()
        return path


def _pg_type(series: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(series):
        return "TIMESTAMP"
    if pd.api.types.is_integer_dtype(series):
        return "BIGINT"
    if pd.api.types.is_float_dtype(series):
        return "DOUBLE PRECISION"
    return "TEXT"


def _mysql_type(series: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(series):
        return "DATETIME(6)"
    if pd.api.types.is_integer_dtype(series):
        return "BIGINT"
    if pd.api.types.is_float_dtype(series):
        return "DOUBLE"
    return "VARCHAR(255)"


def _pg_drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _mysql_connect(database: str | None) -> Any:
    import pymysql

    url = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=url.hostname,
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=database,
        autocommit=True,
    )


def _mysql_drop(database: str) -> None:
    conn = _mysql_connect(None)
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {database}")
    conn.close()


class ClickHouseHTTP:
    """A ClickHouse HTTP interface in its own process (`python -m tests.clickhouse_http`):
    the embedded engine allows one data directory per process."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.clickhouse_http", str(path)],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
            text=True,
        )
        assert self.process.stdout is not None
        port = int(self.process.stdout.readline())
        self.url = f"http://default:hunter2-secret@127.0.0.1:{port}"

    def close(self) -> None:
        """Stop the server."""
        self.process.terminate()
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def engine_loader(root: Path) -> Iterator[EngineLoader]:
    """An EngineLoader whose namespaces are dropped afterwards."""
    loader = EngineLoader(root)
    try:
        yield loader
    finally:
        loader.close()


def require_services(engine: str) -> None:
    """Fail (not skip) when a service the suite needs is down: CI must start it."""
    if engine == "postgres":
        import psycopg

        try:
            psycopg.connect(PG_URL, connect_timeout=5).close()
        except psycopg.Error as e:
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: {e}")
    if engine == "mariadb":
        import pymysql

        try:
            _mysql_connect(None).close()
        except pymysql.Error as e:
            pytest.fail(f"MariaDB is not reachable at {MYSQL_URL}: {e}")
