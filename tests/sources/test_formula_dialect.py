"""`defaults.formula_dialect`: formulas written once (DuckDB's SQL) give the same values on
PostgreSQL and SQLite, where `/` divides integers — sqlglot's translation adds the cast."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.engines import engine_loader, require_services
from vigil.config import load_project
from vigil.sources import build_source

START = datetime(2024, 6, 3, tzinfo=UTC)
CTR = "count(*) FILTER (WHERE action = 'like') / nullif(count(*) FILTER (WHERE action = 'view'), 0)"


def _events() -> pd.DataFrame:
    rows = [
        (START.replace(tzinfo=None) + timedelta(minutes=i), "like" if i % 3 == 0 else "view")
        for i in range(120)
    ]
    frame = pd.DataFrame(rows, columns=["time", "action"])
    frame["time"] = frame["time"].astype("datetime64[us]")
    return frame


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("dialect")
    with engine_loader(root) as loader:
        out = {}
        for engine in ("duckdb", "postgres", "sqlite"):
            require_services(engine)
            out[engine] = loader.load(engine, {"events": _events()}).source_yaml
        yield out


def _ctr(root: Path, source: str, dialect: str | None) -> float:
    root.mkdir(parents=True, exist_ok=True)
    defaults = f"defaults: {{formula_dialect: {dialect}}}\n" if dialect else ""
    (root / "vigil.yaml").write_text(
        f"name: d\ntimezone: UTC\nsources:\n  src: {source}\n{defaults}"
    )
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics/events.yaml").write_text(
        "datasets:\n  - name: events\n    source: src\n    table: events\n"
        f"    time_column: time\n    granularity: 1h\n    metrics:\n"
        f'      - {{name: ctr, formula: "{CTR}"}}\n'
    )
    project = load_project(root, env={})
    source = build_source("src", project.settings.sources["src"], project.root)
    try:
        frame = source.fetch(project.datasets[0], START, START + timedelta(hours=1))
    finally:
        source.close()
    return float(frame["value"].iloc[0])


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
def test_duckdb_formulas_mean_the_same_on_engines_that_divide_integers(
    loaded: dict[str, str], tmp_path: Path, engine: str
) -> None:
    expected = _ctr(tmp_path / "duckdb", loaded["duckdb"], None)
    assert expected == pytest.approx(20 / 40)
    assert _ctr(tmp_path / f"{engine}-raw", loaded[engine], None) == 0  # integer division
    assert _ctr(tmp_path / engine, loaded[engine], "duckdb") == pytest.approx(expected)
