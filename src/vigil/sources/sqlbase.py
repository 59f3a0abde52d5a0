"""What every SQL source shares: sessions, the generated query, errors that name the metric.

A backend supplies its dialect, how to open (and give back) a connection, and how to run one
query into a DataFrame. Errors name the source, the dataset, the failing metrics and the SQL,
never the credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.config.project import Dataset
from vigil.errors import SourceError
from vigil.sources.dialects import Dialect, UnsupportedStatError, redact_url
from vigil.sources.sql import DatasetQuery, build_query, frame_from_rows
from vigil.timeutil import DAY


class SQLSource:
    """Base of the SQL sources: one generated query per dataset and window."""

    dialect: Dialect
    # The generated query aggregates each bucket on its own, so one read of a long range gives
    # the rows of every shorter window in it (a replay reads its range once).
    answers_any_window_alike = True
    # Driver exceptions that mean "this query failed" (anything else is a bug and propagates).
    errors: tuple[type[BaseException], ...] = ()

    def __init__(self, name: str, config: Any, root: Path) -> None:
        self.name = name
        self.config = config
        self.root = root
        self._session: Any = None
        self._secrets: list[str] = []

    @property
    def timezone(self) -> str:
        """Zone of naive timestamps in this source."""
        return str(getattr(self.config, "timezone", "UTC"))

    @property
    def timeout_seconds(self) -> float:
        """Per-query time limit."""
        return float(self.config.query_timeout.total_seconds())

    # --- connections (backends override) -----------------------------------------------

    def _open(self) -> Any:
        """A connection (from the pool, if any)."""
        raise NotImplementedError

    def _release(self, conn: Any) -> None:
        """Give a connection back."""
        conn.close()

    def _query(self, conn: Any, sql: str, params: Any) -> pd.DataFrame:
        """Run one query with a DB-API cursor; the frame has the query's column names."""
        cursor = conn.cursor()
        try:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            columns = [d[0] for d in cursor.description]
        finally:
            cursor.close()
        return pd.DataFrame.from_records(list(rows), columns=columns)

    def _explain(self, conn: Any, sql: str, params: Any) -> None:
        """Compile a query without running it."""
        self._query(conn, f"EXPLAIN {sql}", params)

    # --- sessions ---------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[None]:
        """Keep one connection for a batch of queries (a cycle, a replay)."""
        if self._session is not None:
            yield
            return
        with self._connection() as conn:
            self._session = conn
            try:
                yield
            finally:
                self._session = None

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self._session is not None:
            yield self._session
            return
        try:
            conn = self._open()
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(
                f"source '{self.name}': cannot connect: {self._redact(first_line(e))}"
            ) from e
        try:
            yield conn
        finally:
            self._release(conn)

    # --- the source interface ------------------------------------------------------------

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """Run the dataset's query for [start, end) and return the long frame."""
        query = self._build(dataset, start, end)
        with self._connection() as conn:
            try:
                result = self._query(conn, query.sql, query.params)
            except self.errors as e:
                raise self._failure(conn, dataset, e, query) from e
        return frame_from_rows(result, query)

    def _build(
        self,
        dataset: Dataset,
        start: datetime,
        end: datetime,
        metrics: list[str] | None = None,
    ) -> DatasetQuery:
        try:
            return build_query(dataset, self.dialect, start, end, self.timezone, metrics)
        except (UnsupportedStatError, ValueError) as e:
            raise SourceError(
                f"source '{self.name}', dataset '{dataset.name}': {e}", permanent=True
            ) from e

    def _failure(
        self, conn: Any, dataset: Dataset, error: BaseException, query: DatasetQuery
    ) -> SourceError:
        """An error naming the metrics whose SQL the engine rejects (found by compiling each
        alone), the message and the full SQL."""
        culprits = []
        if len(query.metrics) > 1:
            for name in query.metrics:
                single = self._build(dataset, datetime(2000, 1, 1), datetime(2000, 1, 2), [name])
                try:
                    self._explain(conn, single.sql, single.params)
                except self.errors:
                    culprits.append(name)
                except Exception:  # a diagnostic probe; the original error stands
                    continue
        named = ""
        if culprits:
            named = f", metric{'s' if len(culprits) > 1 else ''} {', '.join(map(repr, culprits))}"
        # DB-API's ProgrammingError (DuckDB, psycopg, PyMySQL, sqlite3): the SQL itself is
        # wrong (a typo, an unknown column), which no retry fixes.
        rejected = any(c.__name__ == "ProgrammingError" for c in type(error).__mro__)
        return SourceError(
            f"source '{self.name}' ({self.dialect.name}), dataset '{dataset.name}'{named}:"
            f" {self._redact(first_line(error))}\nSQL: {query.sql}",
            permanent=rejected,
        )

    def check(self, dataset: Dataset) -> list[str]:
        """Compile each metric's SQL against the real tables; report what the engine rejects."""
        end = datetime(2000, 1, 1)
        problems = []
        try:
            with self._connection() as conn:
                for metric in dataset.metrics:
                    where = dataset.formula_where.get(metric.name, dataset.where)
                    try:
                        query = self._build(dataset, end - DAY, end, [metric.name])
                        self._explain(conn, query.sql, query.params)
                    except SourceError as e:
                        problems.append(f"{where}: {str(e).split(': ', 1)[-1]}")
                    except self.errors as e:
                        problems.append(f"{where}: {self._redact(first_line(e))}")
        except SourceError as e:
            return [f"{dataset.where}: {e}"]
        return problems

    def close(self) -> None:
        """Release pooled connections (backends with pools override)."""

    def _redact(self, text: str) -> str:
        text = redact_url(text)
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (drivers add context lines)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
