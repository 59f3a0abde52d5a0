"""`vigil grafana export`: the provisioning files' shape, and every query of every panel and
annotation run on the real PostgreSQL store (and ClickHouse's), Grafana's macros filled in as
Grafana fills them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import ProjectFactory
from tests.engines import PG_URL
from tests.store.backends import make_store
from vigil.cli import main
from vigil.config import load_project
from vigil.grafana import CLICKHOUSE, POSTGRES, dashboard
from vigil.model import (
    Alert,
    AlertStatus,
    AnalysisResult,
    Bucket,
    Segment,
    SeriesKey,
    Severity,
    Status,
)
from vigil.timeutil import Granularity

G = Granularity.parse("15m")
T0 = datetime(2024, 5, 1, tzinfo=UTC)
SEGMENTS = ["{}", '{"os": "iOS"}', '{"os": "Android"}']


def _fill(store: object) -> None:
    frame = pd.DataFrame(
        [
            ("actions", s, (T0 + i * G.step).replace(tzinfo=None), float(10 + i))
            for s in SEGMENTS
            for i in range(8)
        ],
        columns=["metric", "segment", "bucket", "value"],
    )
    frame["bucket"] = frame["bucket"].astype("datetime64[us]")
    store.upsert_values(frame, G)  # type: ignore[attr-defined]
    results = [
        AnalysisResult(
            analyzer="day_week",
            analyzer_type="same_time_comparison",
            series=SeriesKey("actions", Segment.from_key(s)),
            bucket=Bucket(T0 + i * G.step, G),
            status=Status.ANOMALY if i == 7 else Status.OK,
            value=float(10 + i),
            expected_lower=20.0,
            expected_upper=40.0,
            deviation=-0.5 if i == 7 else 0.0,
            baselines={},
            reason="17 vs 30 a day ago",
        )
        for s in SEGMENTS
        for i in range(8)
    ]
    store.save_results(results)  # type: ignore[attr-defined]
    alerts = [
        Alert("main", Severity.HIGH, r, AlertStatus.NOTIFY, T0) for r in results if r.is_anomaly
    ]
    store.save_alerts(alerts)  # type: ignore[attr-defined]


def _grafana(sql: str, dialect: str) -> str:
    """Grafana's $__timeFilter(column), as its PostgreSQL and ClickHouse plugins expand it."""
    start, end = "2024-05-01 00:00:00", "2024-05-02 00:00:00"

    def expand(found: re.Match[str]) -> str:
        column = found.group(1)
        if dialect == "clickhouse":
            return f"{column} >= toDateTime('{start}') AND {column} <= toDateTime('{end}')"
        return f"{column} BETWEEN '{start}' AND '{end}'"

    return re.sub(r"\$__timeFilter\(([\w.]+)\)", expand, sql)


@pytest.mark.parametrize("backend", ["postgres", "clickhouse"])
def test_every_panel_and_annotation_query_runs_on_the_store(
    backend: str, project_dir: ProjectFactory, tmp_path: Path
) -> None:
    project = load_project(project_dir.root, env={})
    dialect = POSTGRES if backend == "postgres" else CLICKHOUSE
    with make_store(backend, tmp_path) as store:
        store.migrate()
        _fill(store)
        (dataset,) = project.datasets
        board = dashboard(dialect, dataset, project)
        assert [p["title"] for p in board["panels"]] == [m.title for m in dataset.metrics]
        actions = board["panels"][0]
        values, band = (t["rawSql"] for t in actions["targets"])
        rows = store._rows(_grafana(values, backend))
        assert {r[1] for r in rows} == {"total", "os=iOS", "os=Android"}
        assert len(rows) == 24
        bands = store._rows(_grafana(band, backend))
        assert [(float(lo), float(hi)) for _, lo, hi in bands] == [(20.0, 40.0)] * 8
        annotation = board["annotations"]["list"][0]["target"]["rawSql"]
        notes = store._rows(_grafana(annotation, backend))
        assert len(notes) == 3
        assert all(text == "main: 17 vs 30 a day ago" for _, text, _ in notes)
        # The users panel (no analyzer) has values only, and runs too.
        (users_values,) = (t["rawSql"] for t in board["panels"][1]["targets"])
        assert store._rows(_grafana(users_values, backend)) == []


def test_export_writes_a_datasource_without_the_password_and_a_dashboard_per_dataset(
    project_dir: ProjectFactory, tmp_path: Path
) -> None:
    url = PG_URL.replace("postgres@", "vigil:${PG_PASSWORD}@")
    vigil = (
        (project_dir.root / "vigil.yaml")
        .read_text()
        .replace(
            "store: {type: duckdb, path: vigil.duckdb}", f"store: {{type: postgres, url: '{url}'}}"
        )
    )
    project_dir.write({"vigil.yaml": vigil})
    out = tmp_path / "grafana"
    done = CliRunner().invoke(
        main,
        ["--project", str(project_dir.root), "grafana", "export", "--dir", str(out)],
        env={"PG_PASSWORD": "s3cret-pg"},
    )
    assert done.exit_code == 0, done.output
    source = (out / "provisioning/datasources/vigil.yaml").read_text()
    assert "s3cret-pg" not in source
    assert "$__env{VIGIL_DB_PASSWORD}" in source
    entry = json.loads(source.split("  - ", 1)[1])
    assert entry["type"] == "grafana-postgresql-datasource"
    assert entry["url"] == "127.0.0.1:5432"
    board = json.loads((out / "dashboards/vigil/events.json").read_text())
    assert board["uid"] == "vigil-events"
    assert {p["targets"][0]["datasource"]["uid"] for p in board["panels"]} == {"vigil-store"}
    assert (out / "provisioning/dashboards/vigil.yaml").exists()


def test_a_duckdb_store_is_refused_with_what_to_do(project_dir: ProjectFactory) -> None:
    done = CliRunner().invoke(main, ["--project", str(project_dir.root), "grafana", "export"])
    assert done.exit_code != 0
    assert "Grafana reads a PostgreSQL or ClickHouse server" in done.output
