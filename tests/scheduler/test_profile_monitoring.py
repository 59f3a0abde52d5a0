"""Profiled columns through the whole pipeline: drift, new items, references, composites."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tests.conftest import ProjectFactory
from vigil.cli import main

SHIFT = datetime(2024, 5, 8, 12)

ORDERS_YAML = """\
datasets:
  - name: orders
    source: app
    table: orders
    time_column: time
    granularity: 1h
    slices: [country]
    dataset_stats: [missing_datapoint]
    profile:
      - column: price
      - column: country
        kind: discrete
"""

ANALYZERS_YAML = """\
analyzers:
  - id: price_drift
    type: drift
    metric: histogram
    target_matrix: {type: column, include: ["group:continuous"], segments: [{}]}
    baseline: {type: trailing_window, size: 48}
  - id: new_countries
    type: frequent_string_comparison
    operator: baseline_includes_all_target
    metrics: [country.frequent_items]
    segments: total
    baseline: {type: trailing_window, size: 48}
  - id: price_level
    type: stddev
    metric: mean
    target_matrix: {type: column, include: [price], segments: [{}]}
    baseline: {type: trailing_window, size: 48}
  - id: price_vs_launch
    type: diff
    mode: pct
    threshold: 50
    metrics: [price.mean]
    segments: total
    baseline: {type: reference, name: launch}
  - id: price_both
    type: conjunction
    analyzers: [price_level, price_vs_launch]
    metrics: [price.mean]
    segments: total
  - id: gaps
    type: fixed
    upper: 0.5
    metrics: [orders.missing_datapoint]
monitors:
  - id: main
    analyzers: ["*"]
    channels: [console]
"""


def orders_table(path: Path) -> None:
    """Nine days of hourly orders; from SHIFT on prices jump by 40 and Brazil appears."""
    rng = np.random.default_rng(7)
    rows = []
    for hour in range(9 * 24):
        start = datetime(2024, 5, 1) + timedelta(hours=hour)
        shifted = start >= SHIFT
        countries = ["US", "DE", "FR", "BR"] if shifted else ["US", "DE", "FR"]
        for k in range(20):
            price = rng.uniform(10, 20) + (40 if shifted else 0)
            rows.append((start + timedelta(minutes=3 * k), countries[k % len(countries)], price))
    frame = pd.DataFrame(rows, columns=["time", "country", "price"])
    with duckdb.connect(str(path)) as conn:
        conn.register("frame", frame)
        conn.execute("CREATE TABLE orders AS SELECT * FROM frame")


def vigil(root: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["--project", str(root), *args])
    assert result.exit_code == 0, result.output + str(result.exception)
    return result.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    orders_table(tmp_path / "app.duckdb")
    return ProjectFactory(tmp_path).write(
        {"metrics/events.yaml": ORDERS_YAML, "monitors/main.yaml": ANALYZERS_YAML}
    )


def test_profiles_drift_new_items_reference_and_conjunction(project: Path) -> None:
    vigil(
        project, "replay", "--from", "2024-05-07T00:00", "--to", "2024-05-08T00:00", "--no-notify"
    )
    out = vigil(
        project, "reference", "create", "launch", "--from", "2024-05-07", "--to", "2024-05-08"
    )
    # 24 hours × 4 segments (total, US, DE, FR) × 16 metrics
    assert out.strip() == "Reference 'launch': 1536 values of 16 metrics."
    assert "launch" in vigil(project, "reference", "list")
    vigil(
        project, "replay", "--from", "2024-05-08T10:00", "--to", "2024-05-08T13:00", "--no-notify"
    )
    alerts = json.loads(vigil(project, "alerts", "--json", "--status", "all"))
    fired = {(a["analyzer"], a["metric"], a["time"][11:16]) for a in alerts}
    at_shift = {(a, m) for a, m, t in fired if t == "12:00"}
    assert ("price_drift", "price.histogram") in at_shift
    assert ("new_countries", "country.frequent_items") in at_shift
    assert ("price_level", "price.mean") in at_shift
    assert ("price_vs_launch", "price.mean") in at_shift
    assert ("price_both", "price.mean") in at_shift
    # Nothing fires before the shift, and the hourly data has no gaps.
    assert all(t >= "12:00" for _, _, t in fired)
    assert not any(a == "gaps" for a, _, _ in fired)
    new_items = next(a for a in alerts if a["analyzer"] == "new_countries")
    assert new_items["reason"] == "new: 'BR'"
    assert vigil(project, "reference", "delete", "launch").strip() == "Reference 'launch' deleted."


def test_payload_analyzer_without_a_distribution_metric_is_a_config_error(
    project: Path,
) -> None:
    bad = ANALYZERS_YAML.replace("metrics: [country.frequent_items]", "metrics: [price.mean]")
    (project / "monitors/main.yaml").write_text(bad)
    result = CliRunner().invoke(main, ["--project", str(project), "validate", "--offline"])
    assert result.exit_code != 0
    assert "analyzer 'new_countries' (frequent_string_comparison) checks no metric" in (
        result.output
    )
