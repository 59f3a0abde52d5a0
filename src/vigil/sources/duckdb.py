"""DuckDB source: a database file queried read-only, aggregation pushed into DuckDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
        self._memory: duckdb.DuckDBPyConnection | None = None
        self._session: duckdb.DuckDBPyConnection | None = None

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one read-only connection for a batch of queries (a cycle, a replay)."""
        if self._session is not None:
            yield
            return
        with self._open() as conn:
            self._session = conn
            try:
                yield
            finally:
                self._session = None

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The session's connection, or one for this use only: writers get the file in between."""
        if self._session is not None:
            yield self._session
            return
        with self._open() as conn:
            yield conn

    @contextmanager
    def _open(self) -> Iterator[duckdb.DuckDBPyConnection]:
        target = str(self.path)
        if target == ":memory:":
            if self._memory is None:
                self._memory = duckdb.connect(target)
                self._memory.execute("SET TimeZone = 'UTC'")
            yield self._memory
            return
        if not Path(target).exists():
            raise SourceError(f"source '{self.name}': database file {target} does not exist")
        try:
            conn = duckdb.connect(target, read_only=True)
            conn.execute("SET TimeZone = 'UTC'")
        except duckdb.Error as e:
            raise SourceError(f"source '{self.name}': cannot open {target}: {e}") from e
        try:
            yield conn
        finally:
            conn.close()

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """Run the dataset's query for [start, end) and return the long frame."""
        query = build_query(dataset, self.dialect, start, end, self.config.timezone)
        with self._connection() as conn:
            result = self._execute(conn, dataset, query.sql, query.params)
        return frame_from_rows(result, query)

    def _execute(
        self, conn: duckdb.DuckDBPyConnection, dataset: Dataset, sql: str, params: list[object]
    ) -> pd.DataFrame:
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
        end = datetime(2000, 1, 1)
        problems = []
        try:
            with self._connection() as conn:
                for metric in dataset.metrics:
                    query = build_query(dataset, self.dialect, end - DAY, end, "UTC", [metric.name])
                    try:
                        conn.execute(f"EXPLAIN {query.sql}", query.params)
                    except duckdb.Error as e:
                        where = dataset.formula_where.get(metric.name, dataset.where)
                        problems.append(f"{where}: {str(e).splitlines()[0]}")
        except SourceError as e:
            return [f"{dataset.where}: {e}"]
        return problems

    def close(self) -> None:
        """Close the in-memory connection, if any."""
        if self._memory is not None:
            self._memory.close()
            self._memory = None
