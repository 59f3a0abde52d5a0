"""One way to talk to ClickHouse, for the ClickHouse source and the ClickHouse metric store.

A server is reached over its HTTP interface; the embedded engine (chDB) runs in the process.
Both take the same SQL with typed `{name:Type}` parameters and the same settings, so a query
behaves the same whichever runs it. chDB allows one data directory per process: a source and
a store that both embed ClickHouse share it when they name the same directory.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import numpy as np


class ClickHouseQueryError(Exception):
    """ClickHouse rejected or aborted a query (or could not be reached)."""


class _Embedded:
    """The process's one chDB engine, shared by every client that names its directory."""

    lock = threading.Lock()
    engine: Any = None
    path: Path | None = None
    users = 0

    @classmethod
    def acquire(cls, path: Path) -> Any:
        with cls.lock:
            if cls.engine is not None and cls.path != path:
                raise ClickHouseQueryError(
                    f"the embedded ClickHouse engine is already open on {cls.path}; one process"
                    f" can embed only one directory, expected the same path instead of {path}"
                )
            if cls.engine is None:
                from chdb import session  # the embedded engine loads only when used

                path.mkdir(parents=True, exist_ok=True)
                cls.engine = session.Session(str(path))  # type: ignore[no-untyped-call]
                cls.path = path
            cls.users += 1
            return cls.engine

    @classmethod
    def release(cls) -> None:
        with cls.lock:
            cls.users -= 1
            if cls.users <= 0 and cls.engine is not None:
                cls.engine.close()
                cls.engine = None
                cls.path = None
                cls.users = 0


class ClickHouseClient:
    """Runs SQL on a ClickHouse server (url) or on the embedded engine (path)."""

    def __init__(
        self,
        *,
        url: str | None = None,
        path: Path | None = None,
        database: str = "default",
        timeout: float = 300.0,
    ) -> None:
        self.database = database
        self.timeout = timeout
        self.path = path
        self.password = ""
        self._http: httpx.Client | None = None
        self._engine: Any = None
        self._base = ""
        self._auth: tuple[str, str] | None = None
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    "url must be http(s)://user:password@host:8123 (the HTTP interface)"
                )
            if parts.username:
                self._auth = (unquote(parts.username), unquote(parts.password or ""))
                self.password = self._auth[1]
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            self._base = urlunsplit((parts.scheme, netloc, parts.path or "/", "", ""))
        elif path is None:
            raise ValueError("give url (a server) or path (embedded chDB)")

    @property
    def is_embedded(self) -> bool:
        """Whether queries run in this process."""
        return not self._base

    def query(
        self,
        sql: str,
        params: dict[str, str] | None = None,
        output: str = "JSONCompact",
        settings: dict[str, str] | None = None,
        database: str | None = None,
    ) -> str:
        """Run one statement; return its output in `output` format."""
        params = params or {}
        settings = {"session_timezone": "UTC", **(settings or {})}
        database = database or self.database
        if not self.is_embedded:
            if self._http is None:
                self._http = httpx.Client(
                    base_url=self._base, auth=self._auth, timeout=self.timeout + 10
                )
            query = {
                "database": database,
                "default_format": output,
                **settings,
                **{f"param_{k}": v for k, v in params.items()},
            }
            try:
                response = self._http.post("/", params=query, content=sql.encode())
            except httpx.HTTPError as e:
                raise ClickHouseQueryError(f"{type(e).__name__}: {e}") from e
            if response.status_code != 200:
                raise ClickHouseQueryError(response.text.strip())
            return response.text
        if self._engine is None:
            assert self.path is not None
            self._engine = _Embedded.acquire(self.path)
        clause = ", ".join(f"{k} = {_setting(v)}" for k, v in settings.items())
        with _Embedded.lock:
            try:
                self._engine.query(f"USE {quote_identifier(database)}")
                result = self._engine.query(with_settings(sql, clause), output, params=params)
            except Exception as e:
                raise ClickHouseQueryError(str(e).strip()) from e
        return str(result.bytes().decode())

    def close(self) -> None:
        """Close the HTTP client, or let go of the embedded engine."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self._engine is not None:
            self._engine = None
            _Embedded.release()


def bind(sql: str, params: list[Any], marker: str) -> tuple[str, dict[str, str]]:
    """Replace each `marker` with a typed `{pN:Type}` parameter; return the SQL and the values
    as ClickHouse reads them (text)."""
    pieces = sql.split(marker)
    if len(pieces) - 1 != len(params):
        raise ValueError(f"{len(params)} parameters for {len(pieces) - 1} markers")
    named: dict[str, str] = {}
    out = [pieces[0]]
    for i, (value, rest) in enumerate(zip(params, pieces[1:], strict=True)):
        kind, text = typed_parameter(value)
        named[f"p{i}"] = text
        out.append(f"{{p{i}:{kind}}}{rest}")
    return "".join(out), named


def typed_parameter(value: Any) -> tuple[str, str]:
    """(ClickHouse type, text form) of one bound value; naive datetimes are UTC."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return "Nullable(String)", "\\N"
    if isinstance(value, bool):
        return "Bool", "true" if value else "false"
    if isinstance(value, int):
        return "Int64", str(value)
    if isinstance(value, float):
        return "Float64", repr(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return "DateTime64(6, 'UTC')", value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, list | tuple):
        items = ", ".join("'" + _escape(str(v)).replace("'", "\\'") + "'" for v in value)
        return "Array(String)", f"[{items}]"
    return "String", _escape(str(value))


def _escape(text: str) -> str:
    """Text in ClickHouse's escaped form (parameters are parsed like TSV fields)."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def with_settings(sql: str, clause: str) -> str:
    """The statement with a SETTINGS clause: at the end of a query, or before the FORMAT of an
    INSERT that carries its rows inline."""
    if not clause:
        return sql
    head, newline, rows = sql.partition("\n")
    if head.lstrip().upper().startswith("INSERT") and " FORMAT " in head:
        table, _, fmt = head.rpartition(" FORMAT ")
        return f"{table} SETTINGS {clause} FORMAT {fmt}{newline}{rows}"
    return f"{sql}\nSETTINGS {clause}"


def quote_identifier(name: str) -> str:
    """A ClickHouse identifier in backquotes."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _setting(value: str) -> str:
    return value if value.isdigit() else "'" + value.replace("'", "''") + "'"
