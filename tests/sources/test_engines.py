"""Every SQL source engine computes the same values from the same rows, in its own dialect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.engines import SOURCE_ENGINES, engine_loader, formula, require_services
from vigil.config import load_project
from vigil.errors import SourceError
from vigil.sources import build_source

START = datetime(2024, 3, 25, tzinfo=UTC)  # a Monday, days before a DST change in Europe
DAYS = 40


def events() -> pd.DataFrame:
    """Rows across 40 days: actions, users, OS (some null), a numeric column with nulls."""
    rng = np.random.default_rng(7)
    n = 6000
    seconds = np.sort(rng.integers(0, DAYS * 86400, size=n))
    os_names = np.array(["iOS", "Android", "Web", None], dtype=object)
    return pd.DataFrame(
        {
            "time": (
                pd.Timestamp(START.replace(tzinfo=None)) + pd.to_timedelta(seconds, unit="s")
            ).astype("datetime64[us]"),
            "user_id": rng.integers(0, 300, size=n),
            "action": np.where(rng.random(n) < 0.2, "like", "view"),
            "os": os_names[rng.choice(4, size=n, p=[0.45, 0.4, 0.1, 0.05])],
            "amount": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 10.0, size=n)),
        }
    )


def project_yaml(engine: str, source: str, granularity: str, timezone: str) -> dict[str, str]:
    metrics = "\n".join(
        f'      - {{name: {m}, formula: "{formula(m, engine)}"}}'
        for m in ("rows", "views", "likes", "users", "ctr")
    )
    return {
        "vigil.yaml": f"name: engines\ntimezone: {timezone}\nsources:\n  src: {source}\n",
        "metrics/events.yaml": f"""\
datasets:
  - name: events
    source: src
    table: events
    time_column: time
    granularity: {granularity}
    slices:
      - os
      - {{os: [iOS, Android], action: '*'}}
    profile:
      - column: amount
        stats: [count, null_count, null_ratio, min, max, mean]
    metrics:
{metrics}
""",
    }


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The same rows in every engine: engine → its source entry."""
    root = tmp_path_factory.mktemp("engines")
    frame = events()
    out = {}
    with engine_loader(root) as loader:
        for engine in SOURCE_ENGINES:
            require_services(engine)
            out[engine] = loader.load(engine, {"events": frame}).source_yaml
        yield out


def fetch(
    tmp_path: Path, engine: str, source: str, granularity: str, timezone: str
) -> pd.DataFrame:
    root = tmp_path / engine
    for name, text in project_yaml(engine, source, granularity, timezone).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    project = load_project(root, env={})
    config = project.settings.sources["src"]
    src = build_source("src", config, project.root)
    try:
        assert src.check(project.datasets[0]) == []
        frame = src.fetch(project.datasets[0], START, START + timedelta(days=DAYS))
    finally:
        src.close()
    return frame.sort_values(["metric", "segment", "bucket"]).reset_index(drop=True)


CASES = [("15m", "UTC"), ("1h", "UTC"), ("1d", "Europe/Berlin"), ("1w", "Europe/Berlin")]
CASES += [("1mo", "America/New_York"), ("1d", "UTC")]


@pytest.mark.slow
@pytest.mark.parametrize("engine", [e for e in SOURCE_ENGINES if e != "duckdb"])
@pytest.mark.parametrize(("granularity", "timezone"), CASES)
def test_every_engine_matches_duckdb(
    loaded: dict[str, str], tmp_path: Path, engine: str, granularity: str, timezone: str
) -> None:
    if engine == "sqlite" and timezone != "UTC":
        pytest.skip("SQLite has no zone database; its calendar buckets need a UTC project")
    expected = fetch(tmp_path, "duckdb", loaded["duckdb"], granularity, timezone)
    got = fetch(tmp_path, engine, loaded[engine], granularity, timezone)
    assert len(expected) > 0
    assert set(expected["segment"]) == {
        "{}",
        '{"os": "iOS"}',
        '{"os": "Android"}',
        '{"os": "Web"}',
        '{"os": "(null)"}',
        '{"action": "like", "os": "iOS"}',
        '{"action": "view", "os": "iOS"}',
        '{"action": "like", "os": "Android"}',
        '{"action": "view", "os": "Android"}',
    }
    pd.testing.assert_frame_equal(
        got[["metric", "segment", "bucket"]], expected[["metric", "segment", "bucket"]]
    )
    np.testing.assert_allclose(got["value"], expected["value"], rtol=1e-9, equal_nan=True)


