"""The embedded DuckDB metric store: one file, short-lived connections, versioned schema."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from vigil.errors import StoreError
from vigil.store.sql import Clock, SQLStore, _utc_now

LOCK_WAIT_SECONDS = 30.0


class DuckDBStore(SQLStore):
    """Metric store in one DuckDB file; other processes can read between cycles."""

    errors = (duckdb.Error,)
    exclusive_sessions = True  # an open file is this process's alone

    def __init__(self, path: Path | str, tz: str = "UTC", clock: Clock = _utc_now) -> None:
        super().__init__(tz, clock)
        self.path = str(path)

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                conn = duckdb.connect(self.path)
                conn.execute("SET TimeZone = 'UTC'")
                return conn
            except duckdb.IOException as e:
                # Another Vigil process holds the file; it releases it between cycles.
                if "lock" not in str(e).lower() or time.monotonic() > deadline:
                    raise StoreError(f"cannot open metric store {self.path}: {e}") from e
                time.sleep(0.2)
            except duckdb.Error as e:
                raise StoreError(f"cannot open metric store {self.path}: {e}") from e

    def _execute(self, conn: Any, sql: str, params: list[Any]) -> Any:
        return conn.execute(sql, params)

    def _frame(self, sql: str, params: Any = ()) -> pd.DataFrame:
        """DuckDB hands results to pandas directly."""
        with self.session():
            return self._run(sql, params).df()  # type: ignore[no-any-return]

    def _arrays(self, sql: str, params: Any = ()) -> dict[str, Any]:
        """DuckDB hands results to numpy directly."""
        with self.session():
            return self._run(sql, params).fetchnumpy()  # type: ignore[no-any-return]

    def _insert_frame(self, frame: pd.DataFrame, sql: str | tuple[str, ...], like: str) -> None:
        """Register the frame as the view `incoming` for the statement."""
        with self.session() as conn:
            conn.register("incoming", frame)
            try:
                for statement in (sql,) if isinstance(sql, str) else sql:
                    self._run(statement)
            finally:
                conn.unregister("incoming")
