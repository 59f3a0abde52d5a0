"""ClickHouse source: a server over its HTTP interface, or the embedded engine (chDB).

Both transports send the same SQL with typed `{name:Type}` parameters and read JSONCompact,
so a query behaves the same whichever runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.clickhouse import ClickHouseClient, ClickHouseQueryError
from vigil.config.schema import ClickHouseSourceConfig
from vigil.errors import SourceError
from vigil.sources.dialects import ClickHouseDialect
from vigil.sources.sqlbase import SQLSource


class ClickHouseSource(SQLSource):
    """Runs the generated GROUPING SETS queries in ClickHouse."""

    dialect = ClickHouseDialect()
    errors = (ClickHouseQueryError,)

    def __init__(self, name: str, config: ClickHouseSourceConfig, root: Path) -> None:
        super().__init__(name, config, root)
        path: Path | None = None
        if config.path is not None:
            path = Path(config.path)
            path = path if path.is_absolute() else root / path
        try:
            self._client = ClickHouseClient(
                url=config.url.get_secret_value() if config.url is not None else None,
                path=path,
                database=config.database,
                timeout=self.timeout_seconds,
            )
        except ValueError as e:
            raise SourceError(f"source '{name}': {e}") from e
        if self._client.password:
            self._secrets = [self._client.password]

    def settings(self) -> dict[str, str]:
        """Per-query settings: the timeout, NaN as null, 64-bit integers as numbers."""
        return {
            "max_execution_time": str(max(1, int(self.timeout_seconds))),
            "output_format_json_quote_64bit_integers": "0",
            "output_format_json_quote_denormals": "0",
        }

    def _open(self) -> Any:
        return self._client

    def _release(self, conn: Any) -> None:
        """The client stays open until `close`."""

    def _query(self, conn: Any, sql: str, params: Any) -> pd.DataFrame:
        text = conn.query(sql, params, "JSONCompact", self.settings())
        document = json.loads(text) if text.strip() else {"meta": [], "data": []}
        columns = [m["name"] for m in document["meta"]]
        return pd.DataFrame.from_records(document["data"], columns=columns)

    def _explain(self, conn: Any, sql: str, params: Any) -> None:
        conn.query(f"EXPLAIN {sql}", params, "TSV", self.settings())

    def close(self) -> None:
        """Close the HTTP client or let go of the embedded engine."""
        self._client.close()
