"""Whole cycles on a real project: ingest, analyse, alert, deliver — exactly once."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd
import pytest

from tests.conftest import (
    METRICS_YAML,
    MONITORS_YAML,
    START,
    STEP,
    VIGIL_YAML,
    ProjectFactory,
    TelegramStandIn,
    WebStandIn,
    event_rows,
    is_png,
    write_events,
)
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.analysis.runner import _windows, analyze_dataset
from vigil.clock import ManualClock
from vigil.model import AlertStatus, ChatAction, Feedback, FeedbackLabel, Status
from vigil.notify.pipeline import expected_patterns
from vigil.scheduler.cycle import run_cycle
from vigil.store.duckdb import DuckDBStore


def test_steady_data_is_checked_without_alerts(project_dir: ProjectFactory) -> None:
    app, out = app_for(project_dir.root)
    report = run_cycle(app, DROP)
    (outcome,) = report.outcomes
    assert outcome.error is None
    assert outcome.buckets == [DROP - STEP]
    # 3 series (total, iOS, Android) × 1 analyzer
    assert len(outcome.results) == 3
    assert {r.status for r in outcome.results} == {Status.OK}
    assert report.alerts == []
    assert out.getvalue() == ""
    # Every check is logged, not only anomalies.
    assert len(app.store.list_results()) == 3


def test_drop_alerts_once_with_value_baselines_owners_and_links(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir)
    metrics = METRICS_YAML.replace(
        '    owners: ["@owner"]\n',
        '    owners: ["@owner"]\n    links: {dashboard: "https://bi/d?m={metric}&s={segment}"}\n',
    )
    app, out = app_for(project_dir.write({"metrics/events.yaml": metrics}))
    report = run_cycle(app, DROP + STEP)
    sent = [a for a in report.alerts if a.status is AlertStatus.NOTIFY]
    assert {(a.result.series.metric, a.result.series.segment.label()) for a in sent} == {
        ("actions", "total"),
        ("actions", "os=iOS"),
        ("actions", "os=Android"),
    }
    assert report.delivery.sent == 3
    text = out.getvalue()
    assert "Actions · os=iOS" in text
    assert "Value: 2 at 2024-05-09 12:00" in text
    assert "1d ago 10 (-80.0%), 1w ago 10 (-80.0%)" in text
    assert "Owners: @owner @ios" in text
    assert "dashboard: https://bi/d?m=actions&s=os%3DiOS" in text
    assert (project_dir.root / "charts").is_dir()
    rows = {r["segment"]: r for r in app.store.notification_rows()}
    ios = rows['{"os": "iOS"}']
    assert (ios["channel"], ios["status"], ios["recipients"]) == ("console", "sent", "@owner @ios")
    assert ios["sent_at"] is not None
    # The same cycle again neither re-analyses nor re-sends.
    again = run_cycle(app, DROP + STEP)
    assert again.outcomes[0].results == []
    assert again.delivery.sent == 0
    assert len(app.store.notification_rows()) == 3


def test_cooldown_keeps_a_continuing_incident_quiet(project_dir: ProjectFactory) -> None:
    with_drop(project_dir, buckets=3)
    app, _ = app_for(project_dir.root)
    statuses = []
    for i in range(1, 4):
        report = run_cycle(app, DROP + i * STEP)
        statuses.append({a.status for a in report.alerts})
    assert statuses == [{AlertStatus.NOTIFY}, {AlertStatus.COOLDOWN}, {AlertStatus.COOLDOWN}]
    assert len(app.store.notification_rows()) == 3


def test_quiet_hours_log_but_do_not_send(project_dir: ProjectFactory) -> None:
    with_drop(project_dir)
    vigil = VIGIL_YAML + "  quiet_hours: {start: '12:00', end: '12:30'}\n"
    app, out = app_for(project_dir.write({"vigil.yaml": vigil}))
    report = run_cycle(app, DROP + STEP)
    assert {a.status for a in report.alerts} == {AlertStatus.QUIET_HOURS}
    assert out.getvalue() == ""
    assert [r.status for r in app.store.list_alerts()] == ["quiet_hours"] * 3


def test_no_notify_mutes_but_keeps_cooldown(project_dir: ProjectFactory) -> None:
    with_drop(project_dir, buckets=2)
    app, out = app_for(project_dir.root)
    first = run_cycle(app, DROP + STEP, notify=False)
    second = run_cycle(app, DROP + 2 * STEP, notify=False)
    assert {a.status for a in first.alerts} == {AlertStatus.MUTED}
    assert {a.status for a in second.alerts} == {AlertStatus.COOLDOWN}
    assert out.getvalue() == ""
    assert app.store.notification_rows() == []


def without_ios_at_drop(project_dir: ProjectFactory) -> None:
    """Steady events, except that iOS sends nothing in the DROP bucket."""
    rows = event_rows(START, 9, {"iOS": 10, "Android": 20})
    start, end = DROP.replace(tzinfo=None), (DROP + STEP).replace(tzinfo=None)
    silent = (rows["os"] == "iOS") & (rows["time"] >= start) & (rows["time"] < end)
    write_events(project_dir.root / "app.duckdb", rows[~silent])


def test_vanished_series_is_zero_filled_and_alerts(project_dir: ProjectFactory) -> None:
    without_ios_at_drop(project_dir)
    app, _ = app_for(project_dir.root)
    report = run_cycle(app, DROP + STEP)
    ios = [
        r
        for r in report.outcomes[0].results
        if r.series.segment.label() == "os=iOS" and r.series.metric == "actions"
    ]
    assert ios[0].value == 0
    assert ios[0].status is Status.ANOMALY


def test_ratio_metrics_with_fill_missing_report_no_data(project_dir: ProjectFactory) -> None:
    metrics = METRICS_YAML.replace(
        "        formula: count(DISTINCT user_id)\n",
        "        formula: count(DISTINCT user_id)\n        fill: missing\n",
    )
    monitors = MONITORS_YAML.replace("metrics: [actions]", "metrics: [users]")
    without_ios_at_drop(project_dir)
    app, _ = app_for(
        project_dir.write({"metrics/events.yaml": metrics, "monitors/main.yaml": monitors})
    )
    report = run_cycle(app, DROP + STEP)
    (users_ios,) = [r for r in report.outcomes[0].results if r.series.segment.label() == "os=iOS"]
    assert users_ios.value is None
    assert users_ios.status is Status.NO_DATA
    assert report.alerts == []


def test_late_rows_are_picked_up_by_the_lookback(project_dir: ProjectFactory) -> None:
    app, _ = app_for(project_dir.root)
    run_cycle(app, DROP)
    late_bucket = DROP - 2 * STEP
    with duckdb.connect(str(project_dir.root / "app.duckdb")) as conn:
        conn.execute(
            "INSERT INTO events VALUES (?, 'iOS', 99)",
            [late_bucket.replace(tzinfo=None) + timedelta(minutes=1)],
        )
    run_cycle(app, DROP + STEP)
    values = app.store.load_values(
        ["actions"], app.project.datasets[0].granularity, late_bucket, late_bucket + STEP
    )
    assert dict(zip(values["segment"], values["value"], strict=True))['{"os": "iOS"}'] == 11


def test_missed_buckets_are_caught_up_after_downtime(project_dir: ProjectFactory) -> None:
    app, _ = app_for(project_dir.root)
    run_cycle(app, DROP - 4 * STEP)
    report = run_cycle(app, DROP)
    assert report.outcomes[0].buckets == [DROP - i * STEP for i in (4, 3, 2, 1)]
    analysed = {r.bucket.start for r in app.store.list_results()}
    assert analysed == {DROP - i * STEP for i in (5, 4, 3, 2, 1)}


def test_failing_source_is_reported_and_leaves_the_store_intact(
    project_dir: ProjectFactory,
) -> None:
    app, _ = app_for(project_dir.root)
    run_cycle(app, DROP)
    before = len(app.store.list_results())
    with duckdb.connect(str(project_dir.root / "app.duckdb")) as conn:
        conn.execute("ALTER TABLE events RENAME COLUMN user_id TO uid")
    report = run_cycle(app, DROP + STEP)
    assert report.outcomes[0].error is not None
    assert "dataset 'events'" in report.outcomes[0].error
    assert "user_id" in report.outcomes[0].error
    assert len(app.store.list_results()) == before


def test_sql_the_engine_rejects_is_reported_at_once_not_retried(
    project_dir: ProjectFactory, caplog: pytest.LogCaptureFixture
) -> None:
    app, _ = app_for(project_dir.root)
    run_cycle(app, DROP)
    with duckdb.connect(str(project_dir.root / "app.duckdb")) as conn:
        conn.execute("ALTER TABLE events RENAME COLUMN user_id TO uid")
    with caplog.at_level("WARNING"):
        report = run_cycle(app, DROP + STEP)
    assert report.outcomes[0].error is not None
    assert "retrying" not in caplog.text
    assert "source failed (attempt" not in caplog.text  # a typo is not a flaky connection
    assert caplog.text.count("SQL:") <= 1


def test_telegram_alert_carries_text_and_chart(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    with_drop(project_dir)
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n"
        "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '42', api_url: '${TG_URL}'}\n",
    )
    monitors = MONITORS_YAML.replace("channels: [console]", "channels: [tg]")
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    app, _ = app_for(root, env={"TG_TOKEN": "777:token-xyz", "TG_URL": telegram.url})
    report = run_cycle(app, DROP + STEP)
    assert report.delivery.sent == 3
    methods = [c.method for c in telegram.calls]
    assert methods == ["sendMessage", "sendPhoto"] * 3
    texts = [c.fields["text"] for c in telegram.calls if c.method == "sendMessage"]
    ios = next(t for t in texts if "os=iOS" in t)
    assert "<b>Actions</b>" in ios
    assert "Value: <b>2</b>" in ios
    assert "@owner @ios" in ios
    photos = [c.files["photo"] for c in telegram.calls if c.method == "sendPhoto"]
    assert all(is_png(p) for p in photos)
    assert all(c.token == "777:token-xyz" for c in telegram.calls)


def test_results_commit_with_their_alerts_and_notifications(project_dir: ProjectFactory) -> None:
    """A crash after analysis but before the outbox write leaves no trace, so a rerun alerts."""
    with_drop(project_dir)
    app, _ = app_for(project_dir.root)
    original = app.store.enqueue

    def crash(_: object) -> int:
        raise KeyboardInterrupt("killed mid-cycle")

    app.store.enqueue = crash  # type: ignore[method-assign]
    with contextlib.suppress(KeyboardInterrupt):
        run_cycle(app, DROP + STEP)
    assert app.store.list_results() == []
    app.store.enqueue = original  # type: ignore[method-assign]
    report = run_cycle(app, DROP + STEP)
    assert report.delivery.sent == 3


def test_loop_runs_at_bucket_boundaries_plus_delay(project_dir: ProjectFactory) -> None:
    from vigil.scheduler.loop import run_loop

    vigil = VIGIL_YAML.replace("delay: 0m", "delay: 2m")
    app, _ = app_for(project_dir.write({"vigil.yaml": vigil}))
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.set(DROP + timedelta(minutes=7))
    seen: list[datetime] = []
    run_loop(app, on_cycle=lambda r: seen.append(r.at), max_cycles=3)
    assert seen == [
        DROP + timedelta(minutes=7),
        DROP + STEP + timedelta(minutes=2),
        DROP + 2 * STEP + timedelta(minutes=2),
    ]


def test_silences_and_monitor_filters_keep_alerts_logged_but_unsent(
    project_dir: ProjectFactory,
) -> None:
    from vigil.model import Silence

    with_drop(project_dir)
    monitors = MONITORS_YAML.replace(
        "channels: [console]", "channels: [console]\n    segments: slices"
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    app.store.add_silence(
        Silence("act*", {"os": "iOS"}, DROP, DROP + timedelta(hours=1), "known iOS release")
    )
    report = run_cycle(app, DROP + STEP)
    statuses = {a.result.series.segment.label(): a.status for a in report.alerts}
    assert statuses == {"os=iOS": AlertStatus.SILENCED, "os=Android": AlertStatus.NOTIFY}
    assert out.getvalue().count("🟠 Actions") == 1
    assert "os=Android" in out.getvalue()


def test_incident_opens_extends_and_resolves_with_one_message_each(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir, buckets=3)
    monitors = MONITORS_YAML.replace(
        "channels: [console]", "channels: [console]\n    segments: total\n    resolve_after: 2"
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    for i in range(1, 7):
        run_cycle(app, DROP + i * STEP)
    (incident,) = app.store.list_incidents()
    assert incident.status == "resolved"
    assert (incident.opened_bucket, incident.last_anomaly_bucket) == (DROP, DROP + 2 * STEP)
    assert incident.resolved_bucket == DROP + 4 * STEP
    text = out.getvalue()
    assert text.count("🟠 Actions · total") == 1  # extended, not re-sent
    # One resolve message for the message that told it, with when it became normal again.
    assert text.count("✅ Resolved: Actions · total") == 1
    assert (
        "✅ Resolved: Actions · total — normal again from 2024-05-09 12:45 UTC, after 45 min"
        in (text)
    )


def test_growing_deviation_renotifies_within_cooldown(project_dir: ProjectFactory) -> None:
    drop = {DROP: 0.5, DROP + STEP: 0.1}
    write_events(
        project_dir.root / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}, drop)
    )
    monitors = MONITORS_YAML.replace(
        "channels: [console]", "channels: [console]\n    segments: total\n    renotify_factor: 1.5"
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    first = run_cycle(app, DROP + STEP)
    second = run_cycle(app, DROP + 2 * STEP)
    assert [a.status for a in first.alerts] == [AlertStatus.NOTIFY]
    assert [a.status for a in second.alerts] == [AlertStatus.NOTIFY]  # -90% after -50%
    assert out.getvalue().count("🟠 Actions · total") == 2


def test_digest_sends_one_message_per_run_with_the_top_anomalies_in_detail(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir)
    monitors = MONITORS_YAML.replace(
        "channels: [console]", "channels: [console]\n    mode: DIGEST\n    digest_top: 1"
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    report = run_cycle(app, DROP + STEP)
    assert report.delivery.sent == 1
    (row,) = app.store.notification_rows()
    assert row["title"] == "test project: 3 anomalies in 1 metric · main"
    text = out.getvalue()
    assert text.count("📋 test project: 3 anomalies in 1 metric · main") == 1
    assert text.count("Value: ") == 1  # one in detail
    assert "Also anomalous:\nActions: " in text
    assert text.count("os=") >= 2


TEMPLATED = MONITORS_YAML.replace(
    "channels: [console]",
    "channels: [console, tg]\n    segments: total\n"
    "    template:\n"
    '      text: "{{ metric_title }} {{ segment_label }}: {{ value }}'
    " ({{ '%+.0f' % anomalies[0].deviation_pct }}%) {{ mentions }}\"\n"
    "    channel_templates:\n"
    "      tg:\n"
    "        html: \"<b>{{ metric_title }}</b> {{ links.get('x', '<none>') }} {{ value }}\"\n",
)
TG_VIGIL = VIGIL_YAML.replace(
    "  console: {type: console}\n",
    "  console: {type: console}\n"
    "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '1', api_url: '${TG_URL}'}\n",
)


def test_templates_per_monitor_and_channel_keep_the_chart(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    with_drop(project_dir)
    root = project_dir.write({"vigil.yaml": TG_VIGIL, "monitors/main.yaml": TEMPLATED})
    app, out = app_for(root, env={"TG_TOKEN": "1:t", "TG_URL": telegram.url})
    run_cycle(app, DROP + STEP)
    assert out.getvalue() == "\nActions total: 6.0 (-80%) @owner\n"
    message, photo = telegram.calls
    assert message.fields["text"] == "<b>Actions</b> &lt;none&gt; 6.0"  # HTML is escaped
    assert is_png(photo.files["photo"])


def test_unsafe_template_falls_back_to_the_default_message(project_dir: ProjectFactory) -> None:
    with_drop(project_dir)
    monitors = MONITORS_YAML.replace(
        "channels: [console]",
        "channels: [console]\n    segments: total\n"
        "    template: {text: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"}\n",
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    run_cycle(app, DROP + STEP)
    assert "🟠 Actions · total\nValue: 6 at" in out.getvalue()


def test_template_syntax_errors_are_config_errors(project_dir: ProjectFactory) -> None:
    from vigil.config import load_project
    from vigil.errors import ConfigError

    monitors = MONITORS_YAML.replace(
        "channels: [console]", "channels: [console]\n    template: {text: '{{ metric '}\n"
    )
    root = project_dir.write({"monitors/main.yaml": monitors})
    try:
        load_project(root, env={})
    except ConfigError as e:
        (problem,) = e.problems
    else:
        raise AssertionError("expected a ConfigError")
    assert problem.startswith("monitors/main.yaml:11: monitors[0].template: invalid template text")


def test_escalated_severity_routes_to_its_channels_with_channel_mentions(
    project_dir: ProjectFactory, telegram: TelegramStandIn, web: WebStandIn
) -> None:
    with_drop(project_dir)  # -80%
    vigil = TG_VIGIL.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n"
        "  slack:\n    type: slack\n    webhook_url: '${SLACK_HOOK}'\n"
        "    mentions: {'@owner': '<@U0OWNER>'}\n",
    )
    monitors = MONITORS_YAML.replace(
        "channels: [console]",
        "channels: [console]\n    segments: total\n"
        "    escalations: [{min_deviation: 0.5, severity: critical}]\n"
        "    routes: {critical: [slack, tg]}",
    )
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    env = {"TG_TOKEN": "1:t", "TG_URL": telegram.url, "SLACK_HOOK": f"{web.url}/hook"}
    app, out = app_for(root, env=env)
    report = run_cycle(app, DROP + STEP)
    assert [a.severity.value for a in report.alerts] == ["critical"]
    assert out.getvalue() == ""  # critical goes to slack and telegram only
    (slack_post,) = web.requests
    assert "Owners: <@U0OWNER>" in slack_post.json()["text"]
    assert "🔴" in slack_post.json()["text"]
    assert "Owners: @owner" in telegram.calls[0].fields["text"]
    (row,) = app.store.list_alerts()
    assert sorted(c for c, _, _ in row.deliveries) == ["slack", "tg"]


def test_alerts_show_failed_deliveries(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    from click.testing import CliRunner

    from vigil.cli import main

    with_drop(project_dir)
    monitors = MONITORS_YAML.replace("channels: [console]", "channels: [tg]\n    segments: total")
    root = project_dir.write({"vigil.yaml": TG_VIGIL, "monitors/main.yaml": monitors})
    env = {"TG_TOKEN": "1:t", "TG_URL": telegram.url}
    app, _ = app_for(root, env=env)
    telegram.fail_next(400, "Bad Request: chat not found")
    run_cycle(app, DROP + STEP)
    result = CliRunner(env=env).invoke(main, ["--project", str(root), "alerts", "--json"])
    (alert,) = json.loads(result.stdout)
    assert alert["deliveries"] == [
        {
            "channel": "tg",
            "status": "gave_up",
            "error": "telegram sendMessage: HTTP 400: Bad Request: chat not found",
        }
    ]
    text = CliRunner(env=env).invoke(main, ["--project", str(root), "alerts"]).stdout
    assert "    tg: gave_up: telegram sendMessage: HTTP 400: Bad Request: chat not found" in text


def test_an_alert_marked_expected_quiets_that_time_of_day_until_the_verdict_changes(
    project_dir: ProjectFactory,
) -> None:
    nightly = {DROP - timedelta(days=d): 0.2 for d in (0, 1)}  # the same dip two days running
    write_events(
        project_dir.root / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}, nightly)
    )
    monitors = MONITORS_YAML.replace(
        "buckets: 1", "buckets: 1\n    lags: [7d]\n    segments: total"
    )
    app, _ = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    first = run_cycle(app, DROP - timedelta(days=1) + STEP)
    (alert,) = first.alerts
    assert alert.status is AlertStatus.NOTIFY
    r = alert.result
    app.store.save_feedback(
        Feedback("main", r.analyzer, r.series, r.bucket, FeedbackLabel.EXPECTED, "nightly batch")
    )
    (quiet,) = run_cycle(app, DROP + STEP).alerts
    assert quiet.status is AlertStatus.EXPECTED  # logged, not sent
    assert quiet.result.is_anomaly
    app.store.save_feedback(
        Feedback("main", r.analyzer, r.series, r.bucket, FeedbackLabel.TRUE_ANOMALY, "not batch")
    )
    assert expected_patterns(app.store, "UTC") == set()  # the latest verdict lifts it


def test_reading_only_the_analyzers_windows_gives_the_results_of_a_whole_history_read(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir, buckets=3)
    monitors = MONITORS_YAML.replace(
        "monitors:",
        "  - {id: band, type: stddev, metrics: [actions]}\n"
        "  - {id: floor, type: fixed, metrics: [actions], lower: 5, n_consecutive: 2}\n"
        "  - {id: lagged, type: diff, metrics: [actions], threshold: 3,"
        " baseline: {type: lagged, lags: [1d]}}\n"
        "monitors:",
    )
    app, _ = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    for k in range(4):
        run_cycle(app, DROP + k * STEP)
    dataset = app.project.datasets[0]
    actions = app.project.metric("actions")
    jobs = [(actions, a) for a in actions.analyzers]
    windows = _windows(jobs, dataset.granularity, DROP)
    assert windows is not None
    assert len(windows) == 2  # a week ago; a day ago up to now (the stddev's 96 buckets)

    class WholeHistory(DuckDBStore):
        """The same store file, but every load reads the analyzers' whole history."""

        def load_cells(self, *args: Any, windows: object = None, **kwargs: Any) -> Any:
            return super().load_cells(*args, **kwargs)

    assert isinstance(app.store, DuckDBStore)
    whole = WholeHistory(app.store.path)
    for k in range(4):
        bucket = DROP + (k - 1) * STEP
        with app.session():
            windowed = analyze_dataset(dataset, app.store, bucket, reanalyze=True)
        with whole.session():
            full = analyze_dataset(dataset, whole, bucket, reanalyze=True)
        assert windowed == full
        assert {r.analyzer for r in windowed} == {"day_week", "band", "floor", "lagged"}
    assert any(r.is_anomaly for r in windowed)


