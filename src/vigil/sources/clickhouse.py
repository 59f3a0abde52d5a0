"""ClickHouse source: a server over its HTTP interface, or the embedded engine (chDB).

Both transports send the same SQL with typed `{name:Type}` parameters and read JSONCompact,
so a query behaves the same whichever runs it.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pandas as pd

from vigil.config.schema import ClickHouseSourceConfig
from vigil.errors import SourceError
from vigil.sources.dialects import ClickHouseDialect
from vigil.sources.sqlbase import SQLSource


class ClickHouseQueryError(Exception):
    """ClickHouse rejected or aborted a query."""


class ClickHouseSource(SQLSource):
    """Runs the generated GROUPING SETS queries in ClickHouse."""

    dialect = ClickHouseDialect()
    errors = (ClickHouseQueryError,)

    def __init__(self, name: str, config: ClickHouseSourceConfig, root: Path) -> None:
        super().__init__(name, config, root)
        self._client: httpx.Client | None = None
        self._engine: Any = None
        self._lock = threading.Lock()
        self._auth: tuple[str, str] | None = None
        if config.url is not None:
            url = urlsplit(config.url.get_secret_value())
            if url.scheme not in ("http", "https") or not url.hostname:
                raise SourceError(
                    f"source '{name}': url must be http(s)://user:password@host:8123"
                    " (the HTTP interface)"
                )
            if url.username:
                self._auth = (unquote(url.username), unquote(url.password or ""))
                self._secrets = [self._auth[1]]
            netloc = url.hostname or ""
            if url.port:
                netloc += f":{url.port}"
            self._base = urlunsplit((url.scheme, netloc, url.path or "/", "", ""))
        else:
            path = Path(config.path or "")
            self.path = path if path.is_absolute() else root / path

    def settings(self) -> dict[str, str]:
        """Per-query settings: UTC, the timeout, NaN as null, 64-bit integers as numbers."""
        return {
            "session_timezone": "UTC",
            "max_execution_time": str(max(1, int(self.timeout_seconds))),
            "output_format_json_quote_64bit_integers": "0",
            "output_format_json_quote_denormals": "0",
        }

    def _open(self) -> Any:
        if self.config.url is not None:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self._base, auth=self._auth, timeout=self.timeout_seconds + 10
                )
            return self._client
        if self._engine is None:
            from chdb import session  # the embedded engine loads only when used

            self.path.mkdir(parents=True, exist_ok=True)
            self._engine = session.Session(str(self.path))  # type: ignore[no-untyped-call]
        return self._engine

    def _release(self, conn: Any) -> None:
        """Connections stay open until `close`."""

    def _query(self, conn: Any, sql: str, params: Any) -> pd.DataFrame:
        text = self._run(conn, sql, params, "JSONCompact")
        document = json.loads(text) if text.strip() else {"meta": [], "data": []}
        columns = [m["name"] for m in document["meta"]]
        return pd.DataFrame.from_records(document["data"], columns=columns)

    def _explain(self, conn: Any, sql: str, params: Any) -> None:
        self._run(conn, f"EXPLAIN {sql}", params, "TSV")

    def _run(self, conn: Any, sql: str, params: dict[str, str], output: str) -> str:
        settings = self.settings()
        if isinstance(conn, httpx.Client):
            query = {
                "database": self.config.database,
                "default_format": output,
                **settings,
                **{f"param_{k}": v for k, v in params.items()},
            }
            try:
                response = conn.post("/", params=query, content=sql.encode())
            except httpx.HTTPError as e:
                raise ClickHouseQueryError(f"{type(e).__name__}: {e}") from e
            if response.status_code != 200:
                raise ClickHouseQueryError(response.text.strip())
            return response.text
        clause = ", ".join(f"{k} = {_setting(v)}" for k, v in settings.items())
        with self._lock:
            try:
                conn.query(f"USE {self.dialect.quote(self.config.database)}")
                result = conn.query(f"{sql}\nSETTINGS {clause}", output, params=params)
            except Exception as e:
                raise ClickHouseQueryError(str(e).strip()) from e
        return str(result.bytes().decode())

    def close(self) -> None:
        """Close the HTTP client or the embedded session."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def _setting(value: str) -> str:
    return value if value.isdigit() else "'" + value.replace("'", "''") + "'"
