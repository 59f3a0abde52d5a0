"""The demo's data in every source engine, and in every metric store: the same monitors raise
the same alerts."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.engines import SOURCE_ENGINES, engine_loader, formula, require_services
from tests.store.backends import STORE_BACKENDS, store_yaml
from vigil.app import running_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.demo.simulate import simulate
from vigil.scheduler.backfill import run_backfill

END = datetime(2024, 6, 10, tzinfo=UTC)
DAYS = 9
CHECK_FROM = END - timedelta(days=1)

MONITORS = """\
analyzers:
  - id: day_week
    type: same_time_comparison
    metrics: ["*"]
    buckets: 3
    lags: [1d, 7d]
    threshold: 0.4
    min_value: 20
    min_significance: null  # a 2% sample: the same alerts on every engine is the point
  - id: ctr_floor
    type: fixed
    metrics: [ctr]
    lower: 0.1
  - id: ctr_band
    type: stddev
    metrics: [ctr]
    window: 24
    factor: 5
monitors:
  - id: product
    analyzers: [day_week, ctr_band]
    channels: [console]
  - id: guard
    analyzers: [ctr_floor]
    channels: [console]
"""


def metrics_yaml(engine: str) -> str:
    def metric(name: str, kind: str) -> str:
        return f'      - {{name: {name}, formula: "{formula(kind, engine)}"}}'

    return f"""\
datasets:
  - name: feed
    source: app
    table: feed_actions
    time_column: time
    slices:
      - os: [iOS, Android]
    metrics:
{metric("feed_users", "users")}
{metric("views", "views")}
{metric("likes", "likes")}
{metric("ctr", "ctr")}
  - name: messenger
    source: app
    table: message_actions
    time_column: time
    slices: [os]
    metrics:
{metric("messages", "rows")}
{metric("messenger_users", "users")}
"""


@pytest.fixture(scope="module")
def demo_tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """A small copy of the demo's feed and messenger events (with its incidents)."""
    path = tmp_path_factory.mktemp("demo") / "app.duckdb"
    simulate(path, END - timedelta(days=DAYS), END, seed=11, scale=0.02)
    with duckdb.connect(str(path), read_only=True) as conn:
        return {
            table: conn.execute(
                f"SELECT user_id, action, time, os FROM {table}"
                if table == "feed_actions"
                else f"SELECT user_id, receiver_id, time, os FROM {table}"
            ).df()
            for table in ("feed_actions", "message_actions")
        }


def alerts_on(
    engine: str, tables: dict[str, pd.DataFrame], root: Path, store: str = "duckdb"
) -> set[tuple[str, ...]]:
    with engine_loader(root) as loader, store_yaml(store) as store_entry:
        require_services(engine)
        source = loader.load(engine, tables).source_yaml
        (root / "metrics").mkdir()
        (root / "monitors").mkdir()
        (root / "vigil.yaml").write_text(
            f"name: e2e\nstore: {store_entry}\nsources:\n  app: {source}\n"
            "channels:\n  console: {type: console}\ndefaults: {delay: 0m, cooldown: 1h}\n"
        )
        (root / "metrics" / "app.yaml").write_text(metrics_yaml(engine))
        (root / "monitors" / "product.yaml").write_text(MONITORS)
        project = load_project(root, env={})
        with running_app(project, ManualClock(END), io.StringIO()) as app:
            report = run_backfill(app, CHECK_FROM, END)
            assert report.errors == []
            assert report.buckets == 2 * 96
            return {
                (
                    a.monitor,
                    a.result.analyzer,
                    a.result.series.metric,
                    a.result.series.segment.key,
                    a.result.bucket.start.isoformat(),
                )
                for a in app.store.list_alerts()
            }


@pytest.fixture(scope="module")
def expected(
    demo_tables: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory
) -> set[tuple[str, ...]]:
    return alerts_on("duckdb", demo_tables, tmp_path_factory.mktemp("duckdb"))


def test_the_checked_day_has_alerts_for_its_incidents(expected: set[tuple[str, ...]]) -> None:
    # The push-campaign spike at 11:30 and the pipeline stall at 16:00 on 9 June.
    spike = {
        a
        for a in expected
        if a[2] == "feed_users" and a[4] >= "2024-06-09T11:30" and a[4] < "2024-06-09T12:45"
    }
    stall = {a for a in expected if a[4] >= "2024-06-09T16:00" and a[4] < "2024-06-09T17:00"}
    assert spike
    assert stall


@pytest.mark.slow
@pytest.mark.parametrize("engine", [e for e in SOURCE_ENGINES if e != "duckdb"])
def test_same_alerts_on_every_engine(
    engine: str,
    demo_tables: dict[str, pd.DataFrame],
    expected: set[tuple[str, ...]],
    tmp_path: Path,
) -> None:
    assert alerts_on(engine, demo_tables, tmp_path) == expected


@pytest.mark.slow
@pytest.mark.parametrize("store", [s for s in STORE_BACKENDS if s != "duckdb"])
def test_same_alerts_on_every_store(
    store: str,
    demo_tables: dict[str, pd.DataFrame],
    expected: set[tuple[str, ...]],
    tmp_path: Path,
) -> None:
    assert alerts_on("duckdb", demo_tables, tmp_path, store=store) == expected