def test_metrics_named_like_the_pipelines_columns_are_ingested_and_checked(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir)
    names = ["value", "segment", "bucket", "metric"]
    metrics = (
        METRICS_YAML.split("    metrics:\n")[0]
        + "    metrics:\n"
        + "".join(
            f"      - name: {name}\n        formula: count(*) + {i}\n"
            for i, name in enumerate(names)
        )
    )
    monitors = MONITORS_YAML.replace("metrics: [actions]", 'metrics: ["*"]')
    app, _ = app_for(
        project_dir.write({"metrics/events.yaml": metrics, "monitors/main.yaml": monitors})
    )
    report = run_cycle(app, DROP + STEP)
    (outcome,) = report.outcomes
    assert outcome.error is None
    # 4 metrics × (total, iOS, Android)
    assert len(outcome.results) == 12
    assert {r.series.metric for r in outcome.anomalies} == set(names)
    values = {(r.series.metric, r.series.segment.label()): r.value for r in outcome.results}
    assert values[("value", "os=iOS")] == 2  # a fifth of 10
    assert values[("metric", "os=iOS")] == 5  # 2 + 3


def test_one_incident_is_one_message_across_metrics_slices_and_analyzers(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    with_drop(project_dir)
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n"
        "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '42', api_url: '${TG_URL}'}\n",
    )
    monitors = (
        "analyzers:\n"
        "  - {id: day_week, type: same_time_comparison, metrics: ['*'], buckets: 1,"
        " min_significance: null}\n"
        "  - {id: floor, type: fixed, metrics: [actions], lower: 5}\n"
        "monitors:\n"
        "  - {id: main, analyzers: ['*'], channels: [tg]}\n"
    )
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    app, _ = app_for(root, env={"TG_TOKEN": "777:token-xyz", "TG_URL": telegram.url})
    report = run_cycle(app, DROP + STEP)
    sent = [a for a in report.alerts if a.status is AlertStatus.NOTIFY]
    # Every series of both metrics dropped; two analyzers agree on actions.
    assert {(a.result.series.metric, a.result.series.segment.label()) for a in sent} == {
        (m, s) for m in ("actions", "users") for s in ("total", "os=iOS", "os=Android")
    }
    assert len(sent) > 6
    assert report.delivery.sent == 1
    assert [c.method for c in telegram.calls] == ["sendMessage", "sendPhoto"]
    text = telegram.calls[0].fields["text"]
    assert text.startswith(
        "🟠 <b>events: 6 anomalies in 2 metrics</b> — Actions -80%, Users -71…-43%"
    )
    assert text.count("• ") == 6  # each series once, however many analyzers fired
    assert "[day_week, floor]" in text
    # Android has 20 of the 30 actions: it explains 16 of the total's 24 lost.
    assert "\nos=Android explains 67% of the total drop in Actions\n" in text
    assert "in Users" not in text  # distinct users do not add up over slices
    # buckets: 1 — the compared value is the bucket's own: no separate mean.
    assert "• Actions · total: 6 (expected" in text
    assert "Owners: @owner @ios" in text
    (row,) = app.store.notification_rows()
    assert row["kind"] == "incident"
    # Logged per series: every member is in cooldown like a series alerted on its own.
    later = run_cycle(app, DROP + 2 * STEP)
    assert later.delivery.sent == 0


