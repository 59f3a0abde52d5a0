"""`vigil backtest`: the scheduler's code path into a scratch store, scored against labels."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from tests.conftest import MONITORS_YAML, START, STEP, ProjectFactory, event_rows, write_events
from vigil.cli import main

DAY = START + timedelta(days=8)
DROPS = [DAY + timedelta(hours=3), DAY + timedelta(hours=15)]  # two incidents of one hour


def with_incidents(project_dir: ProjectFactory) -> ProjectFactory:
    scaled = {d + i * STEP: 0.2 for d in DROPS for i in range(4)}
    write_events(
        project_dir.root / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}, scaled)
    )
    project_dir.write(
        {
            "monitors/main.yaml": MONITORS_YAML.replace(
                "buckets: 1", "buckets: 1\n    segments: total"
            )
        }
    )
    return project_dir


def backtest(project_dir: ProjectFactory, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main,
        [
            "--project",
            str(project_dir.root),
            "backtest",
            "--from",
            DAY.isoformat(),
            "--to",
            (DAY + timedelta(days=1)).isoformat(),
            *args,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def test_backtest_reports_what_would_have_fired_without_touching_the_store(
    project_dir: ProjectFactory,
) -> None:
    with_incidents(project_dir)
    code, out, err = backtest(project_dir, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["cycles"] == 96
    fired = {(a["metric"], a["bucket"]) for a in report["alerts"]}
    assert fired == {("actions", d.isoformat()) for d in DROPS}  # once per incident: cooldown
    assert report["held_back"] == 6  # the other three dropped buckets of each incident
    assert report["alerts_per_day"] == {"main": 2.0}
    # What the person on call would have received: one message per incident.
    assert report["messages"] == {"console": {"alert": 2}}
    assert report["messages_per_day"] == {"console": 2.0}
    assert report["quality"] is None
    assert not (project_dir.root / "vigil.duckdb").exists()  # the live store was not touched


def test_labels_give_precision_recall_and_delay(project_dir: ProjectFactory) -> None:
    with_incidents(project_dir)
    labels = project_dir.root / "incidents.yaml"
    labels.write_text(
        f"- {{name: night, metric: actions, start: '{DROPS[0].isoformat()}',"
        f" end: '{(DROPS[0] + timedelta(hours=1)).isoformat()}'}}\n"
        f"- {{name: missed, start: '{(DAY + timedelta(hours=8)).isoformat()}',"
        f" end: '{(DAY + timedelta(hours=9)).isoformat()}'}}\n"
    )
    code, out, err = backtest(project_dir, "--labels", str(labels))
    assert code == 0, err
    assert "2 alerts would have been sent" in out
    assert "precision 50%, recall 50% (1 found), 1 false alerts, mean delay 0 min" in out
    assert "messages on console: 2 (2 alert), 2.00 per day" in out
    assert "messages per labelled incident on console: night 1, missed 0; 1 outside" in out


def test_sweep_compares_settings_side_by_side(project_dir: ProjectFactory) -> None:
    with_incidents(project_dir)
    code, out, err = backtest(project_dir, "--sweep", "day_week.threshold=0.5,0.9")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["day_week.threshold", "alerts", "per", "day"]
    assert lines[0].split()[4] == "msgs/day"
    assert lines[1].split()[:4] == ["0.5", "2", "2.00", "2.00"]
    assert lines[2].split()[:4] == ["0.9", "0", "0.00", "0.00"]  # an 80 % drop is under 90 %


def test_bad_settings_are_explained(project_dir: ProjectFactory) -> None:
    code, _, err = backtest(project_dir, "--set", "day_week.treshold=0.5")
    assert code == 1
    assert "--set day_week.treshold: same_time_comparison has no parameter 'treshold'" in err
    code, _, err = backtest(project_dir, "--set", "nope.threshold=1")
    assert "unknown analyzer 'nope'" in err
    code, _, err = backtest(project_dir, "--set", "threshold")
    assert "expected analyzer.param=value" in err
    code, _, err = backtest(project_dir, "--monitor", "other")
    assert "--monitor: unknown monitor 'other'" in err
    bad = project_dir.root / "bad.yaml"
    bad.write_text("- {start: yesterday, end: today}\n")
    code, _, err = backtest(project_dir, "--labels", str(bad))
    assert "item 1: 'yesterday' is not a time" in err
