"""Python-function sources: the metric_name / metric_value / metric_timestamp contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import ProjectFactory
from vigil.config import load_project
from vigil.errors import SourceError
from vigil.sources import build_source

FUNCTION = """
import pandas as pd

def fetch(start, end):
    return pd.DataFrame({
        "metric_name": ["signups", "signups", "signups", "other"],
        "metric_value": [5, 7, 3, 1],
        "metric_timestamp": ["2024-05-01T00:01:00Z", "2024-05-01T00:05:00Z",
                             "2024-05-01T00:20:00Z", "2024-05-01T00:01:00Z"],
        "country": ["RU", "RU", None, "RU"],
    })

def broken(start, end):
    return pd.DataFrame({"name": ["x"]})
"""


def python_project(project_dir: ProjectFactory, function: str) -> ProjectFactory:
    (project_dir.root / "custom.py").write_text(FUNCTION)
    vigil = (
        (project_dir.root / "vigil.yaml")
        .read_text()
        .replace(
            "  app: {type: duckdb, path: app.duckdb}\n",
            "  app: {type: duckdb, path: app.duckdb}\n"
            f"  py: {{type: python, function: '{function}'}}\n",
        )
    )
    metrics = "datasets:\n  - name: custom\n    source: py\n    metrics:\n      - name: signups\n"
    project_dir.write(
        {
            "vigil.yaml": vigil,
            "metrics/events.yaml": metrics,
            "monitors/main.yaml": "monitors: []\n",
        }
    )
    return project_dir


def test_function_values_are_bucketed_and_dimensions_become_segments(
    project_dir: ProjectFactory,
) -> None:
    project = load_project(python_project(project_dir, "custom.py:fetch").root, env={})
    source = build_source("py", project.settings.sources["py"], project.root)
    frame = source.fetch(
        project.datasets[0], datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 1, 1, tzinfo=UTC)
    )
    got = {(r.segment, str(r.bucket)): r.value for r in frame.itertuples(index=False)}
    # Two rows in one bucket: the later one wins; unlisted metrics are dropped.
    assert got == {
        ('{"country": "RU"}', "2024-05-01 00:00:00"): 7.0,
        ("{}", "2024-05-01 00:15:00"): 3.0,
    }


def test_function_returning_wrong_columns_is_explained(project_dir: ProjectFactory) -> None:
    project = load_project(python_project(project_dir, "custom.py:broken").root, env={})
    source = build_source("py", project.settings.sources["py"], project.root)
    with pytest.raises(SourceError, match="returned no column metric_name, metric_value"):
        source.fetch(
            project.datasets[0], datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)
        )


def test_unknown_function_is_reported_by_check(project_dir: ProjectFactory) -> None:
    project = load_project(python_project(project_dir, "custom.py:nothing").root, env={})
    source = build_source("py", project.settings.sources["py"], project.root)
    problems = source.check(project.datasets[0])
    assert len(problems) == 1
    assert "no callable named 'nothing'" in problems[0]
