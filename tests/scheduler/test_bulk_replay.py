"""A replay that reads each dataset once leaves the store exactly as the per-cycle replay does.

The per-cycle path (`run_cycle` for every due time, each ingesting its own window from the
source) is the reference; `replay_cycles` must give the same values, zero fills, results,
alerts, incidents, notifications and pipeline state, byte for byte — on data with the cases
that make the per-cycle ingest depend on what the store held at each moment: a slice that
appears mid-range (its earlier buckets are zero-filled only once it has a row), a slice that
goes quiet, a whole-dataset outage (no data, then data is back), ratios with missing
buckets, distributions, a cron dataset that must stay per cycle, and a store that already
holds part of the range.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.conftest import ProjectFactory
from vigil.app import build_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.scheduler.cycle import run_cycle
from vigil.scheduler.replay import bulk_eligible, replay_cycles
from vigil.scheduler.schedule import due_times

START = datetime(2024, 5, 1, tzinfo=UTC)
REPLAY_FROM = START + timedelta(days=8, hours=6)
MIDDLE = REPLAY_FROM + timedelta(hours=4)
REPLAY_TO = REPLAY_FROM + timedelta(hours=7)
OUTAGE = (REPLAY_FROM + timedelta(hours=5), REPLAY_FROM + timedelta(hours=6))
DROP = (REPLAY_FROM + timedelta(hours=2), REPLAY_FROM + timedelta(hours=3))
WEB_FROM = REPLAY_FROM + timedelta(hours=3, minutes=40)
LINUX_UNTIL = REPLAY_FROM + timedelta(hours=1)

METRICS_YAML = """\
datasets:
  - name: events
    source: app
    table: events
    time_column: time
    slices: [os]
    metrics:
      - name: actions
        formula: count(*)
      - name: users
        formula: count(DISTINCT user_id)
      - name: per_user
        formula: count(*) / nullif(count(DISTINCT user_id), 0)
        fill: missing
  - name: orders
    source: app
    table: orders
    time_column: time
    slices: [country]
    dataset_stats: [missing_datapoint]
    profile:
      - column: price
      - column: country
        kind: discrete
  - name: hourly
    source: app
    table: events
    time_column: time
    schedule: '5 * * * *'
    granularity: 1h
    metrics:
      - name: hourly_actions
        formula: count(*)
"""

MONITORS_YAML = """\
analyzers:
  - id: day_week
    type: same_time_comparison
    metrics: [actions, users, per_user, hourly_actions]
    buckets: 2
  - id: band
    type: stddev
    metrics: [actions, per_user]
  - id: step
    type: diff
    mode: pct
    threshold: 40
    metrics: [users]
  - id: price_drift
    type: drift
    metric: histogram
    target_matrix: {type: column, include: ["group:continuous"], segments: [{}]}
    baseline: {type: trailing_window, size: 24}
  - id: new_countries
    type: frequent_string_comparison
    operator: baseline_includes_all_target
    metrics: [country.frequent_items]
    segments: total
    baseline: {type: trailing_window, size: 24}
  - id: gaps
    type: fixed
    upper: 0.5
    metrics: [orders.missing_datapoint]
monitors:
  - id: main
    analyzers: ["*"]
    channels: [console]
