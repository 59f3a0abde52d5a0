"""The PostgreSQL metric store: shared by several Vigil processes (one leads, any can read).

Same tables and statements as the DuckDB store; frames are staged with COPY into a temporary
table, migrations run under an advisory lock, and the leader lock is one conditional upsert.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from vigil.errors import StoreError
from vigil.sources.dialects import redact_url
from vigil.store.sql import Clock, SQLStore, _utc_now

# pg_advisory_lock key for schema migrations ("vigil" in ASCII).
MIGRATION_LOCK = 0x766967696C
# pg_advisory_lock class of the locks on notifications being delivered ("vigi").
DELIVERY_LOCKS = 0x76696769

_TYPES = [
    (re.compile(r"\bDOUBLE\b(?! PRECISION)"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
]


class PostgresStore(SQLStore):
    """Metric store in a PostgreSQL schema."""

    errors = (psycopg.Error,)
    key_ordered_writes = True  # several processes write at once

    def __init__(
        self, url: str, schema: str = "vigil", tz: str = "UTC", clock: Clock = _utc_now
    ) -> None:
        super().__init__(tz, clock)
        self.url = url
        self.schema = schema

    def connection(self) -> psycopg.Connection[Any]:
        """A connection of the caller's own (autocommit, in the store's schema): for work that
        holds locks for as long as it runs (the workers' job claims)."""
        return self._open()

    def _open(self) -> psycopg.Connection[Any]:
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=30)
        except psycopg.Error as e:
            raise StoreError(f"cannot open metric store: {redact_url(str(e))}") from e
        conn.execute("SET TimeZone = 'UTC'")
        quoted = '"' + self.schema.replace('"', '""') + '"'
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        conn.execute(f"SET search_path = {quoted}")
        return conn

    def _execute(self, conn: Any, sql: str, params: list[Any]) -> Any:
        # psycopg binds %s: double literal percent signs, then turn the markers.
        text = sql.replace("%", "%%").replace("?", "%s") if params else sql
        return conn.execute(text, params or None)

    def ddl(self, statement: str) -> str:
        """PostgreSQL spells DOUBLE and BLOB differently."""
        for pattern, replacement in _TYPES:
            statement = pattern.sub(replacement, statement)
        return statement

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Only one process migrates; the others wait, then find nothing to do."""
        self._run(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
        try:
            yield
        finally:
            self._run(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")

    @contextmanager
    def delivery_lock(self, key: str) -> Iterator[bool]:
        """A session-level advisory lock on the notification while it is being sent: another
        process sees it taken and leaves the notification alone; the server frees it when the
        holder dies, so a notification left `sending` by a dead process is resumed, never one
        still in flight."""
        with self.session():
            params = [DELIVERY_LOCKS, f"{self.schema}.{key}"]  # stores may share a database
            got = bool(self._rows("SELECT pg_try_advisory_lock(?, hashtext(?))", params)[0][0])
            try:
                yield got
            finally:
                if got:
                    self._run("SELECT pg_advisory_unlock(?, hashtext(?))", params)

    def _insert_frame(self, frame: pd.DataFrame, sql: str | tuple[str, ...], like: str) -> None:
        """COPY the frame into a temporary `incoming` table typed like `like`, run the
        statement, drop the table."""
        names = ", ".join(frame.columns)
        # Inside a transaction: on failure the rollback removes the table too.
        with self.transaction(), self.session() as conn:
            self._run(f"CREATE TEMP TABLE incoming AS SELECT {names} FROM {like} WHERE false")
            with conn.cursor().copy(f"COPY incoming ({names}) FROM STDIN") as copy:
                for row in _python_rows(frame):
                    copy.write_row(row)
            for statement in (sql,) if isinstance(sql, str) else sql:
                self._run(statement)
            self._run("DROP TABLE incoming")


def _python_rows(frame: pd.DataFrame) -> Iterator[tuple[Any, ...]]:
    """Plain Python values (None for missing) that psycopg can COPY."""
    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            values = [None if pd.isna(v) else v.to_pydatetime() for v in series]
        else:
            values = [None if _missing(v) else _plain(v) for v in series.tolist()]
        columns.append(values)
    return zip(*columns, strict=True)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
