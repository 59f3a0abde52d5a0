"""Sources: where raw data lives. Pick a backend by the config's `type`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.config.schema import SourceConfig
from vigil.sources.base import Source


def _duckdb(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.duckdb import DuckDBSource

    return DuckDBSource(name, config, root)


def _files(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.duckdb import FilesSource

    return FilesSource(name, config, root)


def _postgres(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.postgres import PostgresSource

    return PostgresSource(name, config, root)


def _mysql(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.mysql import MySQLSource

    return MySQLSource(name, config, root)


def _sqlite(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.sqlite import SQLiteSource

    return SQLiteSource(name, config, root)


def _clickhouse(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.clickhouse import ClickHouseSource

    return ClickHouseSource(name, config, root)


def _prometheus(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.prometheus import PrometheusSource

    return PrometheusSource(name, config, root)


def _python(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.python import PythonSource

    return PythonSource(name, config, root)


def _http(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.http import HTTPSource

    return HTTPSource(name, config, root)


def _ga4(name: str, config: Any, root: Path) -> Source:
    from vigil.sources.ga4 import GA4Source

    return GA4Source(name, config, root)


# Drivers load only when a project uses them.
BACKENDS: dict[str, Callable[[str, Any, Path], Source]] = {
    "duckdb": _duckdb,
    "files": _files,
    "postgres": _postgres,
    "mysql": _mysql,
    "mariadb": _mysql,
    "sqlite": _sqlite,
    "clickhouse": _clickhouse,
    "prometheus": _prometheus,
    "python": _python,
    "http": _http,
    "ga4": _ga4,
}


def build_source(name: str, config: SourceConfig, root: Path) -> Source:
    """Create the source backend registered for the config's `type`."""
    return BACKENDS[config.type](name, config, root)


__all__ = ["Source", "build_source"]
