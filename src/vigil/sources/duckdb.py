"""DuckDB sources: a database file queried read-only, or files (CSV, Parquet, JSON) as tables."""

from __future__ import annotations

import glob
import threading
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from vigil.config.schema import DuckDBSourceConfig, FilesSourceConfig, file_format
from vigil.errors import SourceError
from vigil.sources.dialects import DuckDBDialect, sql_string
from vigil.sources.sqlbase import SQLSource


class DuckDBSource(SQLSource):
    """Runs the generated dataset queries inside DuckDB."""

    dialect = DuckDBDialect()
    errors = (duckdb.Error,)

    def __init__(self, name: str, config: DuckDBSourceConfig, root: Path) -> None:
        super().__init__(name, config, root)
        path = Path(config.path)
        self.path = path if path.is_absolute() or config.path == ":memory:" else root / path
        self._memory: duckdb.DuckDBPyConnection | None = None

    def _open(self) -> duckdb.DuckDBPyConnection:
        target = str(self.path)
        if target == ":memory:":
            if self._memory is None:
                self._memory = duckdb.connect(target)
                self._memory.execute("SET TimeZone = 'UTC'")
            return self._memory
        if not Path(target).exists():
            raise SourceError(f"source '{self.name}': database file {target} does not exist")
        try:
            conn = duckdb.connect(target, read_only=True)
            conn.execute("SET TimeZone = 'UTC'")
        except duckdb.Error as e:
            raise SourceError(f"source '{self.name}': cannot open {target}: {e}") from e
        return conn

    def _release(self, conn: Any) -> None:
        if conn is not self._memory:
            conn.close()

    def _query(self, conn: Any, sql: str, params: Any) -> pd.DataFrame:
        """Run with a timer that interrupts DuckDB after the query timeout."""
        timer = threading.Timer(self.timeout_seconds, conn.interrupt)
        timer.start()
        try:
            return conn.execute(sql, params).df()  # type: ignore[no-any-return]
        finally:
            timer.cancel()

    def close(self) -> None:
        """Close the in-memory connection, if any."""
        if self._memory is not None:
            self._memory.close()
            self._memory = None


class FilesSource(DuckDBSource):
    """CSV, Parquet and JSON files (or globs) as tables of an in-memory DuckDB."""

    def __init__(self, name: str, config: FilesSourceConfig, root: Path) -> None:
        SQLSource.__init__(self, name, config, root)
        self.path = Path(":memory:")
        self._memory = None

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self._memory is not None:
            return self._memory
        conn = duckdb.connect(":memory:")
        conn.execute("SET TimeZone = 'UTC'")
        for table, pattern in self.config.tables.items():
            path = pattern if Path(pattern).is_absolute() else str(self.root / pattern)
            if not glob.glob(path):
                conn.close()
                raise SourceError(f"source '{self.name}': table '{table}': no file matches {path}")
            reader = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json"}
            function = reader[file_format(pattern) or "csv"]
            # A view: each query reads the files as they are now (new files, late rows).
            conn.execute(
                f"CREATE VIEW {self.dialect.quote(table)} AS"
                f" SELECT * FROM {function}({sql_string(path)})"
            )
        self._memory = conn
        return conn