def test_calendar_buckets_start_at_local_midnight(loaded: dict[str, str], tmp_path: Path) -> None:
    frame = fetch(tmp_path, "postgres", loaded["postgres"], "1d", "Europe/Berlin")
    buckets = sorted(frame["bucket"].unique())
    # Midnight in Berlin is 23:00 UTC in winter and 22:00 UTC from 31 March (DST).
    assert pd.Timestamp("2024-03-29 23:00") in buckets
    assert pd.Timestamp("2024-03-31 22:00") in buckets


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "sqlite", "clickhouse_http"])
def test_a_failing_query_names_source_metric_and_sql_without_credentials(
    loaded: dict[str, str], tmp_path: Path, engine: str
) -> None:
    root = tmp_path / engine
    files = project_yaml(engine, loaded[engine], "1h", "UTC")
    likes = f'{{name: likes, formula: "{formula("likes", engine)}"}}'
    assert likes in files["metrics/events.yaml"]
    files["metrics/events.yaml"] = files["metrics/events.yaml"].replace(
        likes, '{name: likes, formula: "sum(no_such_column)"}'
    )
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    project = load_project(root, env={})
    src = build_source("src", project.settings.sources["src"], project.root)
    try:
        with pytest.raises(SourceError) as info:
            src.fetch(project.datasets[0], START, START + timedelta(days=1))
        problems = src.check(project.datasets[0])
    finally:
        src.close()
    message = str(info.value)
    assert message.startswith("source 'src' (")
    assert "dataset 'events', metric 'likes':" in message
    assert "no_such_column" in message
    assert "\nSQL: SELECT" in message
    assert "hunter2" not in message
    assert len(problems) == 1
    assert problems[0].startswith("metrics/events.yaml:")
    assert "metrics[2].formula" in problems[0]


def run_one(root: Path, source: str, metrics_yaml: str, timezone: str = "UTC") -> pd.DataFrame:
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "vigil.yaml").write_text(f"timezone: {timezone}\nsources:\n  src: {source}\n")
    (root / "metrics" / "events.yaml").write_text(metrics_yaml)
    project = load_project(root, env={})
    src = build_source("src", project.settings.sources["src"], project.root)
    try:
        return src.fetch(project.datasets[0], START, START + timedelta(days=1))
    finally:
        src.close()


def test_clickhouse_functions_work_in_formulas(loaded: dict[str, str], tmp_path: Path) -> None:
    frame = run_one(
        tmp_path,
        loaded["clickhouse"],
        """\
datasets:
  - name: events
    source: src
    table: events
    time_column: time
    granularity: 1h
    metrics:
      - {name: users, formula: uniqExact(user_id)}
      - {name: likes, formula: "countIf(action = 'like')"}
      - {name: active_quarters, formula: uniqExact(toStartOfFifteenMinutes(time))}
""",
    )
    first = frame[frame["bucket"] == pd.Timestamp("2024-03-25 00:00")]
    values = dict(zip(first["metric"], first["value"], strict=True))
    rows = events()
    hour = rows[rows["time"] < pd.Timestamp("2024-03-25 01:00")]
    assert values["users"] == hour["user_id"].nunique()
    assert values["likes"] == (hour["action"] == "like").sum()
    assert values["active_quarters"] == hour["time"].dt.floor("15min").nunique() == 3


SLOW_FILTERS = {
    "postgres": "pg_sleep(0.01) IS NOT NULL",
    "mariadb": "SLEEP(0.01) = 0",
}


@pytest.mark.parametrize("engine", ["postgres", "mariadb"])
def test_a_query_over_its_timeout_is_aborted_with_a_clear_error(
    loaded: dict[str, str], tmp_path: Path, engine: str
) -> None:
    source = loaded[engine].replace("}", ", query_timeout: 1s}")
    began = datetime.now(UTC)
    with pytest.raises(SourceError) as info:
        run_one(
            tmp_path,
            source,
            f"""\
datasets:
  - name: events
    source: src
    table: events
    time_column: time
    filters: ["{SLOW_FILTERS[engine]}"]
    metrics:
      - {{name: rows, formula: count(*)}}
""",
        )
    assert datetime.now(UTC) - began < timedelta(seconds=20)
    message = str(info.value).lower()
    assert "source 'src'" in message
    assert "timeout" in message or "max_statement_time" in message or "interrupted" in message
