"""Simulated apps for `vigil bench scenarios`: what is drawn, written and scored."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.quality.scenario_bench import HELD_OUT_SEEDS, TUNING_SEEDS, score
from vigil.quality.scenarios import STEP, draw, simulate

END = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_scenario_draws_incidents_apart_in_its_last_days_off_the_quiet_day(seed: int) -> None:
    scenario = draw(seed, END)
    assert scenario.shape in ("evening", "office", "night_low")
    assert abs(sum(scenario.slices.values()) - 1) < 1e-9
    assert min(scenario.slices.values()) < 0.07  # one small slice
    assert len(scenario.incidents) == 6
    quiet_end = scenario.quiet_day + timedelta(days=1)
    ordered = sorted(scenario.incidents, key=lambda i: i.start)
    for incident in ordered:
        assert scenario.replay_from <= incident.start < incident.end <= END
        assert not (scenario.quiet_day <= incident.start < quiet_end)
        assert incident.duration >= 2 * STEP
    for a, b in itertools.pairwise(ordered):
        assert b.start >= a.end + timedelta(hours=3)
    kinds = {i.kind for i in scenario.incidents}
    assert {"total_drop", "total_spike", "slice_outage", "slice_spike", "like_break"} <= kinds
    assert draw(seed, END) == scenario  # a seed is one scenario
    assert not set(TUNING_SEEDS) & set(HELD_OUT_SEEDS)


def test_the_data_carries_the_incidents_and_the_quiet_day(tmp_path: Path) -> None:
    scenario = draw(2, END)
    rows = simulate(scenario, tmp_path / "app.duckdb")
    buckets = int((scenario.end - scenario.start) / STEP)
    assert rows == buckets * len(scenario.slices)
    with duckdb.connect(str(tmp_path / "app.duckdb"), read_only=True) as con:

        def users(start: datetime, hours: float, os: str | None = None) -> float:
            where = f" AND os = '{os}'" if os else ""
            found = con.execute(
                "SELECT sum(users) FROM activity WHERE time >= ? AND time < ?" + where,
                [start.replace(tzinfo=None), (start + timedelta(hours=hours)).replace(tzinfo=None)],
            ).fetchone()
            assert found is not None
            return float(found[0])

        day = timedelta(days=1)
        quiet = users(scenario.quiet_day, 24) / users(scenario.quiet_day - 7 * day, 24)
        assert 0.75 < quiet < 0.95
        for incident in scenario.incidents:
            if incident.kind == "like_break":
                continue
            hours = incident.duration.total_seconds() / 3600
            now = users(incident.start, hours, incident.slice)
            before = users(incident.start - 7 * day, hours, incident.slice)
            assert abs(now / before - incident.factor) < 0.25 * incident.factor


def test_alerts_are_true_on_the_incidents_series_and_false_elsewhere() -> None:
    scenario = draw(3, END)
    slice_incident = next(i for i in scenario.incidents if i.slice is not None)
    after = timedelta(hours=1)
    at = slice_incident.start + STEP
    metric = slice_incident.metrics[0]
    assert scenario.incident_of(metric, f"os={slice_incident.slice}", at, after) is not None
    assert scenario.incident_of(metric, "total", at, after) is not None
    assert scenario.incident_of(metric, "os=web", at, after) is None  # another slice
    late = slice_incident.end + after
    assert scenario.incident_of(metric, "total", late, after) is None


@pytest.mark.slow
def test_a_scenario_is_replayed_and_scored(tmp_path: Path) -> None:
    scenario = draw(5, END, replay_days=2)
    result = score(scenario, "recommended", tmp_path / "project")
    assert result.incidents == len(scenario.incidents)
    assert 0 <= result.caught <= result.incidents
    assert len(result.missed) == result.incidents - result.caught
    assert result.days == 2
    assert result.series == 16
    # The same through the CLI, as JSON.
    out = CliRunner().invoke(
        main,
        ["bench", "scenarios", "--seeds", "5", "--analyzers", "readme", "--days", "2", "--json"],
    )
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)
    assert (row["seed"], row["analyzers"], row["held_out"]) == (5, "readme", False)
    bad = CliRunner().invoke(main, ["bench", "scenarios", "--analyzers", "magic"])
    assert bad.exit_code != 0
    assert "unknown set magic" in bad.output
