"""The generated query: one pass per dataset and window, every slice and the total."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import METRICS_YAML, START, ProjectFactory, write_events
from vigil.config import load_project
from vigil.config.project import Project
from vigil.sources.dialects import DuckDBDialect
from vigil.sources.duckdb import DuckDBSource
from vigil.sources.sql import build_query

END = datetime(2024, 5, 1, 1, tzinfo=UTC)


def source_of(project: Project) -> DuckDBSource:
    config = project.settings.sources["app"]
    assert config.type == "duckdb"
    return DuckDBSource("app", config, project.root)


def fetch(project: Project, start: datetime = START, end: datetime = END) -> pd.DataFrame:
    source = source_of(project)
    try:
        return source.fetch(project.datasets[0], start, end)
    finally:
        source.close()


def test_one_grouping_sets_query_covers_every_metric_slice_and_total(
    project_dir: ProjectFactory,
) -> None:
    project = load_project(project_dir.root, env={})
    query = build_query(project.datasets[0], DuckDBDialect(), START, END)
    assert query.sql.count("SELECT") == 1
    assert "GROUP BY GROUPING SETS" in query.sql
    assert '(count(*)) AS "__m0"' in query.sql
    assert '(count(DISTINCT user_id)) AS "__m1"' in query.sql
    assert query.params == [START.replace(tzinfo=None), END.replace(tzinfo=None)]
    assert query.metrics == ["actions", "users"]


def test_fetch_returns_values_per_bucket_segment_and_metric(project_dir: ProjectFactory) -> None:
    frame = fetch(load_project(project_dir.root, env={}))
    first = frame[frame["bucket"] == pd.Timestamp("2024-05-01 00:00")]
    values = {(row.metric, row.segment): row.value for row in first.itertuples(index=False)}
    assert values == {
        ("actions", "{}"): 30.0,
        ("actions", '{"os": "Android"}'): 20.0,
        ("actions", '{"os": "iOS"}'): 10.0,
        ("users", "{}"): 7.0,
        ("users", '{"os": "Android"}'): 7.0,
        ("users", '{"os": "iOS"}'): 7.0,
    }
    assert sorted(frame["bucket"].unique()) == list(
        pd.date_range("2024-05-01 00:00", periods=4, freq="15min").as_unit("us")
    )


def test_slice_values_filter_rows_with_bound_parameters(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace("slices: [os]", "slices: [{os: [iOS]}]")
    project = load_project(project_dir.write({"metrics/events.yaml": metrics}), env={})
    query = build_query(project.datasets[0], DuckDBDialect(), START, END)
    assert "HAVING" in query.sql
    assert "iOS" not in query.sql
    assert query.params[2:] == ["iOS"]
    segments = set(fetch(project)["segment"])
    assert segments == {"{}", '{"os": "iOS"}'}


def test_multi_dimension_slices_and_filters(project_dir: ProjectFactory) -> None:
    frame = pd.DataFrame(
        {
            "time": [datetime(2024, 5, 1, 0, m) for m in (1, 2, 3, 4)],
            "os": ["iOS", "iOS", "Android", "Android"],
            "country": ["RU", "FI", "RU", "RU"],
            "user_id": [1, 2, 3, 4],
        }
    )
    write_events(project_dir.root / "app.duckdb", frame)
    metrics = """\
datasets:
  - name: events
    source: app
    table: events
    time_column: time
    filters: ["country <> 'FI'"]
    slices: [[os, country]]
    metrics:
      - {name: actions, formula: count(*)}
"""
    project = load_project(project_dir.write({"metrics/events.yaml": metrics}), env={})
    actions = fetch(project).query("metric == 'actions'")
    got = {
        json.loads(s).get("os", "*") + "/" + json.loads(s).get("country", "*"): v
        for s, v in zip(actions["segment"], actions["value"], strict=True)
    }
    assert got == {"*/*": 3.0, "iOS/RU": 1.0, "Android/RU": 2.0}


def test_naive_local_timestamps_are_bucketed_in_utc(project_dir: ProjectFactory) -> None:
    frame = pd.DataFrame({"time": [datetime(2024, 5, 1, 3, 5)], "os": ["iOS"], "user_id": [1]})
    write_events(project_dir.root / "app.duckdb", frame)
    vigil = (
        (project_dir.root / "vigil.yaml")
        .read_text()
        .replace("path: app.duckdb}", "path: app.duckdb, timezone: Europe/Moscow}")
    )
    project = load_project(project_dir.write({"vigil.yaml": vigil}), env={})
    result = fetch(project, START, END)
    # 03:05 in Moscow (UTC+3) is 00:05 UTC.
    assert set(result["bucket"]) == {pd.Timestamp("2024-05-01 00:00")}


def test_daily_buckets_start_at_local_midnight(project_dir: ProjectFactory) -> None:
    frame = pd.DataFrame(
        {
            "time": [datetime(2024, 5, 1, 21, 30), datetime(2024, 5, 1, 20, 30)],
            "os": ["iOS", "iOS"],
            "user_id": [1, 2],
        }
    )
    write_events(project_dir.root / "app.duckdb", frame)
    vigil = (
        (project_dir.root / "vigil.yaml")
        .read_text()
        .replace("timezone: UTC", "timezone: Europe/Moscow")
    )
    metrics = METRICS_YAML.replace("    slices: [os]\n", "    granularity: 1d\n    slices: [os]\n")
    project = load_project(
        project_dir.write({"vigil.yaml": vigil, "metrics/events.yaml": metrics}), env={}
    )
    result = fetch(project, datetime(2024, 4, 30, tzinfo=UTC), datetime(2024, 5, 3, tzinfo=UTC))
    totals = result.query("metric == 'actions' and segment == '{}'")
    # 20:30 UTC is 23:30 in Moscow (May 1); 21:30 UTC is 00:30 on May 2.
    assert dict(zip(totals["bucket"], totals["value"], strict=True)) == {
        pd.Timestamp("2024-04-30 21:00"): 1.0,
        pd.Timestamp("2024-05-01 21:00"): 1.0,
    }


def test_check_reports_unknown_column_at_the_formula_line(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace("count(DISTINCT user_id)", "count(DISTINCT usr_id)")
    project = load_project(project_dir.write({"metrics/events.yaml": metrics}), env={})
    source = source_of(project)
    problems = source.check(project.datasets[0])
    source.close()
    assert len(problems) == 1
    assert problems[0].startswith("metrics/events.yaml:15: datasets[0].metrics[1].formula:")
    assert "usr_id" in problems[0]


def test_failing_query_names_source_dataset_and_sql(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace("count(*)", "sum(nonexistent)")
    project = load_project(project_dir.write({"metrics/events.yaml": metrics}), env={})
    with pytest.raises(Exception, match="source 'app' \\(duckdb\\), dataset 'events'") as info:
        fetch(project)
    assert "metric 'actions':" in str(info.value)
    assert "users" not in str(info.value).split("SQL:")[0]
    assert "SQL: SELECT" in str(info.value)


def test_missing_database_file_is_a_clear_error(
    tmp_path: Path, project_dir: ProjectFactory
) -> None:
    (project_dir.root / "app.duckdb").unlink()
    project = load_project(project_dir.root, env={})
    with pytest.raises(Exception, match=r"database file .*app\.duckdb does not exist"):
        fetch(project)
