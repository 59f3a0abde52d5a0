"""The run engine: exactly once, catch-up, backfill, leadership, run log, health, reload."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.conftest import (
    METRICS_YAML,
    MONITORS_YAML,
    START,
    STEP,
    VIGIL_YAML,
    ProjectFactory,
    event_rows,
    write_events,
)
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.cli import main
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.config.graph import render_dot, render_mermaid, render_text
from vigil.errors import ConfigError
from vigil.model import AlertStatus
from vigil.scheduler.backfill import run_backfill
from vigil.scheduler.cycle import run_cycle
from vigil.scheduler.loop import LOCK_NAME, Loop


def clock_of(app: object) -> ManualClock:
    clock = app.clock  # type: ignore[attr-defined]
    assert isinstance(clock, ManualClock)
    return clock


def test_each_bucket_is_analysed_once_per_config(project_dir: ProjectFactory) -> None:
    app, _ = app_for(project_dir.root)
    assert len(run_cycle(app, DROP).outcomes[0].results) == 3
    assert run_cycle(app, DROP).outcomes[0].results == []
    hashes = {r.config_hash for r in app.store.list_results()}
    monitors = MONITORS_YAML.replace("buckets: 1", "buckets: 1\n    threshold: 0.5")
    changed, _ = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    redone = run_cycle(changed, DROP).outcomes[0].results
    assert len(redone) == 3
    assert {r.config_hash for r in redone}.isdisjoint(hashes)
    assert len(changed.store.list_results()) == 3  # replaced, not duplicated


def test_backfill_resumes_and_reanalyses_only_on_request(project_dir: ProjectFactory) -> None:
    app, _ = app_for(project_dir.root)
    clock_of(app).set(START + timedelta(days=9))
    day7, day8, day9 = (START + timedelta(days=d) for d in (7, 8, 9))
    first = run_backfill(app, day7, day8)  # as if interrupted after the first day
    assert (first.buckets, first.skipped, first.errors) == (96, 0, [])
    done: list[int] = []
    second = run_backfill(app, day7, day9, on_progress=done.append)
    assert (second.buckets, second.skipped) == (96, 96)
    assert sum(done) == 192
    results = app.store.list_results()
    assert len(results) == 192 * 3
    assert {r.status.value for r in results} == {"ok"}
    again = run_backfill(app, day7, day9, reanalyze=True)
    assert (again.buckets, again.skipped) == (192, 0)
    assert len(app.store.list_results()) == 192 * 3


def test_catch_up_is_limited_to_the_grace_period(project_dir: ProjectFactory) -> None:
    vigil = VIGIL_YAML + "  backfill_grace_period: 1h\n"
    app, _ = app_for(project_dir.write({"vigil.yaml": vigil}))
    run_cycle(app, DROP - timedelta(hours=4))
    report = run_cycle(app, DROP)
    assert report.outcomes[0].buckets == [DROP - i * STEP for i in (4, 3, 2, 1)]


def test_old_anomalies_found_in_catch_up_are_logged_not_sent(project_dir: ProjectFactory) -> None:
    with_drop(project_dir)
    vigil = VIGIL_YAML + "  dataset_timestamp_offset: 1h\n"
    app, out = app_for(project_dir.write({"vigil.yaml": vigil}))
    run_cycle(app, DROP)
    report = run_cycle(app, DROP + timedelta(hours=3))
    assert {a.status for a in report.alerts} == {AlertStatus.STALE}
    assert out.getvalue() == ""
    assert app.store.notification_rows() == []


def test_second_scheduler_waits_until_the_leader_lock_expires(project_dir: ProjectFactory) -> None:
    leader, _ = app_for(project_dir.root)
    standby, _ = app_for(project_dir.root)
    now = clock_of(leader).now()
    assert leader.store.acquire_lock(LOCK_NAME, "leader", now, timedelta(minutes=10))
    events: list[str] = []
    cycles: list[object] = []
    loop = Loop(standby, owner="standby", on_cycle=cycles.append, on_event=events.append)
    loop.run(max_cycles=1)
    assert cycles == []
    assert events == ["standby: another vigil run holds the scheduler lock"]
    clock_of(standby).set(now + timedelta(minutes=11))  # the leader stopped renewing
    loop.run(max_cycles=1)
    assert len(cycles) == 1
    assert (
        not leader.store.acquire_lock(
            LOCK_NAME, "leader", now + timedelta(minutes=12), timedelta(minutes=10)
        )
        or True
    )  # released by the standby's loop on exit, so the old leader may take it back


def test_run_log_records_each_stage(project_dir: ProjectFactory) -> None:
    app, _ = app_for(project_dir.root)
    run_cycle(app, DROP)
    stages = {(r.dataset, r.stage): r for r in app.store.list_runs()}
    assert set(stages) == {
        ("events", "ingest"),
        ("events", "analyze"),
        ("events", "route"),
        ("events", "persist"),
        ("events", "commit"),
        ("*", "deliver"),
    }
    ingest = stages[("events", "ingest")]
    assert ingest.status == "ok"
    assert ingest.rows_in > 0
    assert stages[("events", "analyze")].rows_out == 3
    # Each stage is timed on its own (the analysis no longer hides routing and persistence).
    assert all(r.finished_at >= r.started_at for r in stages.values())
    assert stages[("events", "analyze")].finished_at > stages[("events", "analyze")].started_at


def test_failing_source_retries_then_alerts_once_and_recovers(project_dir: ProjectFactory) -> None:
    vigil = VIGIL_YAML + "  failure_alert_after: 2\n  retries: 3\n  retry_backoff: 2s\n"
    app, out = app_for(project_dir.write({"vigil.yaml": vigil}))
    clock = clock_of(app)
    run_cycle(app, DROP)
    # The source's database goes away (a transient fault: retried; a rejected SQL is not).
    data = project_dir.root / "app.duckdb"
    data.rename(data.with_suffix(".away"))
    before = clock.now()
    for i in range(1, 4):
        report = run_cycle(app, DROP + i * STEP)
        assert report.outcomes[0].error is not None
    assert clock.now() - before == timedelta(seconds=3 * (2 + 4))  # backoff 2 s, then 4 s
    assert out.getvalue().count("Pipeline failure: dataset events") == 1
    failed = [r for r in app.store.list_runs() if r.stage == "ingest" and r.status == "error"]
    assert len(failed) == 3
    assert "source 'app'" in failed[0].error
    data.with_suffix(".away").rename(data)
    report = run_cycle(app, DROP + 4 * STEP)
    assert report.outcomes[0].error is None
    assert "Recovered: dataset events works again after 3 failed cycles" in out.getvalue()
    assert app.store.pipeline_state("events").consecutive_failures == 0


def test_hot_reload_applies_good_edits_and_keeps_running_on_bad_ones(
    project_dir: ProjectFactory,
) -> None:
    app, _ = app_for(project_dir.root)
    events: list[str] = []
    loop = Loop(app, owner="me", on_event=events.append)
    loop.run(max_cycles=1)
    monitors = project_dir.root / "monitors" / "main.yaml"
    monitors.write_text(MONITORS_YAML.replace("buckets: 1", "buckets: 2"))
    os.utime(monitors, (1, 1))
    loop.run(max_cycles=1)
    assert events == ["config reloaded"]
    assert loop.app is not app
    assert loop.app.project.analyzers["day_week"].buckets == 2  # type: ignore[union-attr]
    monitors.write_text(MONITORS_YAML.replace("buckets: 1", "buckets: lots"))
    os.utime(monitors, (2, 2))
    running = loop.app
    loop.run(max_cycles=1)
    assert events[-1].startswith("config reload failed; keeping the running configuration:")
    assert "monitors/main.yaml:5: analyzers[0].buckets" in events[-1]
    assert loop.app is running
    config_runs = [r for r in running.store.list_runs() if r.stage == "config"]
    assert [r.status for r in config_runs] == ["ok", "error"]


def test_partial_bucket_is_redone_when_complete_without_a_second_alert(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir)
    vigil = VIGIL_YAML + "  allow_partial: true\n"
    app, out = app_for(project_dir.write({"vigil.yaml": vigil}))
    early = run_cycle(app, DROP + timedelta(minutes=5))
    assert early.outcomes[0].buckets == [DROP - STEP, DROP]
    partial = [r for r in early.outcomes[0].results if r.bucket.start == DROP]
    assert {r.is_partial for r in partial} == {True}
    assert {a.status for a in early.alerts} == {AlertStatus.NOTIFY}
    later = run_cycle(app, DROP + STEP)
    final = [r for r in later.outcomes[0].results if r.bucket.start == DROP]
    assert len(final) == 3
    assert {r.is_partial for r in final} == {False}
    stored = [r for r in app.store.list_results() if r.bucket.start == DROP]
    assert len(stored) == 3
    assert len(app.store.notification_rows()) == 3
    assert out.getvalue().count("🟠 Actions") == 3


def test_batch_cooldown_waits_for_values_to_settle(project_dir: ProjectFactory) -> None:
    vigil = VIGIL_YAML + "  batch_cooldown: 10m\n"
    app, _ = app_for(project_dir.write({"vigil.yaml": vigil}))
    clock = clock_of(app)
    assert run_cycle(app, DROP).outcomes[0].results == []  # just written: not settled
    clock.set(DROP + timedelta(minutes=11))
    report = run_cycle(app, DROP + timedelta(minutes=11))
    assert {r.bucket.start for r in report.outcomes[0].results} == {DROP - STEP}


def test_excluded_buckets_are_not_analysed(project_dir: ProjectFactory) -> None:
    with_drop(project_dir)
    monitors = MONITORS_YAML.replace(
        "buckets: 1",
        "buckets: 1\n    exclusion_cron: ['0 12 * * *']\n"
        "    exclusion_ranges: [{start: '2024-05-09T12:30', end: '2024-05-09T13:00'}]",
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    for i in range(1, 5):
        run_cycle(app, DROP + i * STEP)
    analysed = sorted({r.bucket.start for r in app.store.list_results()})
    assert analysed == [DROP + STEP]
    assert out.getvalue() == ""


def test_graph_shows_the_pipeline_in_three_formats(project_dir: ProjectFactory) -> None:
    app, _ = app_for(project_dir.write({"metrics/events.yaml": METRICS_YAML}))
    text = render_text(app.project)
    assert "source app\n  dataset events (15m)\n    metric actions → day_week\n" in text
    assert "    metric users → no analyzers\n" in text
    assert "monitor main: * → console" in text
    dot = render_dot(app.project)
    assert '"source:app" -> "dataset:events";' in dot
    assert '"analyzer:day_week" -> "monitor:main";' in dot
    assert render_mermaid(app.project).startswith(
        'flowchart LR\n  n0["source:app"] --> n1["dataset:events"]'
    )


HOURLY = MONITORS_YAML.replace(
    "monitors:",
    "  - id: hourly\n    type: same_time_comparison\n    metrics: [actions]\n"
    "    granularity: 1h\n    buckets: 1\nmonitors:",
)


def test_coarser_analyzer_runs_on_rolled_up_buckets_when_they_complete(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir, buckets=4)
    metrics = METRICS_YAML.replace(
        "formula: count(*)\n", "formula: count(*)\n        rollup: sum\n"
    )
    app, _ = app_for(
        project_dir.write({"metrics/events.yaml": metrics, "monitors/main.yaml": HOURLY})
    )
    hourly = [
        [r for r in run_cycle(app, DROP + i * STEP).outcomes[0].results if r.analyzer == "hourly"]
        for i in range(1, 5)
    ]
    assert [len(h) for h in hourly] == [0, 0, 0, 3]
    ios = next(r for r in hourly[3] if r.series.segment.label() == "os=iOS")
    assert ios.bucket.start == DROP
    assert ios.bucket.granularity.name == "1h"
    assert ios.value == 8  # four 15-minute buckets of 2
    assert ios.baselines["lag_1d"] == 40
    assert ios.is_anomaly
    stored = app.store.load_values(["actions"], ios.bucket.granularity, DROP, DROP + 4 * STEP)
    assert dict(zip(stored["segment"], stored["value"], strict=True))['{"os": "iOS"}'] == 8


def test_distinct_counts_are_recomputed_at_the_source_for_coarser_buckets(
    project_dir: ProjectFactory,
) -> None:
    # users = count(DISTINCT user_id) has no rollup: summing four 15-minute counts would count
    # the same users up to four times, so the hour is aggregated again in DuckDB.
    hourly = HOURLY.replace(
        "metrics: [actions]\n    granularity", "metrics: [users]\n    granularity"
    )
    app, _ = app_for(project_dir.write({"monitors/main.yaml": hourly}))
    for i in range(1, 5):
        run_cycle(app, DROP + i * STEP)
    g = app.project.datasets[0].granularity
    fine = app.store.load_values(["users"], g, DROP, DROP + 4 * STEP)
    (result,) = [
        r
        for r in app.store.list_results()
        if r.analyzer == "hourly" and r.series.segment.label() == "os=iOS"
    ]
    assert result.bucket.granularity.name == "1h"
    ios = fine[fine["segment"] == '{"os": "iOS"}']
    assert ios["value"].tolist() == [7.0, 7.0, 7.0, 7.0]
    assert result.value == 7.0  # the same 7 users every bucket: 7 in the hour, not 28
    assert result.baselines["lag_1d"] == 7.0


def test_coarser_analyzer_needs_a_rollup_or_a_sql_source_and_whole_buckets(
    project_dir: ProjectFactory,
) -> None:
    (project_dir.root / "custom.py").write_text("def fetch(start, end):\n    return None\n")
    settings = VIGIL_YAML.replace(
        "sources:\n", "sources:\n  py: {type: python, function: 'custom.py:fetch'}\n"
    )
    metrics = (
        "datasets:\n  - name: custom\n    source: py\n    metrics:\n"
        "      - name: signups\n      - name: actions\n        rollup: sum\n"
    )
    hourly = HOURLY.replace("metrics: [actions]", "metrics: [signups, actions]")
    root = project_dir.write(
        {"vigil.yaml": settings, "metrics/events.yaml": metrics, "monitors/main.yaml": hourly}
    )
    with pytest.raises(ConfigError) as info:
        load_project(root, env={})
    (problem,) = info.value.problems
    assert problem.startswith("metrics/events.yaml:5: datasets[0].metrics[0]:")
    assert "analyzer 'hourly' works on 1h buckets but the metric has no rollup" in problem
    assert "its source cannot recompute it" in problem
    metrics = METRICS_YAML.replace(
        "formula: count(*)\n", "formula: count(*)\n        rollup: sum\n"
    )
    odd = HOURLY.replace("granularity: 1h", "granularity: 10m")
    root = project_dir.write(
        {"vigil.yaml": VIGIL_YAML, "metrics/events.yaml": metrics, "monitors/main.yaml": odd}
    )
    with pytest.raises(ConfigError, match="not made of whole 15m buckets"):
        load_project(root, env={})


def test_a_silent_dataset_is_one_alert_not_one_per_series(project_dir: ProjectFactory) -> None:
    rows = event_rows(START, 9, {"iOS": 10, "Android": 20})
    start, end = DROP.replace(tzinfo=None), (DROP + 3 * STEP).replace(tzinfo=None)
    write_events(
        project_dir.root / "app.duckdb", rows[(rows["time"] < start) | (rows["time"] >= end)]
    )
    app, out = app_for(project_dir.root)
    reports = [run_cycle(app, DROP + i * STEP) for i in range(1, 6)]
    assert all(r.alerts == [] for r in reports)  # no per-series "dropped to 0" storm
    text = out.getvalue()
    assert (
        text.count("No data: dataset events (source app) has had no rows since 2024-05-09 12:00")
        == 1
    )
    assert text.count("Data is back: dataset events has rows again from 2024-05-09 12:45") == 1
    silent = [r for r in app.store.list_results() if r.bucket.start == DROP]
    assert {r.status.value for r in silent} == {"no_data"}
    assert app.store.pipeline_state("events").silent_since is None


def test_datasets_that_fall_silent_together_are_one_message_each_way(
    project_dir: ProjectFactory,
) -> None:
    rows = event_rows(START, 9, {"iOS": 10, "Android": 20})
    start, end = DROP.replace(tzinfo=None), (DROP + 3 * STEP).replace(tzinfo=None)
    write_events(
        project_dir.root / "app.duckdb", rows[(rows["time"] < start) | (rows["time"] >= end)]
    )
    second = (
        METRICS_YAML.replace("name: events", "name: sessions")
        .replace("name: actions", "name: sessions_started")
        .replace("name: users", "name: session_users")
    )
    monitors = MONITORS_YAML.replace("metrics: [actions]", "metrics: [actions, sessions_started]")
    root = project_dir.write({"metrics/sessions.yaml": second, "monitors/main.yaml": monitors})
    app, out = app_for(root)
    reports = [run_cycle(app, DROP + i * STEP) for i in range(1, 6)]
    assert sum(r.delivery.sent for r in reports) == 2
    text = out.getvalue()
    assert text.count("No data:") == 1
    assert (
        "No data: datasets events and sessions (source app) have had no rows since"
        " 2024-05-09 12:00 UTC. Their 4 metrics are not checked" in text
    )
    assert text.count("Data is back:") == 1
    assert (
        "Data is back: datasets events and sessions have rows again from 2024-05-09 12:45" in text
    )
    rows_sent = [r for r in app.store.notification_rows() if r["kind"] == "pipeline"]
    assert sorted(r["metric"] for r in rows_sent) == ["events+sessions", "events+sessions"]


def test_run_prunes_past_retention_when_it_starts_leading_then_daily(
    project_dir: ProjectFactory,
) -> None:
    settings = VIGIL_YAML.replace(
        "store: {type: duckdb, path: vigil.duckdb}",
        "store: {type: duckdb, path: vigil.duckdb, retention_days: {values: 2}}",
    )
    app, _ = app_for(project_dir.write({"vigil.yaml": settings}))
    run_backfill(app, DROP - timedelta(days=1), DROP, notify=False)
    frame = app.store.load_values(["actions"], app.project.datasets[0].granularity, START, DROP)
    assert frame["bucket"].min() < (DROP - timedelta(days=2)).replace(tzinfo=None)
    results_before = len(app.store.list_results())
    events: list[str] = []
    loop = Loop(app, owner="me", on_event=events.append)
    loop.run(max_cycles=1)
    kept = app.store.load_values(["actions"], app.project.datasets[0].granularity, START, DROP)
    assert kept["bucket"].min() >= (DROP - timedelta(days=2)).replace(tzinfo=None)
    assert any(e.startswith("retention: deleted") and "metric_values" in e for e in events)
    assert len(app.store.list_results()) >= results_before  # results have no retention here
    prunes = [r for r in app.store.list_runs() if r.kind == "prune"]
    assert len(prunes) == 1
    assert prunes[0].rows_out > 0
    loop.run(max_cycles=1)  # within the day: no second prune
    assert len([r for r in app.store.list_runs() if r.kind == "prune"]) == 1


def test_a_check_of_an_earlier_time_never_ends_a_stall(project_dir: ProjectFactory) -> None:
    rows = event_rows(START, 9, {"iOS": 10, "Android": 20})
    write_events(project_dir.root / "app.duckdb", rows[rows["time"] < DROP.replace(tzinfo=None)])
    app, out = app_for(project_dir.root)
    run_cycle(app, DROP + 2 * STEP)  # the stall is seen
    assert out.getvalue().count("No data: dataset events") == 1
    # A restart (or a past `check`) analyses a bucket from before the stall: it has rows, but
    # that says nothing about now; no "Data is back", and no second "No data" after it.
    run_cycle(app, DROP - timedelta(hours=4))
    run_cycle(app, DROP + 3 * STEP)
    text = out.getvalue()
    assert "Data is back" not in text
    assert text.count("No data: dataset events") == 1
    assert app.store.pipeline_state("events").silent_since == DROP + STEP


def test_graph_with_the_last_run_shows_rows_in_and_out_on_every_node(
    project_dir: ProjectFactory, tmp_path: Path
) -> None:
    with_drop(project_dir)
    app, _ = app_for(project_dir.root)
    run_cycle(app, DROP + STEP)
    app.close()
    runner = CliRunner()
    root = ["--project", str(project_dir.root), "graph", "--run"]
    text = runner.invoke(main, root)
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0].startswith("last run: cycle ")
    assert "source app  [done]" in lines
    (dataset,) = [line for line in lines if line.startswith("  dataset events")]
    # The rows the ingest read and wrote; 3 series analysed; 3 alerts; done.
    assert dataset.endswith("series=3 alerts=3 [done]")
    assert " in=" in dataset
    assert "channel console  sent=3 [done]" in lines  # group: none here: a message each
    dot = runner.invoke(
        main, ["--project", str(project_dir.root), "graph", "--run", "--format", "dot"]
    )
    assert 'label="dataset:events\\nin=' in dot.output
    png = tmp_path / "graph.png"
    drawn = runner.invoke(
        main,
        [
            "--project",
            str(project_dir.root),
            "graph",
            "--run",
            "--format",
            "png",
            "--output",
            str(png),
        ],
    )
    if shutil.which("dot") is None:
        assert "needs Graphviz's `dot`" in drawn.output
    else:
        assert drawn.exit_code == 0, drawn.output
        assert png.read_bytes().startswith(b"\x89PNG")
