"""Where the data lives: one configuration model per source engine."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from vigil.config.schema.types import Base, Duration, Name, ZoneName


class DuckDBSourceConfig(Base):
    """Read raw data from a DuckDB database file (or an in-memory one for tests)."""

    type: Literal["duckdb"] = Field(description="Source backend.")
    path: str = Field(description="Database file, relative to the project directory.")
    timezone: ZoneName = Field(
        "UTC", description="Time zone of naive (zone-less) timestamp columns in this source."
    )
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )


class PythonSourceConfig(Base):
    """Call a Python function that returns a DataFrame of metric values."""

    type: Literal["python"] = Field(description="Source backend.")
    function: str | None = Field(
        None,
        description=(
            "`package.module:function` or `path/to/file.py:function` (relative to the project),"
            " unless each dataset gives its `ingest_fn`. Called as f(start, end, **ingest_args)"
            " with UTC datetimes, or f(**ingest_args) when it takes no window; returns a"
            " DataFrame with metric_name, metric_value, metric_timestamp and optional dimension"
            " columns."
        ),
    )
    timeout: Duration = Field(
        timedelta(seconds=60),
        description="A call still running after this is stopped (with its process) and fails.",
    )
    isolate: bool = Field(
        True,
        description="Run the functions in a child process (kept between calls), so that a"
        " hang or a crash cannot take Vigil down; false: in Vigil's own process, no limit.",
    )

    @field_validator("function")
    @classmethod
    def _has_colon(cls, value: str | None) -> str | None:
        if value is not None and ":" not in value:
            raise ValueError(f"'{value}' names no function; expected module:function")
        return value


class _ServerSource(Base):
    """Fields shared by the SQL servers Vigil connects to."""

    url: SecretStr = Field(
        description="Connection URL with credentials from ${ENV_VAR}, e.g."
        " postgresql://vigil:${PG_PASSWORD}@db:5432/analytics."
    )
    timezone: ZoneName = Field(
        "UTC", description="Time zone of naive (zone-less) timestamp columns in this source."
    )
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )
    pool_size: int = Field(4, ge=1, description="Most connections kept open to the server.")
    connect_timeout: Duration = Field(
        timedelta(seconds=10),
        description="Give up connecting after this long (a closed or silent port, a server"
        " that is down) and say why.",
    )


class PostgresSourceConfig(_ServerSource):
    """Read raw data from PostgreSQL (psycopg 3, pooled, read-only sessions)."""

    type: Literal["postgres"] = Field(description="Source backend.")


class MySQLSourceConfig(_ServerSource):
    """Read raw data from MySQL 8 or MariaDB (url mysql://user:password@host:3306/db)."""

    type: Literal["mysql", "mariadb"] = Field(description="Source backend.")


class ClickHouseSourceConfig(Base):
    """Read raw data from ClickHouse: a server over HTTP, or an embedded chDB directory."""

    type: Literal["clickhouse"] = Field(description="Source backend.")
    url: SecretStr | None = Field(
        None,
        description="HTTP interface, e.g. http://default:${CH_PASSWORD}@clickhouse:8123.",
    )
    path: str | None = Field(
        None, description="Embedded engine (chDB) data directory, relative to the project."
    )
    database: str = Field("default", description="Database of unqualified table names.")
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )

    @model_validator(mode="after")
    def _url_or_path(self) -> ClickHouseSourceConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("give either url (a server) or path (embedded chDB), not both")
        return self


class SQLiteSourceConfig(Base):
    """Read raw data from a SQLite file (times as UTC ISO-8601 text)."""

    type: Literal["sqlite"] = Field(description="Source backend.")
    path: str = Field(description="Database file, relative to the project directory.")
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )


class FilesSourceConfig(Base):
    """Query CSV, Parquet or JSON files (or globs of them) through DuckDB, as tables."""

    type: Literal["files"] = Field(description="Source backend.")
    tables: dict[Name, str] = Field(
        description="Table name → file or glob relative to the project, e.g."
        " {events: data/events/*.parquet}; the format follows the extension"
        " (.csv, .tsv, .parquet, .json, .jsonl, optionally .gz)."
    )
    timezone: ZoneName = Field(
        "UTC", description="Time zone of naive (zone-less) timestamp columns in these files."
    )
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )

    @field_validator("tables")
    @classmethod
    def _known_formats(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if file_format(pattern) is None:
                raise ValueError(
                    f"table '{name}': cannot tell the format of '{pattern}';"
                    " expected a name ending in .csv, .tsv, .parquet, .json or .jsonl"
                )
        return value


def file_format(pattern: str) -> str | None:
    """csv, parquet or json, from a file name or glob."""
    name = pattern.lower().removesuffix(".gz").removesuffix(".zst")
    for suffix, kind in ((".csv", "csv"), (".tsv", "csv"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return "json"
    return None


class PrometheusSourceConfig(Base):
    """Query the Prometheus HTTP API (query_range); each returned label set is a segment."""

    type: Literal["prometheus"] = Field(description="Source backend.")
    url: str = Field(description="Base URL, e.g. http://prometheus:9090.")
    token: SecretStr | None = Field(None, description="Bearer token, from ${ENV_VAR}.")
    query_timeout: Duration = Field(
        timedelta(minutes=1), description="Abort a query that runs longer than this."
    )


class HTTPSourceConfig(Base):
    """A JSON HTTP API: a URL per window, records picked out with JMESPath."""

    type: Literal["http"] = Field(description="Source backend.")
    url: str = Field(
        description="URL template; {start} and {end} are the window (UTC datetimes, with"
        " format specs: {start:%Y-%m-%d}), {start_ts} / {end_ts} Unix seconds.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers; secrets as ${ENV_VAR}."
    )
    timeout: Duration = Field(timedelta(seconds=30), description="HTTP timeout per request.")


class GA4SourceConfig(Base):
    """Google Analytics 4 (the Data API's runReport) for one property."""

    type: Literal["ga4"] = Field(description="Source backend.")
    property: str = Field(description="The GA4 property id (digits).")
    credentials: SecretStr | None = Field(
        None,
        description="A service account's JSON key, from ${ENV_VAR} (needs vigil[ga4]);"
        " or give access_token.",
    )
    access_token: SecretStr | None = Field(
        None, description="An OAuth access token instead, from ${ENV_VAR}."
    )
    api_url: str = Field(
        "https://analyticsdata.googleapis.com", description="The Data API's base URL."
    )
    timezone: ZoneName | None = Field(
        None, description="The property's reporting zone (default: the project's)."
    )
    timeout: Duration = Field(timedelta(seconds=60), description="HTTP timeout per request.")

    @model_validator(mode="after")
    def _one_credential(self) -> GA4SourceConfig:
        if (self.credentials is None) == (self.access_token is None):
            raise ValueError("give either credentials (a service account's key) or access_token")
        return self


SourceConfig = Annotated[
    DuckDBSourceConfig
    | PostgresSourceConfig
    | MySQLSourceConfig
    | ClickHouseSourceConfig
    | SQLiteSourceConfig
    | FilesSourceConfig
    | PrometheusSourceConfig
    | PythonSourceConfig
    | HTTPSourceConfig
    | GA4SourceConfig,
    Field(discriminator="type"),
]
