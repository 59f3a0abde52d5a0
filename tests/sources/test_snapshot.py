"""Snapshot datasets: a query of the present state, run at check time, stamped with the bucket.

`SELECT count(*) FROM accounts` has no event time: every engine runs it without a time filter
or bucket column (grouping by the slices alone), and the cycle stores the answer at the
bucket it checks. Backfill and replay say that a snapshot has no history, and skip it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.engines import engine_loader, require_services
from vigil.app import build_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.errors import ConfigError
from vigil.scheduler.backfill import run_backfill
from vigil.scheduler.cycle import run_cycle
from vigil.scheduler.replay import replay_cycles

NOW = datetime(2024, 6, 3, 10, 7, tzinfo=UTC)
ENGINES = ["duckdb", "postgres", "mariadb", "sqlite", "clickhouse"]


def accounts(extra: int = 0) -> pd.DataFrame:
    plans = ["free"] * 6 + ["pro"] * 3 + ["team"] * (1 + extra)
    return pd.DataFrame(
        {
            "id": range(len(plans)),
            "plan": plans,
            "active": [1, 0] * 5 + [1] * extra,
        }
    )


def project(root: Path, source: str) -> Path:
    files = {
        "vigil.yaml": f"name: snap\ntimezone: UTC\nsources:\n  src: {source}\n"
        "channels:\n  console: {type: console}\ndefaults: {delay: 2m}\n",
        "metrics/accounts.yaml": """\
datasets:
  - name: accounts
    source: src
    table: accounts
    snapshot: true
    granularity: 1h
    slices: [plan]
    metrics:
      - {name: accounts, formula: "count(*)"}
      - {name: active_accounts, formula: "sum(active)"}
""",
        "monitors/main.yaml": """\
analyzers:
  - {id: floor, type: fixed, lower: 1, metrics: [accounts]}
monitors:
  - {id: main, analyzers: ["*"], channels: [console]}
""",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("snapshot-engines")
    with engine_loader(root) as loader:
        out = {}
        for engine in ENGINES:
            require_services(engine)
            out[engine] = loader.load(engine, {"accounts": accounts()}).source_yaml
        yield out


def _stored(app: object) -> dict[tuple[str, str], list[tuple[datetime, float]]]:
    store = app.store  # type: ignore[attr-defined]
    cells = store.load_cells(
        ["accounts", "active_accounts"],
        load_project(app.project.root, env={}).datasets[0].granularity,  # type: ignore[attr-defined]
        NOW - timedelta(days=30),
        NOW + timedelta(days=1),
    )
    out: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
    for metric, found in cells.items():
        for row, bucket, value in zip(found.rows, found.buckets, found.values, strict=True):
            at = pd.Timestamp(bucket).to_pydatetime().replace(tzinfo=UTC)
            out.setdefault((metric, found.segments[row]), []).append((at, float(value)))
    return out


@pytest.mark.parametrize("engine", ENGINES)
def test_a_snapshot_is_stamped_with_the_bucket_checked(
    loaded: dict[str, str], tmp_path: Path, engine: str
) -> None:
    root = project(tmp_path / engine, loaded[engine])
    app = build_app(load_project(root, env={}), ManualClock(NOW), io.StringIO())
    with app.session():
        report = run_cycle(app, NOW)
        assert report.errors == []
        stored = _stored(app)
    app.close()
    bucket = datetime(2024, 6, 3, 9, tzinfo=UTC)  # 10:07 − 2 min: 09:00–10:00 is complete
    assert stored == {
        ("accounts", "{}"): [(bucket, 10.0)],
        ("accounts", '{"plan": "free"}'): [(bucket, 6.0)],
        ("accounts", '{"plan": "pro"}'): [(bucket, 3.0)],
        ("accounts", '{"plan": "team"}'): [(bucket, 1.0)],
        ("active_accounts", "{}"): [(bucket, 5.0)],
        ("active_accounts", '{"plan": "free"}'): [(bucket, 3.0)],
        ("active_accounts", '{"plan": "pro"}'): [(bucket, 2.0)],
        ("active_accounts", '{"plan": "team"}'): [(bucket, 0.0)],
    }


def test_each_cycle_stores_the_state_then_and_history_is_refused(tmp_path: Path) -> None:
    with engine_loader(tmp_path) as loader:
        source = loader.load("duckdb", {"accounts": accounts()}).source_yaml
        root = project(tmp_path / "p", source)
        clock = ManualClock(NOW)
        app = build_app(load_project(root, env={}), clock, io.StringIO())
        run_cycle(app, NOW)
        loader.load("duckdb", {"accounts": accounts(extra=4)})  # four team signups
        clock.set(NOW + timedelta(hours=1))
        run_cycle(app, NOW + timedelta(hours=1))
        totals = _stored(app)[("accounts", "{}")]
        # No history: a backfill says so and stores nothing; a replay skips it.
        backfilled = run_backfill(app, NOW - timedelta(days=2), NOW)
        replayed = list(replay_cycles(app, [NOW - timedelta(days=1)]))
        after = _stored(app)[("accounts", "{}")]
        app.close()
    assert totals == [
        (datetime(2024, 6, 3, 9, tzinfo=UTC), 10.0),
        (datetime(2024, 6, 3, 10, tzinfo=UTC), 14.0),
    ]
    assert backfilled.buckets == 0
    assert backfilled.notes == [
        "dataset 'accounts' is a snapshot: its query tells the present state, so it has no"
        " history to backfill (it is checked from now on)"
    ]
    (outcome,) = replayed[0].outcomes
    assert outcome.skipped == "a snapshot tells only the present (no history to replay)"
    assert after == totals


def test_a_snapshot_with_a_time_column_is_a_config_error(tmp_path: Path) -> None:
    root = project(tmp_path / "p", "{type: duckdb, path: x.duckdb}")
    text = (root / "metrics/accounts.yaml").read_text()
    (root / "metrics/accounts.yaml").write_text(
        text.replace("    snapshot: true\n", "    snapshot: true\n    time_column: created_at\n")
    )
    with pytest.raises(ConfigError, match="a snapshot has no time column"):
        load_project(root, env={})
