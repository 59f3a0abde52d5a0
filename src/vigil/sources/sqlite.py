"""SQLite source: a database file opened read-only; times are UTC ISO-8601 text."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.config.schema import SQLiteSourceConfig
from vigil.errors import SourceError
from vigil.sources.dialects import SQLiteDialect
from vigil.sources.sqlbase import SQLSource


class SQLiteSource(SQLSource):
    """Runs the generated queries (UNION ALL per slice) in SQLite."""

    dialect = SQLiteDialect()
    errors = (sqlite3.Error,)

    def __init__(self, name: str, config: SQLiteSourceConfig, root: Path) -> None:
        super().__init__(name, config, root)
        path = Path(config.path)
        self.path = path if path.is_absolute() else root / path

    def _open(self) -> sqlite3.Connection:
        if not self.path.exists():
            raise SourceError(f"source '{self.name}': database file {self.path} does not exist")
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)

    def _query(self, conn: Any, sql: str, params: Any) -> pd.DataFrame:
        """Run with a progress handler that aborts the query after the timeout."""
        deadline = time.monotonic() + self.timeout_seconds
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            return super()._query(conn, sql, params)
        finally:
            conn.set_progress_handler(None, 0)
