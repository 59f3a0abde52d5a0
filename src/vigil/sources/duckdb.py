"""DuckDB source: a database file queried read-only, aggregation pushed into DuckDB."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from vigil.config.project import Dataset
from vigil.config.schema import DuckDBSourceConfig
from vigil.errors import SourceError
from vigil.sources.sql import DuckDBDialect, build_query, frame_from_rows
from vigil.timeutil import DAY


class DuckDBSource:
    """Runs the generated dataset queries inside DuckDB."""

    dialect = DuckDBDialect()

    def __init__(self, name: str, config: DuckDBSourceConfig, root: Path) -> None:
        self.name = name
        self.config = config
        path = Path(config.path)
        self.path = path if path.is_absolute() or config.path == ":memory:" else root / path
        self._conn: duckdb.DuckDBPyConnection | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            target = str(self.path)
            if target != ":memory:" and not Path(target).exists():
                raise SourceError(f"source '{self.name}': database file {target} does not exist")
            try:
                self._conn = duckdb.connect(target, read_only=target != ":memory:")
                self._conn.execute("SET TimeZone = 'UTC'")
            except duckdb.Error as e:
                raise SourceError(f"source '{self.name}': cannot open {target}: {e}") from e
        return self._conn

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """Run the dataset's query for [start, end) and return the long frame."""
        query = build_query(dataset, self.dialect, start, end, self.config.timezone)
        result = self._execute(dataset, query.sql, query.params)
        return frame_from_rows(result, query)

    def _execute(self, dataset: Dataset, sql: str, params: list[object]) -> pd.DataFrame:
        conn = self._connection()
        timer = threading.Timer(self.config.query_timeout.total_seconds(), conn.interrupt)
        timer.start()
        try:
            return conn.execute(sql, params).df()
        except duckdb.Error as e:
            message = str(e).splitlines()[0]
            raise SourceError(
                f"source '{self.name}', dataset '{dataset.name}': {message}\nSQL: {sql}"
            ) from e
        finally:
            timer.cancel()

    def check(self, dataset: Dataset) -> list[str]:
        """Compile each metric's formula against the real table; report what DuckDB rejects."""
        try:
            self._connection()
        except SourceError as e:
            return [f"{dataset.where}: {e}"]
        end = datetime(2000, 1, 1)
        problems = []
        for metric in dataset.metrics:
            query = build_query(dataset, self.dialect, end - DAY, end, "UTC", [metric.name])
            try:
                self._connection().execute(f"EXPLAIN {query.sql}", query.params)
            except duckdb.Error as e:
                message = str(e).splitlines()[0]
                where = dataset.formula_where.get(metric.name, dataset.where)
                problems.append(f"{where}: {message}")
        return problems

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