"""


def _events() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows: list[tuple[datetime, str, int]] = []
    step = timedelta(minutes=15)
    t = START
    while t < REPLAY_TO + timedelta(hours=2):
        if not OUTAGE[0] <= t < OUTAGE[1]:
            hour = t.hour + t.minute / 60
            level = 1.0 + 0.5 * np.sin(hour / 24 * 2 * np.pi)
            counts = {"iOS": 30 * level, "Android": 60 * level}
            if DROP[0] <= t < DROP[1]:
                counts["Android"] *= 0.2
            if t < LINUX_UNTIL and t.minute == 0:
                counts["Linux"] = 5
            if t >= WEB_FROM and t.minute in (15, 45):
                counts["Web"] = 8
            for os_name, mean in counts.items():
                for _ in range(int(rng.poisson(mean))):
                    at = t.replace(tzinfo=None) + timedelta(seconds=int(rng.integers(0, 900)))
                    rows.append((at, os_name, int(rng.integers(0, max(2, int(mean // 2))))))
        t += step
    return pd.DataFrame(rows, columns=["time", "os", "user_id"])


def _orders() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    rows = []
    for minute in range(0, int((REPLAY_TO - START).total_seconds() // 60) + 120, 5):
        at = START + timedelta(minutes=minute)
        if OUTAGE[0] <= at < OUTAGE[1]:
            continue
        late = at >= MIDDLE
        countries = ["US", "DE", "BR"] if late else ["US", "DE"]
        price = rng.uniform(10, 20) + (30 if late else 0)
        rows.append((at.replace(tzinfo=None), countries[minute % len(countries)], price))
    return pd.DataFrame(rows, columns=["time", "country", "price"])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulk")
    ProjectFactory(root).write(
        {"metrics/events.yaml": METRICS_YAML, "monitors/main.yaml": MONITORS_YAML}
    )
    with duckdb.connect(str(root / "app.duckdb")) as conn:
        for name, frame in (("events", _events()), ("orders", _orders())):
            conn.register("frame", frame)
            conn.execute(f"CREATE TABLE {name} AS SELECT * FROM frame")
            conn.unregister("frame")
    return root


def _copy(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


def _replay(root: Path, start: datetime, end: datetime, *, bulk: bool) -> None:
    project = load_project(root, env={})
    clock = ManualClock(end + timedelta(hours=1))
    app = build_app(project, clock, io.StringIO())
    with app.session():
        times = due_times(project, start, end)
        if bulk:
            for _ in replay_cycles(app, times):
                pass
        else:
            for at in times:
                run_cycle(app, at, scheduled_only=True, kind="replay")
    app.close()


TABLES = {
    "metric_values": "metric, segment, granularity, bucket, value",
    "metric_payloads": "metric, segment, granularity, bucket, payload",
    "analysis_results": "analyzer, metric, segment, granularity, bucket, value, status,"
    " expected_lower, expected_upper, deviation, baselines, reason, config_hash",
    "alerts": "monitor, analyzer, metric, segment, granularity, bucket, severity, status",
    "notifications": "key, monitor, channel, metric, segment, bucket, title, text, status, kind",
    "incidents": "monitor, metric, segment, opened_bucket, last_anomaly_bucket, status",
    "pipeline_state": "dataset, consecutive_failures, alerted, silent_since, silence_alerted",
    "ingest_state": "dataset, ingested_until",
}


def _state(root: Path) -> dict[str, list[tuple[Any, ...]]]:
    with duckdb.connect(str(root / "vigil.duckdb"), read_only=True) as conn:
        return {
            table: conn.execute(f"SELECT {cols} FROM {table} ORDER BY ALL").fetchall()
            for table, cols in TABLES.items()
        }


def _assert_same(per_cycle: Path, bulk: Path) -> dict[str, list[tuple[Any, ...]]]:
    expected, found = _state(per_cycle), _state(bulk)
    for table in TABLES:
        assert found[table] == expected[table], table
    return expected


@pytest.fixture(scope="module")
def clean_bulk(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole range replayed read-once into a fresh store (shared: tests only read it)."""
    bulk = _copy(template, tmp_path_factory.mktemp("clean") / "bulk")
    _replay(bulk, REPLAY_FROM, REPLAY_TO, bulk=True)
    return bulk


def test_a_fresh_replay_read_once_equals_the_per_cycle_replay(
    template: Path, tmp_path: Path, clean_bulk: Path
) -> None:
    reference = _copy(template, tmp_path / "per_cycle")
    _replay(reference, REPLAY_FROM, REPLAY_TO, bulk=False)
    state = _assert_same(reference, clean_bulk)
    # The cases the comparison is about did happen.
    values = state["metric_values"]
    web_zeros = [v for v in values if v[1] == '{"os": "Web"}' and v[4] == 0]
    assert web_zeros, "the late slice's earlier buckets were zero-filled"
    assert any(v[1] == '{"os": "Linux"}' and v[4] == 0 for v in values)
    kinds = {n[9] for n in state["notifications"]}
    assert "pipeline" in kinds
    assert state["alerts"]
    assert state["incidents"]
    assert any(r[0] == "price_drift" for r in state["analysis_results"])
    assert any(r[0] == "day_week" and r[1] == "hourly_actions" for r in state["analysis_results"])


