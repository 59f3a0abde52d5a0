"""One outage seen by two datasets in one cycle: one message, also across a restart."""

from __future__ import annotations

from tests.conftest import METRICS_YAML, STEP, ProjectFactory
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.model import AlertStatus
from vigil.scheduler.cycle import DatasetOutcome, plan_buckets, process_dataset, run_cycle

# A second dataset on the same events: the drop shows in both, on every slice.
TWO_DATASETS = (
    METRICS_YAML
    + """\
  - name: sessions
    source: app
    table: events
    time_column: time
    slices: [os]
    owners: ["@sessions_team"]
    metrics:
      - name: sessions
        formula: count(*)
"""
)


def monitors(group: str) -> str:
    return (
        "analyzers:\n"
        "  - {id: day_week, type: same_time_comparison, metrics: [actions, sessions],"
        " buckets: 1, min_significance: null}\n"
        "monitors:\n"
        f"  - {{id: main, analyzers: ['*'], channels: [console], group: {group}}}\n"
    )


def test_an_outage_in_two_datasets_is_one_message(project_dir: ProjectFactory) -> None:
    with_drop(project_dir)
    root = project_dir.write(
        {"metrics/events.yaml": TWO_DATASETS, "monitors/main.yaml": monitors("dataset")}
    )
    app, out = app_for(root)
    report = run_cycle(app, DROP + STEP)
    sent = [a for a in report.alerts if a.status is AlertStatus.NOTIFY]
    assert {a.result.series.metric for a in sent} == {"actions", "sessions"}
    assert len(sent) == 6  # total, iOS, Android in each dataset
    assert report.delivery.sent == 1
    text = out.getvalue()
    assert text.count("events + sessions: 6 anomalies in 2 metrics") == 1
    assert "Actions · os=iOS" in text
    assert "Sessions · os=Android" in text
    assert "@owner" in text
    assert "@sessions_team" in text
    statuses = sorted(r["status"] for r in app.store.notification_rows())
    assert statuses == ["merged", "sent"]  # the first dataset's message was never sent
    # The alerts list each series' delivery once, from the message that went out.
    deliveries = [d for row in app.store.list_alerts() for d in row.deliveries]
    assert {status for _, status, _ in deliveries} == {"sent"}
    # Nothing more for the same outage in the next bucket: both datasets are told.
    later = run_cycle(app, DROP + 2 * STEP)
    assert later.delivery.sent == 0


def test_group_none_keeps_one_message_per_series(project_dir: ProjectFactory) -> None:
    with_drop(project_dir)
    root = project_dir.write(
        {"metrics/events.yaml": TWO_DATASETS, "monitors/main.yaml": monitors("none")}
    )
    app, _ = app_for(root)
    assert run_cycle(app, DROP + STEP).delivery.sent == 6


def test_a_message_left_pending_by_a_crash_is_joined_not_doubled(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir)
    root = project_dir.write(
        {"metrics/events.yaml": TWO_DATASETS, "monitors/main.yaml": monitors("dataset")}
    )
    app, _ = app_for(root)
    events = app.project.datasets[0]
    at = DROP + STEP
    with app.session():  # the first dataset committed, then the process died before delivery
        process_dataset(app, events, plan_buckets(app, events, at), at, DatasetOutcome("events"))
    (pending,) = app.store.notification_rows()
    assert pending["status"] == "pending"
    restarted, out = app_for(root)
    report = run_cycle(restarted, at)
    assert report.outcomes[0].results == []  # the first dataset is not analysed again
    assert report.delivery.sent == 1
    assert out.getvalue().count("events + sessions: 6 anomalies") == 1
    assert sorted(r["status"] for r in restarted.store.notification_rows()) == ["merged", "sent"]
