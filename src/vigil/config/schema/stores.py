"""Where Vigil keeps its values: the metric store's configuration."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator

from vigil.config.schema.types import Base


class Retention(Base):
    """How long the store keeps rows; null keeps them forever."""

    values: int | None = Field(
        None, ge=1, description="Days of metric values and distributions (by bucket)."
    )
    results: int | None = Field(
        None,
        ge=1,
        description="Days of analysis results, alerts, incidents, sent notifications and runs.",
    )


def _retention(value: object) -> object:
    """`retention_days: 90` keeps values and results 90 days."""
    return {"values": value, "results": value} if isinstance(value, int) else value


class _StoreBase(Base):
    retention_days: Annotated[Retention, BeforeValidator(_retention)] = Field(
        default_factory=lambda: Retention(),
        description="Days to keep values and results: one number for both, or"
        " {values: 400, results: 90}. Pruned once a day by `vigil run`, or by"
        " `vigil store prune`.",
    )


class DuckDBStoreConfig(_StoreBase):
    """The embedded DuckDB metric store: one file holds values, results and notifications."""

    type: Literal["duckdb"] = Field("duckdb", description="Store backend.")
    path: str = Field(
        "vigil.duckdb", description="Database file, relative to the project directory."
    )


class PostgresStoreConfig(_StoreBase):
    """A PostgreSQL metric store, shared by several Vigil processes (one leads at a time)."""

    type: Literal["postgres"] = Field(description="Store backend.")
    url: SecretStr = Field(
        description="Connection URL, credentials from ${ENV_VAR}:"
        " postgresql://vigil:${VIGIL_DB_PASSWORD}@db:5432/vigil."
    )
    schema_name: str = Field(
        "vigil",
        alias="schema",
        description="Schema holding Vigil's tables (created if missing).",
    )


class ClickHouseStoreConfig(_StoreBase):
    """A ClickHouse metric store, for very many series: a server, or an embedded directory."""

    type: Literal["clickhouse"] = Field(description="Store backend.")
    url: SecretStr | None = Field(
        None,
        description="HTTP interface, credentials from ${ENV_VAR}:"
        " http://vigil:${CH_PASSWORD}@clickhouse:8123.",
    )
    path: str | None = Field(
        None,
        description="Embedded engine (chDB) data directory, relative to the project; a"
        " ClickHouse source embedded in the same process must use the same directory.",
    )
    database: str = Field("vigil", description="Database holding Vigil's tables (created).")

    @model_validator(mode="after")
    def _url_or_path(self) -> ClickHouseStoreConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("give either url (a server) or path (embedded chDB), not both")
        return self


StoreConfig = Annotated[
    DuckDBStoreConfig | PostgresStoreConfig | ClickHouseStoreConfig, Field(discriminator="type")
]