def test_a_replay_over_a_store_that_holds_part_of_the_range_equals_the_per_cycle_one(
    template: Path, tmp_path: Path
) -> None:
    first = _copy(template, tmp_path / "first")
    _replay(first, REPLAY_FROM, MIDDLE, bulk=False)
    reference = _copy(first, tmp_path / "per_cycle")
    bulk = _copy(first, tmp_path / "bulk")
    # Overlapping the part already replayed: those buckets are skipped, not redone.
    _replay(reference, MIDDLE - timedelta(hours=1), REPLAY_TO, bulk=False)
    _replay(bulk, MIDDLE - timedelta(hours=1), REPLAY_TO, bulk=True)
    _assert_same(reference, bulk)


def test_which_datasets_are_read_once(template: Path) -> None:
    project = load_project(template, env={})
    app = build_app(project, ManualClock(REPLAY_TO), io.StringIO())
    reasons = {d.name: bulk_eligible(app, d) for d in project.datasets}
    app.close()
    assert reasons == {"events": None, "orders": None, "hourly": "a cron schedule"}


CRASHING_REPLAY = """
import io, os, sys
from datetime import datetime, timedelta
from pathlib import Path

from vigil.app import build_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.scheduler import cycle
from vigil.scheduler.replay import replay_cycles
from vigil.scheduler.schedule import due_times

root, crash_at = Path(sys.argv[1]), int(sys.argv[4])
start, end = (datetime.fromisoformat(a) for a in sys.argv[2:4])
run_cycle, done = cycle.run_cycle, []

def dying(*args, **kwargs):
    if len(done) == crash_at:
        os._exit(9)  # as a kill -9: no cleanup, no flush
    done.append(1)
    return run_cycle(*args, **kwargs)

cycle.run_cycle = dying
project = load_project(root, env={})
app = build_app(project, ManualClock(end + timedelta(hours=1)), io.StringIO())
with app.session():
    for _ in replay_cycles(app, due_times(project, start, end)):
        pass
"""


def test_a_replay_killed_mid_way_resumes_without_gaps_or_repeats(
    template: Path, tmp_path: Path, clean_bulk: Path
) -> None:
    """Quiet cycles' results wait in memory; a crash (kill -9) loses only those, and the
    resumed replay analyses them again: no gap, and no alert or message lost or repeated."""
    clean = clean_bulk
    crashed = _copy(template, tmp_path / "crashed")
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_REPLAY, encoding="utf-8")
    ran = subprocess.run(
        [
            sys.executable,
            str(script),
            str(crashed),
            REPLAY_FROM.isoformat(),
            REPLAY_TO.isoformat(),
            "14",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 9, ran.stderr
    after_crash, expected = _state(crashed), _state(clean)
    # The crash lost the results of quiet cycles not written yet (the case under test).
    analysed = {r[4] for r in after_crash["analysis_results"] if r[1] == "actions"}
    assert len(analysed) < 14
    _replay(crashed, REPLAY_FROM, REPLAY_TO, bulk=True)
    found = _state(crashed)
    # The first attempt stored the whole range's values before it died, so the resumed replay
    # meets a store like a backfilled one: it knows the late Web slice from the start and
    # zero-fills it earlier, which adds results (and alerts) for Web. Everything else is as in
    # the replay never stopped: no gap, no alert or message lost or repeated.
    web = '{"os": "Web"}'
    segment_at = {"analysis_results": 2, "alerts": 3, "notifications": 4, "incidents": 2}
    for table, column in segment_at.items():
        assert [r for r in found[table] if r[column] != web] == [
            r for r in expected[table] if r[column] != web
        ], table
    keys = {r[:5] for r in found["analysis_results"]}
    assert all(r[:5] in keys for r in expected["analysis_results"])
    assert found["pipeline_state"] == expected["pipeline_state"]