@pytest.mark.parametrize(("group", "messages"), [("none", 3), ("monitor", 1), ("dataset", 1)])
def test_group_decides_how_many_messages_one_drop_sends(
    project_dir: ProjectFactory, group: str, messages: int
) -> None:
    with_drop(project_dir)
    monitors = MONITORS_YAML.replace("    group: none", f"    group: {group}")
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    report = run_cycle(app, DROP + STEP)
    assert len(report.sent_alerts) == 3  # total, iOS, Android: each logged on its own
    assert report.delivery.sent == messages
    assert out.getvalue().count("os=iOS") >= 1


def test_a_series_joining_an_incident_already_told_is_held_not_sent_again(
    project_dir: ProjectFactory,
) -> None:
    rows = event_rows(START, 9, {"iOS": 10, "Android": 20})
    first_bucket = (rows["time"] >= DROP.replace(tzinfo=None)) & (
        rows["time"] < (DROP + STEP).replace(tzinfo=None)
    )
    second_bucket = (rows["time"] >= (DROP + STEP).replace(tzinfo=None)) & (
        rows["time"] < (DROP + 2 * STEP).replace(tzinfo=None)
    )
    # 12:00 iOS falls to a fifth; 12:15 Android falls too (and with it the total).
    thin = (rows["user_id"] >= 2) & ((first_bucket & (rows["os"] == "iOS")) | second_bucket)
    write_events(project_dir.root / "app.duckdb", rows[~thin])
    monitors = MONITORS_YAML.replace("    group: none", "    group: dataset")
    app, _ = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    first = run_cycle(app, DROP + STEP)
    assert {a.result.series.segment.label() for a in first.sent_alerts} == {"os=iOS"}
    assert first.delivery.sent == 1
    # Next bucket: Android and the total drop. They join the incident told 15 minutes ago:
    # logged, held, no second message.
    later = run_cycle(app, DROP + 2 * STEP)
    joined = {a.result.series.segment.label(): a.status for a in later.alerts}
    assert joined == {
        "os=iOS": AlertStatus.COOLDOWN,
        "os=Android": AlertStatus.COOLDOWN,
        "total": AlertStatus.COOLDOWN,
    }
    assert later.delivery.sent == 0


