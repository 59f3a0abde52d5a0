"""Funnel metrics: each step's count and the conversion between steps, per slice, in every
SQL engine's dialect — and known as ratios of two counts, for the count-aware tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.engines import engine_loader, require_services
from vigil.config import load_project
from vigil.sources import build_source

START = datetime(2024, 6, 3, tzinfo=UTC)
ENGINES = ["duckdb", "postgres", "mariadb", "sqlite", "clickhouse"]


def events() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    rows = []
    for user in range(400):
        os_name = "iOS" if user % 3 else "Android"
        at = START + timedelta(minutes=int(rng.integers(0, 240)))
        rows.append((at, user, "visit", os_name))
        if rng.random() < 0.5:
            rows.append((at + timedelta(seconds=30), user, "signup", os_name))
            if rng.random() < 0.4:
                rows.append((at + timedelta(seconds=60), user, "activate", os_name))
    frame = pd.DataFrame(rows, columns=["time", "user_id", "event", "os"])
    frame["time"] = frame["time"].dt.tz_localize(None).astype("datetime64[us]")
    return frame


METRICS = """\
datasets:
  - name: growth
    source: src
    table: events
    time_column: time
    granularity: 1h
    slices: [os]
    metrics:
      - name: signup
        title: Signup funnel
        funnel:
          unit: user_id
          steps:
            - {name: visit, filter: "event = 'visit'"}
            - {name: signup, filter: "event = 'signup'"}
            - {name: activation, filter: "event = 'activate'"}
"""


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("funnel")
    with engine_loader(root) as loader:
        out = {}
        for engine in ENGINES:
            require_services(engine)
            out[engine] = loader.load(engine, {"events": events()}).source_yaml
        yield out


def _project(root: Path, source: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "vigil.yaml").write_text(f"name: f\ntimezone: UTC\nsources:\n  src: {source}\n")
    (root / "metrics").mkdir(exist_ok=True)
    (root / "metrics/growth.yaml").write_text(METRICS)
    return root


def test_a_funnel_is_its_step_counts_and_conversions_known_as_ratios(tmp_path: Path) -> None:
    project = load_project(_project(tmp_path, "{type: duckdb, path: x.duckdb}"), env={})
    (dataset,) = project.datasets
    assert [m.name for m in dataset.metrics] == [
        "signup_visit",
        "signup_signup",
        "signup_activation",
        "signup_visit_to_signup",
        "signup_signup_to_activation",
        "signup_conversion",
    ]
    by_name = {m.name: m for m in dataset.metrics}
    assert by_name["signup_visit_to_signup"].ratio_of == ("signup_signup", "signup_visit")
    assert by_name["signup_conversion"].ratio_of == ("signup_activation", "signup_visit")
    assert by_name["signup_conversion"].format == "percent"
    assert by_name["signup_conversion"].title == "Signup funnel: visit → activation"


@pytest.mark.parametrize("engine", ENGINES)
def test_every_engine_computes_the_same_funnel(
    loaded: dict[str, str], tmp_path: Path, engine: str
) -> None:
    project = load_project(_project(tmp_path / engine, loaded[engine]), env={})
    source = build_source("src", project.settings.sources["src"], project.root)
    try:
        assert source.check(project.datasets[0]) == []
        frame = source.fetch(project.datasets[0], START, START + timedelta(hours=4))
    finally:
        source.close()
    rows = events()
    hour = pd.Timestamp(START.replace(tzinfo=None))
    first = rows[(rows["time"] >= hour) & (rows["time"] < hour + pd.Timedelta(hours=1))]
    ios = first[first["os"] == "iOS"]
    visits = ios[ios["event"] == "visit"]["user_id"].nunique()
    signups = ios[ios["event"] == "signup"]["user_id"].nunique()
    got = frame[(frame["bucket"] == hour) & (frame["segment"] == '{"os": "iOS"}')]
    values = dict(zip(got["metric"], got["value"], strict=True))
    assert values["signup_visit"] == visits
    assert values["signup_signup"] == signups
    assert values["signup_visit_to_signup"] == pytest.approx(signups / visits)
    total = frame[(frame["bucket"] == hour) & (frame["segment"] == "{}")]
    assert set(total["metric"]) == {m.name for m in project.datasets[0].metrics}
