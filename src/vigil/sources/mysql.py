"""MySQL and MariaDB source: PyMySQL, a small pool of idle connections, session zone UTC."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from vigil.config.project import Dataset
from vigil.config.schema import MySQLSourceConfig
from vigil.errors import SourceError
from vigil.sources.dialects import MySQLDialect
from vigil.sources.sql import DatasetQuery
from vigil.sources.sqlbase import SQLSource


class MySQLSource(SQLSource):
    """Runs the generated queries (UNION ALL per slice) in MySQL or MariaDB."""

    dialect = MySQLDialect()
    errors = (pymysql.Error,)

    def __init__(self, name: str, config: MySQLSourceConfig, root: Path) -> None:
        super().__init__(name, config, root)
        url = urlsplit(config.url.get_secret_value())
        if url.scheme not in ("mysql", "mariadb") or not url.hostname:
            raise SourceError(
                f"source '{name}': url must look like mysql://user:password@host:3306/database"
            )
        self._params: dict[str, Any] = {
            "host": url.hostname,
            "port": url.port or 3306,
            "user": unquote(url.username or "root"),
            "password": unquote(url.password or ""),
            "database": url.path.lstrip("/") or None,
        }
        self._secrets = [self._params["password"]]
        self._idle: list[Any] = []
        self._known_zones: set[str] = set()
        self._lock = threading.Lock()

    def _open(self) -> Any:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                try:
                    conn.ping(reconnect=False)
                    return conn
                except pymysql.Error:
                    conn.close()
        timeout = self.timeout_seconds
        conn = pymysql.connect(
            **self._params,
            autocommit=True,
            connect_timeout=max(1, round(self.config.connect_timeout.total_seconds())),
            read_timeout=int(timeout) + 10,
            write_timeout=int(timeout) + 10,
            init_command="SET time_zone = '+00:00'",
        )
        with conn.cursor() as cursor:
            try:  # MariaDB: seconds, any statement
                cursor.execute(f"SET SESSION max_statement_time = {timeout:.3f}")
            except pymysql.Error:  # MySQL: milliseconds, SELECT only
                cursor.execute(f"SET SESSION max_execution_time = {int(timeout * 1000)}")
        return conn

    def _build(
        self,
        dataset: Dataset,
        start: datetime,
        end: datetime,
        metrics: list[str] | None = None,
    ) -> DatasetQuery:
        """Named zones need the server's zone tables: say so rather than return NULL buckets."""
        zones = {self.timezone}
        if dataset.granularity.is_calendar:
            zones.add(dataset.granularity.tz)
        for zone in sorted(zones - {"UTC", *self._known_zones}):
            with self._connection() as conn, conn.cursor() as cursor:
                cursor.execute("SELECT CONVERT_TZ('2000-01-01 00:00:00', '+00:00', %s)", [zone])
                if cursor.fetchone()[0] is None:
                    raise SourceError(
                        f"source '{self.name}', dataset '{dataset.name}': the server does not"
                        f" know the time zone '{zone}'; load its zone tables, e.g."
                        " `mariadb-tzinfo-to-sql /usr/share/zoneinfo | mariadb -u root mysql`"
                    )
            self._known_zones.add(zone)
        return super()._build(dataset, start, end, metrics)

    def _release(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < self.config.pool_size and conn.open:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close idle connections."""
        with self._lock:
            for conn in self._idle:
                conn.close()
            self._idle.clear()
