"""Sources: where raw data lives. Pick a backend by the config's `type`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.config.schema import SourceConfig
from vigil.sources.base import Source
from vigil.sources.duckdb import DuckDBSource
from vigil.sources.python import PythonSource

BACKENDS: dict[str, Callable[[str, Any, Path], Source]] = {
    "duckdb": DuckDBSource,
    "python": PythonSource,
}


def build_source(name: str, config: SourceConfig, root: Path) -> Source:
    """Create the source backend registered for the config's `type`."""
    return BACKENDS[config.type](name, config, root)


__all__ = ["Source", "build_source"]