TWO_MONITORS = """\
analyzers:
  - {id: day_week, type: same_time_comparison, metrics: ['*'], buckets: 1, min_significance: null}
  - {id: floor, type: fixed, metrics: [actions], lower: 5}
monitors:
  - {id: product, analyzers: [day_week], channels: [tg], severity: high}
  - {id: guard, analyzers: [floor], channels: [%s], severity: critical}
"""


@pytest.mark.parametrize(("guard_channels", "messages"), [("tg", 1), ("console", 2)])
def test_monitors_that_tell_one_channel_about_one_incident_send_it_one_message(
    project_dir: ProjectFactory, telegram: TelegramStandIn, guard_channels: str, messages: int
) -> None:
    with_drop(project_dir)
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n"
        "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '42', api_url: '${TG_URL}'}\n",
    )
    root = project_dir.write(
        {"vigil.yaml": vigil, "monitors/main.yaml": TWO_MONITORS % guard_channels}
    )
    app, out = app_for(root, env={"TG_TOKEN": "777:token-xyz", "TG_URL": telegram.url})
    report = run_cycle(app, DROP + STEP)
    sent = [a for a in report.alerts if a.status is AlertStatus.NOTIFY]
    assert {a.monitor for a in sent} == {"product", "guard"}
    assert report.delivery.sent == messages
    texts = [c.fields["text"] for c in telegram.calls if c.method == "sendMessage"]
    assert len(texts) == 1  # Telegram hears of the incident once, whoever routed it
    if guard_channels == "tg":
        assert texts[0].startswith("🔴 <b>events: 6 anomalies in 2 metrics</b>")  # critical
        assert "[day_week, floor]" in texts[0]  # the two monitors' analyzers, one member
        (row,) = app.store.notification_rows()
        assert row["kind"] == "incident"
    else:  # the console hears only what its monitor routes: actions below the floor
        assert "[floor]" not in texts[0]
        assert "Actions" in out.getvalue()
    later = run_cycle(app, DROP + 2 * STEP)
    assert later.delivery.sent == 0


