"""The `vigil` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from tests.conftest import (
    METRICS_YAML,
    MONITORS_YAML,
    START,
    STEP,
    VIGIL_YAML,
    ProjectFactory,
    TelegramStandIn,
    event_rows,
    is_png,
    write_events,
)
from vigil.cli import main
from vigil.store.duckdb import DuckDBStore

DROP = START + timedelta(days=8, hours=12)


def vigil(project: ProjectFactory, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--project", str(project.root), *args])
    return result.exit_code, result.stdout, result.stderr


def test_validate_reports_ok_with_counts(project_dir: ProjectFactory) -> None:
    code, out, _ = vigil(project_dir, "validate")
    assert code == 0
    assert out == "OK: 3 files, 1 datasets, 2 metrics, 1 analyzers, 1 monitors\n"


def test_the_project_is_found_from_a_subdirectory_as_git_finds_its_repository(
    project_dir: ProjectFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.chdir(project_dir.root / "metrics")
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("OK: 3 files")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # no vigil.yaml up to the root
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 1
    assert "vigil.yaml: no such file; expected a project directory with vigil.yaml" in (
        result.stderr
    )


def test_validate_names_an_unknown_column_without_a_traceback(project_dir: ProjectFactory) -> None:
    project_dir.write(
        {"metrics/events.yaml": METRICS_YAML.replace("DISTINCT user_id", "DISTINCT uid")}
    )
    result = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--project", str(project_dir.root), "validate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Error: metrics/events.yaml:15: datasets[0].metrics[1].formula:")
    assert '"uid" not found' in lines[0]
    assert "Traceback" not in result.stderr


def test_validate_reports_key_typos_and_formula_errors_in_one_run(
    project_dir: ProjectFactory,
) -> None:
    project_dir.write(
        {
            "metrics/events.yaml": METRICS_YAML.replace("DISTINCT user_id", "DISTINCT uid"),
            "monitors/main.yaml": MONITORS_YAML.replace("buckets: 1", "bukets: 1"),
        }
    )
    code, _, err = vigil(project_dir, "validate")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith("Error: monitors/main.yaml:")
    assert "unknown key 'bukets' (did you mean 'buckets'?)" in lines[0]
    assert lines[1].startswith("Error: metrics/events.yaml:15: datasets[0].metrics[1].formula:")
    assert '"uid" not found' in lines[1]


def test_a_metric_added_later_gets_its_history_at_the_next_check(
    project_dir: ProjectFactory,
) -> None:
    write_events(project_dir.root / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}))
    code, _, err = vigil(project_dir, "check", "--at", "2024-05-09T12:00")
    assert code == 0, err
    added = (
        METRICS_YAML
        + "      - name: ios_actions\n        formula: count(*) FILTER (WHERE os = 'iOS')\n"
    )
    monitors = MONITORS_YAML.replace("metrics: [actions]", "metrics: [actions, ios_actions]")
    project_dir.write({"metrics/events.yaml": added, "monitors/main.yaml": monitors})
    code, out, err = vigil(project_dir, "check", "--at", "2024-05-09T12:15")
    assert code == 0, err
    # The dataset's metrics changed: its history was read again, so the new metric compares
    # with a week ago at once.
    assert "no baseline yet" not in out
    with duckdb.connect(str(project_dir.root / "vigil.duckdb"), read_only=True) as conn:
        statuses = conn.execute(
            "SELECT DISTINCT status FROM analysis_results WHERE metric = 'ios_actions'"
        ).fetchall()
    assert statuses == [("ok",)]


def test_too_little_history_in_the_source_is_told_how_to_load_more(
    project_dir: ProjectFactory,
) -> None:
    # Six hours of data: neither a day ago nor a week ago has anything to compare with.
    write_events(
        project_dir.root / "app.duckdb",
        event_rows(START + timedelta(days=8, hours=7), 0.25, {"iOS": 10, "Android": 20}),
    )
    code, out, err = vigil(project_dir, "check", "--at", "2024-05-09T12:15")
    assert code == 0, err
    assert "events: actions: no baseline yet (too little history in the store); to load it:" in out
    assert "vigil backfill --from 2024-05-01T12:00 --to 2024-05-09T12:15 --metrics actions" in out


def test_bad_time_option_is_a_usage_error(project_dir: ProjectFactory) -> None:
    code, _, err = vigil(project_dir, "check", "--at", "yesterday-ish")
    assert code == 2
    assert "expected ISO 8601" in err


def test_check_prints_what_it_checked_and_alerted(project_dir: ProjectFactory) -> None:
    write_events(
        project_dir.root / "app.duckdb",
        event_rows(START, 9, {"iOS": 10, "Android": 20}, {DROP: 0.2}),
    )
    code, out, _ = vigil(project_dir, "check", "--at", (DROP + STEP).isoformat())
    assert code == 0
    assert "[2024-05-09 12:15] events: bucket 12:00," in out
    assert "3 checks, 3 anomalies" in out
    assert "ALERT actions [os=iOS] by day_week → main: notify" in out
    assert "Value: 2 at 2024-05-09 12:00" in out


def test_checking_a_bucket_again_says_so_and_how_to_redo_it(
    project_dir: ProjectFactory,
) -> None:
    write_events(project_dir.root / "app.duckdb", event_rows(START, 9, {"iOS": 10}))
    at = (DROP + STEP).isoformat()
    assert vigil(project_dir, "check", "--at", at, "--no-notify")[0] == 0
    code, out, _ = vigil(project_dir, "check", "--at", at, "--no-notify")
    assert code == 0
    assert "0 checks" in out
    hint = (
        "events: bucket 2024-05-09 12:00 was already checked; to check it again:"
        " vigil backfill --from 2024-05-09T12:00 --to 2024-05-09T12:15 --reanalyze"
    )
    assert hint in out
    command = hint.split("again: vigil ", 1)[1].split()
    code, out, _ = vigil(project_dir, *command, "--no-notify")
    assert code == 0
    assert "3 checks" in out or "checks" in out


def test_a_replay_whose_every_cycle_fails_exits_1(project_dir: ProjectFactory) -> None:
    project_dir.write(
        {"metrics/events.yaml": METRICS_YAML.replace("DISTINCT user_id", "DISTINCT uid")}
    )
    code, out, err = vigil(
        project_dir, "replay", "--from", DROP.isoformat(), "--to", (DROP + 2 * STEP).isoformat()
    )
    assert code == 1
    assert "Replayed 2 cycles; 0 alerts; 2 cycles failed." in out, err
    assert "every cycle failed" in err


def test_demo_refuses_zero_replay_days(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path), "--replay-days", "0"])
    assert result.exit_code == 2
    assert "0 is not in the range x>=1" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_replay_then_alerts_json(project_dir: ProjectFactory) -> None:
    write_events(
        project_dir.root / "app.duckdb",
        event_rows(START, 9, {"iOS": 10, "Android": 20}, {DROP: 0.2, DROP + STEP: 0.2}),
    )
    code, out, _ = vigil(
        project_dir,
        "replay",
        "--from",
        "2024-05-09T11:00",
        "--to",
        "2024-05-09T13:00",
        "--no-notify",
    )
    assert code == 0
    assert out.strip().endswith("Replayed 8 cycles; 3 alerts.")
    code, out, _ = vigil(project_dir, "alerts", "--json")
    assert (code, json.loads(out)) == (0, [])  # by default the sent ones: none, --no-notify
    code, out, _ = vigil(project_dir, "alerts")
    assert out.splitlines() == [
        "No alerts with status sent.",
        "Not shown: 3 cooldown, 3 muted (--status all shows every alert).",
    ]
    code, out, _ = vigil(project_dir, "alerts", "--json", "--status", "all")
    assert code == 0
    alerts = json.loads(out)
    assert len(alerts) == 6  # 3 muted at 12:00, 3 in cooldown at 12:15
    first = alerts[0]
    assert first["time"] == "2024-05-09T12:00:00+00:00"
    assert first["metric"] == "actions"
    assert first["segment"] == {"os": "Android"}
    assert first["value"] == 4
    assert first["baselines"] == {"current_mean": 4.0, "lag_1d": 20.0, "lag_1w": 20.0}
    assert first["deviation"] == -0.8
    assert (first["analyzer"], first["monitor"], first["severity"]) == ("day_week", "main", "high")
    assert first["status"] == "muted"
    assert {a["status"] for a in alerts[3:]} == {"cooldown"}
    code, out, _ = vigil(project_dir, "alerts", "--since", "2024-05-09T12:10", "--status", "all")
    assert code == 0
    header, *lines = out.strip().splitlines()
    assert header.split() == [
        "bucket",
        "severity",
        "status",
        "series",
        "value",
        "deviation",
        "analyzer",
        "→",
        "monitor",
    ]
    assert len(lines) == 3
    assert "-80.0%" in lines[0]
    code, out, _ = vigil(project_dir, "alerts", "--status", "muted")
    assert len(out.strip().splitlines()) == 1 + 3 + 1  # header, 3 muted, the 3 not shown


def test_incidents_are_listed_as_their_messages_grouped_them(project_dir: ProjectFactory) -> None:
    write_events(
        project_dir.root / "app.duckdb",
        event_rows(START, 9, {"iOS": 10, "Android": 20}, {DROP: 0.2, DROP + STEP: 0.2}),
    )
    code, _, err = vigil(
        project_dir, "replay", "--from", "2024-05-09T11:00", "--to", "2024-05-09T14:00"
    )
    assert code == 0, err
    code, out, _ = vigil(project_dir, "incidents", "--json")
    assert code == 0
    groups = json.loads(out)
    assert len(groups) == 1  # one drop of every series in one dataset: one incident
    group = groups[0]
    assert (group["monitor"], group["dataset"], group["opened"]) == (
        "main",
        "events",
        "2024-05-09T12:00:00+00:00",
    )
    assert [m["series"] for m in group["members"]] == [
        "actions [os=Android]",
        "actions [os=iOS]",
        "actions [total]",
    ]
    assert group["status"] == "resolved"  # four normal buckets later
    assert group["minutes"] == 30  # the two dropped buckets
    code, out, _ = vigil(project_dir, "incidents")
    lines = out.splitlines()
    assert lines[0].split() == ["opened", "status", "lasted", "monitor", "dataset", "series"]
    assert lines[1].split()[:6] == ["2024-05-09", "12:00", "resolved", "30m", "main", "events"]
    assert lines[1].endswith("3: actions [os=Android], actions [os=iOS], actions [total]")
    code, out, _ = vigil(project_dir, "incidents", "--open")
    assert out == "No open incidents.\n"


def test_replay_no_notify_sends_nothing_not_even_no_data(project_dir: ProjectFactory) -> None:
    rows = event_rows(START, 9, {"iOS": 10, "Android": 20})
    stall = (rows["time"] >= DROP.replace(tzinfo=None)) & (
        rows["time"] < (DROP + 4 * STEP).replace(tzinfo=None)
    )
    write_events(project_dir.root / "app.duckdb", rows[~stall])
    span = ("--from", "2024-05-09T11:00", "--to", "2024-05-09T15:00")
    code, out, err = vigil(project_dir, "replay", *span, "--no-notify")
    assert code == 0, err
    assert "No data" not in out
    store = DuckDBStore(project_dir.root / "vigil.duckdb")
    assert store.notification_rows() == []
    (project_dir.root / "vigil.duckdb").unlink()
    code, out, err = vigil(project_dir, "replay", *span)
    assert code == 0, err
    kinds = [r["title"] for r in DuckDBStore(project_dir.root / "vigil.duckdb").notification_rows()]
    assert kinds == ["No data: events", "Data is back: events"]


def test_replay_rejects_an_empty_range(project_dir: ProjectFactory) -> None:
    code, _, err = vigil(
        project_dir, "replay", "--from", "2024-05-09T13:00", "--to", "2024-05-09T11:00"
    )
    assert code == 1
    assert err.startswith("Error: --to (2024-05-09T11:00) must be after --from")


def test_backfill_with_progress_then_runs_and_graph(project_dir: ProjectFactory) -> None:
    code, out, err = vigil(
        project_dir,
        "backfill",
        "--from",
        "2024-05-08T00:00",
        "--to",
        "2024-05-08T06:00",
        "--metrics",
        "actions",
    )
    assert code == 0, err
    assert out == "Backfilled 24 buckets (0 already done): 72 checks, 0 anomalies.\n"
    assert "backfill" in err  # the progress bar
    code, out, _ = vigil(
        project_dir, "backfill", "--from", "2024-05-08T00:00", "--to", "2024-05-08T06:00"
    )
    assert out == "Backfilled 0 buckets (24 already done): 0 checks, 0 anomalies.\n"
    code, out, _ = vigil(project_dir, "runs", "--json")
    records = json.loads(out)
    assert {(r["kind"], r["stage"]) for r in records} == {
        ("backfill", "ingest"),
        ("backfill", "analyze"),
        ("backfill", "route"),
        ("backfill", "persist"),
        ("backfill", "commit"),
    }
    code, out, _ = vigil(project_dir, "runs")
    assert code == 0
    assert "backfill events" in out
    code, out, _ = vigil(project_dir, "graph", "--format", "mermaid")
    assert out.startswith("flowchart LR\n")


def test_backfill_rejects_unknown_metrics(project_dir: ProjectFactory) -> None:
    code, _, err = vigil(
        project_dir, "backfill", "--from", "2024-05-08", "--to", "2024-05-09", "--metrics", "nope"
    )
    assert code == 1
    assert err == "Error: unknown metric 'nope' in --metrics\n"


def test_notify_test_sends_to_a_channel_and_reports(
    project_dir: ProjectFactory, telegram: TelegramStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    vigil_yaml = (
        (project_dir.root / "vigil.yaml")
        .read_text()
        .replace(
            "  console: {type: console}\n",
            "  console: {type: console}\n"
            "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '5', api_url: '${TG_URL}'}\n",
        )
    )
    project_dir.write({"vigil.yaml": vigil_yaml})
    monkeypatch.setenv("TG_TOKEN", "9:tok")
    monkeypatch.setenv("TG_URL", telegram.url)
    code, out, _ = vigil(project_dir, "notify", "test", "tg")
    assert code == 0
    assert out == "Sent a test message to 'tg' (2 parts).\n"
    assert [c.method for c in telegram.calls] == ["sendMessage", "sendPhoto"]
    assert is_png(telegram.calls[1].files["photo"])
    telegram.fail_next(401, "Unauthorized")
    code, _, err = vigil(project_dir, "notify", "test", "tg")
    assert code == 1
    assert err == "Error: tg: telegram sendMessage: HTTP 401: Unauthorized\n"
    code, _, err = vigil(project_dir, "notify", "test", "nope")
    assert err == (
        "Error: unknown channel 'nope': vigil.yaml's channels are console, tg;"
        " add it under `channels:` (docs/channels.md)\n"
    )


def test_silence_add_list_expire(project_dir: ProjectFactory) -> None:
    code, out, err = vigil(
        project_dir,
        "silence",
        "add",
        "--metric",
        "actions",
        "--segment",
        "os=iOS",
        "--for",
        "2h",
        "--reason",
        "iOS release",
    )
    assert code == 0, err
    assert out.startswith("Silence 1: actions [os=iOS] until ")
    assert out.endswith(" (iOS release)\n")
    code, out, _ = vigil(project_dir, "silence", "list")
    assert "actions" in out
    assert "iOS release" in out
    code, out, _ = vigil(project_dir, "silence", "expire", "1")
    assert out == "Silence 1 expired.\n"
    code, out, _ = vigil(project_dir, "silence", "list")
    assert out == "No silences.\n"
    code, out, _ = vigil(project_dir, "silence", "list", "--all")
    assert "(expired)" in out
    code, _, err = vigil(project_dir, "silence", "expire", "1")
    assert (code, err) == (1, "Error: no active silence 1\n")
    code, _, err = vigil(
        project_dir,
        "silence",
        "add",
        "--metric",
        "x",
        "--segment",
        "os",
        "--for",
        "1h",
        "--reason",
        "r",
    )
    assert err == "Error: --segment 'os': expected key=value, e.g. os=iOS\n"


def test_store_migrate_status_then_prune(project_dir: ProjectFactory) -> None:
    code, out, _ = vigil(project_dir, "store", "migrate", "--status")
    assert code == 0
    assert out.startswith("Schema version 0 of ")
    assert "  pending 1: initial schema" in out
    code, out, _ = vigil(project_dir, "store", "migrate")
    assert "  applied 1: initial schema" in out
    newest = out.strip().splitlines()[-1]
    code, out, _ = vigil(project_dir, "store", "migrate")
    assert out.strip() == newest  # nothing left to apply
    code, out, _ = vigil(project_dir, "store", "prune")
    assert out == "No retention_days configured in the store settings; nothing to prune.\n"
    vigil(project_dir, "backfill", "--from", "2024-05-08T00:00", "--to", "2024-05-08T02:00")
    settings = VIGIL_YAML.replace("path: vigil.duckdb}", "path: vigil.duckdb, retention_days: 30}")
    project_dir.write({"vigil.yaml": settings})
    code, out, err = vigil(project_dir, "store", "prune")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert "  analysis_results: 24 rows deleted" in lines
    assert lines[-1].startswith("Pruned ")
    code, out, _ = vigil(project_dir, "alerts", "--json")
    assert json.loads(out) == []
