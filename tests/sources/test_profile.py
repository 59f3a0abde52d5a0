"""Profile metrics are computed inside the source engine, per bucket and segment."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.conftest import VIGIL_YAML, ProjectFactory
from vigil.config import load_project
from vigil.errors import ConfigError
from vigil.scheduler.ingest import dataset_stats_for_empty
from vigil.sources import build_source

PROFILE_YAML = """\
datasets:
  - name: orders
    source: app
    table: orders
    time_column: time
    granularity: 1h
    slices: [country]
    dataset_stats: [missing_datapoint, seconds_since_last_upload]
    profile:
      - column: price
        stats: [count, null_count, null_ratio, mean, median, min, max, stddev, unique_est,
                unique_est_ratio, histogram]
      - column: code
        kind: discrete
        stats: [count_integral, count_fractional, count_bool, count_string, inferred_type,
                frequent_items]
"""


@pytest.fixture
def orders(tmp_path: Path) -> ProjectFactory:
    with duckdb.connect(str(tmp_path / "app.duckdb")) as conn:
        conn.execute(
            "CREATE TABLE orders (time TIMESTAMP, country VARCHAR, price DOUBLE, code VARCHAR)"
        )
        rows = [
            ("2024-05-01 10:05", "US", 10.0, "12"),
            ("2024-05-01 10:10", "US", 20.0, "7"),
            ("2024-05-01 10:20", "DE", 30.0, "1.5"),
            ("2024-05-01 10:40", "DE", None, "true"),
            ("2024-05-01 10:50", "US", 40.0, "abc"),
            ("2024-05-01 10:55", "US", 20.0, "12"),
        ]
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)
    factory = ProjectFactory(tmp_path)
    factory.write({"metrics/events.yaml": PROFILE_YAML, "monitors/main.yaml": "monitors: []\n"})
    return factory


def test_profile_stats_per_bucket_and_segment(orders: ProjectFactory) -> None:
    project = load_project(orders.root, env={})
    dataset = project.datasets[0]
    assert [m.name for m in dataset.metrics][:3] == [
        "price.count",
        "price.null_count",
        "price.null_ratio",
    ]
    source = build_source("app", project.settings.sources["app"], project.root)
    start = datetime.fromisoformat("2024-05-01T10:00+00:00")
    frame = source.fetch(dataset, start, start + timedelta(hours=1))
    total = frame[frame["segment"] == "{}"].set_index("metric")
    value = total["value"]
    # price: 10, 20, 30, null, 40, 20
    assert value["price.count"] == 5
    assert value["price.null_count"] == 1
    assert value["price.null_ratio"] == pytest.approx(1 / 6)
    assert value["price.mean"] == 24
    assert value["price.median"] == 20
    assert (value["price.min"], value["price.max"]) == (10, 40)
    assert value["price.stddev"] == pytest.approx(11.401754, abs=1e-6)
    assert value["price.unique_est"] == 4
    assert value["price.unique_est_ratio"] == pytest.approx(0.8)
    # code: "12", "7", "1.5", "true", "abc", "12"
    assert (value["code.count_integral"], value["code.count_fractional"]) == (3, 1)
    assert (value["code.count_bool"], value["code.count_string"]) == (1, 1)
    assert total.loc["code.inferred_type", "payload"] == {
        "kind": "type",
        "value": "fractional",  # mixed integral and fractional numbers outnumber the rest
        "counts": {"integral": 3, "fractional": 1, "boolean": 1, "string": 1},
    }
    histogram = total.loc["price.histogram", "payload"]
    assert histogram["n"] == 5
    assert (histogram["q"][0], histogram["q"][50], histogram["q"][100]) == (10, 20, 40)
    assert total.loc["code.frequent_items", "payload"]["items"][0] == ["12", 2]
    # Dataset stats: rows present; newest row 10:55, bucket ends 11:00.
    assert value["orders.missing_datapoint"] == 0
    assert value["orders.seconds_since_last_upload"] == 300
    de = frame[frame["segment"] == '{"country": "DE"}'].set_index("metric")["value"]
    assert de["price.count"] == 1
    assert de["price.null_count"] == 1


def test_empty_buckets_get_missing_datapoint_and_a_growing_upload_age(
    orders: ProjectFactory,
) -> None:
    project = load_project(orders.root, env={})
    dataset = project.datasets[0]
    source = build_source("app", project.settings.sources["app"], project.root)
    start = datetime.fromisoformat("2024-05-01T10:00+00:00")
    frame = source.fetch(dataset, start, start + timedelta(hours=3))
    empty = [start + timedelta(hours=1), start + timedelta(hours=2)]
    filled = dataset_stats_for_empty(frame, dataset, empty)
    total = filled[filled["segment"] == "{}"]
    missing = total[total["metric"] == "orders.missing_datapoint"].sort_values("bucket")
    assert missing["value"].tolist() == [0, 1, 1]
    age = total[total["metric"] == "orders.seconds_since_last_upload"].sort_values("bucket")
    assert age["value"].tolist() == [300, 3900, 7500]


def test_profiles_need_a_sql_source(tmp_path: Path) -> None:
    vigil = VIGIL_YAML.replace("sources:\n", "sources:\n  py: {type: python, function: 'x:y'}\n")
    factory = ProjectFactory(tmp_path)
    text = PROFILE_YAML.replace("source: app", "source: py")
    with pytest.raises(ConfigError, match="profile and dataset_stats are computed by SQL sources"):
        load_project(factory.write({"vigil.yaml": vigil, "metrics/events.yaml": text}), env={})
