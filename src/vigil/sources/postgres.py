"""PostgreSQL source: psycopg 3 with a connection pool; read-only sessions in UTC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg_pool import ConnectionPool

from vigil.config.schema import PostgresSourceConfig
from vigil.sources.dialects import PostgresDialect
from vigil.sources.sqlbase import SQLSource


class PostgresSource(SQLSource):
    """Runs the generated queries in PostgreSQL with a statement timeout."""

    dialect = PostgresDialect()
    errors = (psycopg.Error,)

    def __init__(self, name: str, config: PostgresSourceConfig, root: Path) -> None:
        super().__init__(name, config, root)
        self._url = config.url.get_secret_value()
        info = psycopg.conninfo.conninfo_to_dict(self._url)
        self._secrets = [str(info.get("password") or "")]
        self._options = str(info.get("options") or "")
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None

    def _open(self) -> psycopg.Connection[Any]:
        if self._pool is None:
            timeout_ms = int(self.timeout_seconds * 1000)
            connect = max(1, round(self.config.connect_timeout.total_seconds()))
            kwargs: dict[str, Any] = {
                "autocommit": True,
                "connect_timeout": connect,
                # The URL's own options (e.g. -c search_path=…) come first.
                "options": f"{self._options} -c statement_timeout={timeout_ms}"
                " -c TimeZone=UTC -c default_transaction_read_only=on".strip(),
            }
            # One direct connection first: if the server refuses (a wrong password, an unknown
            # database, a closed or silent port) its own words are the error, within
            # connect_timeout, instead of the pool's "initialization incomplete" 30 s later.
            psycopg.connect(self._url, **kwargs).close()
            self._pool = ConnectionPool(
                self._url,
                min_size=1,
                max_size=self.config.pool_size,
                kwargs=kwargs,
                open=False,
                name=f"vigil-source-{self.name}",
            )
            self._pool.open(wait=True, timeout=connect + 5)
        return self._pool.getconn(timeout=60)

    def _release(self, conn: Any) -> None:
        if self._pool is not None:
            self._pool.putconn(conn)

    def _query(self, conn: Any, sql: str, params: Any) -> pd.DataFrame:
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
            columns = [d.name for d in cursor.description or []]
            rows = cursor.fetchall()
        return pd.DataFrame.from_records(rows, columns=columns)

    def close(self) -> None:
        """Close the pool."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