def test_one_series_flagged_by_two_monitors_is_one_message(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir)
    monitors = (
        "analyzers:\n"
        "  - {id: day_week, type: same_time_comparison, metrics: [actions], buckets: 1,"
        " segments: total}\n"
        "  - {id: floor, type: fixed, metrics: [actions], lower: 10, segments: total}\n"
        "monitors:\n"
        "  - {id: product, analyzers: [day_week], channels: [console]}\n"
        "  - {id: guard, analyzers: [floor], channels: [console]}\n"
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    report = run_cycle(app, DROP + STEP)
    assert {a.monitor for a in report.sent_alerts} == {"product", "guard"}
    assert report.delivery.sent == 1
    text = out.getvalue()
    assert text.count("Actions · total") == 1
    assert "day_week (same_time_comparison)" in text
    assert "floor (fixed)" in text


def test_an_incident_that_doubles_gets_one_follow_up_not_a_message_per_bucket(
    project_dir: ProjectFactory,
) -> None:
    rows = event_rows(START, 9, {"iOS": 10, "Android": 20})
    t = rows["time"]

    def bucket(k: int) -> pd.Series:
        return (t >= (DROP + k * STEP).replace(tzinfo=None)) & (
            t < (DROP + (k + 1) * STEP).replace(tzinfo=None)
        )

    # 12:00 iOS falls (actions and users: 2 series); from 12:15 everything (6 series).
    thin = (rows["user_id"] >= 2) & (
        (bucket(0) & (rows["os"] == "iOS")) | bucket(1) | bucket(2) | bucket(3)
    )
    write_events(project_dir.root / "app.duckdb", rows[~thin])
    monitors = MONITORS_YAML.replace("    group: none", "    group: dataset").replace(
        "metrics: [actions]", 'metrics: ["*"]'
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    first = run_cycle(app, DROP + STEP)
    assert {a.result.series.label() for a in first.sent_alerts} == {
        "actions [os=iOS]",
        "users [os=iOS]",
    }
    assert first.delivery.sent == 1
    grown = run_cycle(app, DROP + 2 * STEP)
    assert grown.delivery.sent == 1
    assert "🟠 Growing: events on os=Android: 4 anomalies in 2 metrics" in out.getvalue()
    assert len(grown.sent_alerts) >= 3
    later = [run_cycle(app, DROP + k * STEP) for k in (3, 4)]
    assert sum(r.delivery.sent for r in later) == 0  # no doubling again: held


def test_an_acknowledged_incident_gets_no_growing_follow_up(project_dir: ProjectFactory) -> None:
    rows = event_rows(START, 9, {"iOS": 10, "Android": 20})
    t = rows["time"]
    first_bucket = (t >= DROP.replace(tzinfo=None)) & (t < (DROP + STEP).replace(tzinfo=None))
    later = t >= (DROP + STEP).replace(tzinfo=None)
    # 12:00 iOS falls (2 series); from 12:15 everything (6 series): a doubling.
    thin = (rows["user_id"] >= 2) & ((first_bucket & (rows["os"] == "iOS")) | later)
    write_events(project_dir.root / "app.duckdb", rows[~thin])
    monitors = MONITORS_YAML.replace("    group: none", "    group: dataset").replace(
        "metrics: [actions]", 'metrics: ["*"]'
    )
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    assert run_cycle(app, DROP + STEP).delivery.sent == 1
    (told,) = app.store.told(DROP - STEP)
    app.store.record_action(
        ChatAction("tg:1", "tg", 1, told.key, "ack", "@anna", "✔ Acknowledged", DROP)
    )
    grown = run_cycle(app, DROP + 2 * STEP)
    assert grown.delivery.sent == 0  # they know: no "Growing" message
    assert "Growing" not in out.getvalue()


def test_group_by_splits_one_drop_into_a_message_per_os(project_dir: ProjectFactory) -> None:
    with_drop(project_dir)
    monitors = MONITORS_YAML.replace(
        "    group: none", "    group: dataset\n    group_by: [os]"
    ).replace("metrics: [actions]", 'metrics: ["*"]')
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    report = run_cycle(app, DROP + STEP)
    assert len(report.sent_alerts) == 6  # actions and users × total, iOS, Android
    assert report.delivery.sent == 3
    text = out.getvalue()
    for part in ("events on os=iOS: 2 anomalies", "events on os=Android: 2 anomalies"):
        assert part in text
    assert "events: 2 anomalies in 2 metrics" in text  # the total's message
    assert run_cycle(app, DROP + 2 * STEP).delivery.sent == 0
