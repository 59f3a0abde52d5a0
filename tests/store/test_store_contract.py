"""The metric store contract, run on every backend: DuckDB (a real file), PostgreSQL and
ClickHouse."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.store.backends import STORE_BACKENDS, make_store, reopen
from vigil.model import (
    Alert,
    AlertStatus,
    AnalysisResult,
    Bucket,
    ChatAction,
    DeliveryStatus,
    Feedback,
    FeedbackLabel,
    Incident,
    Notification,
    PipelineState,
    RunRecord,
    Segment,
    SeriesKey,
    Severity,
    Silence,
    Status,
)
from vigil.store.duckdb import DuckDBStore
from vigil.store.migrations import MIGRATIONS
from vigil.store.sql import SQLStore
from vigil.timeutil import Granularity

G = Granularity.parse("15m")
T0 = datetime(2024, 5, 1, tzinfo=UTC)
IOS = SeriesKey("likes", Segment.of({"os": "iOS"}))


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    with make_store(request.param, tmp_path, clock=lambda: T0) as made:
        made.migrate()
        yield made


def values(*rows: tuple[str, str, datetime, float]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["metric", "segment", "bucket", "value"])
    frame["bucket"] = pd.to_datetime(frame["bucket"]).dt.tz_localize(None).astype("datetime64[us]")
    return frame


def result(bucket: datetime, status: Status = Status.ANOMALY, value: float = 1.0) -> AnalysisResult:
    return AnalysisResult(
        analyzer="a",
        analyzer_type="fixed",
        series=IOS,
        bucket=Bucket(bucket, G),
        value=value,
        status=status,
        expected_lower=2.0,
        expected_upper=None,
        deviation=-0.5,
        baselines={"mean": 2.0},
        reason="below",
        config_hash="h",
    )


def test_migrations_are_versioned_and_run_once(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    assert store.migrate() == [f"{m.version}: {m.name}" for m in MIGRATIONS]
    assert store.migrate() == []
    assert store.schema_version() == MIGRATIONS[-1].version


def test_upgrade_keeps_existing_rows(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "old.duckdb")
    store.migrate(MIGRATIONS[:1])
    with store.session() as conn:
        conn.execute(
            "INSERT INTO notifications VALUES ('k', 'm', 'console', 'likes', '{}', 900,"
            " '2024-05-01', 't', 'x', 'x', NULL, 'sent', 1, 1, '', '2024-05-01', '2024-05-01')"
        )
    assert store.migrate() == [f"{m.version}: {m.name}" for m in MIGRATIONS[1:]]
    (row,) = store.notification_rows()
    assert (row["key"], row["status"], row["recipients"]) == ("k", "sent", "")


def test_upsert_replaces_late_or_corrected_values(store: SQLStore) -> None:
    store.upsert_values(values(("likes", IOS.segment.key, T0, 5.0)), G)
    store.upsert_values(values(("likes", IOS.segment.key, T0, 7.0), ("likes", "{}", T0, 9.0)), G)
    loaded = store.load_values(["likes"], G, T0, T0 + timedelta(hours=1))
    assert dict(zip(loaded["segment"], loaded["value"], strict=True)) == {
        "{}": 9.0,
        IOS.segment.key: 7.0,
    }


def test_cells_hold_the_same_values_as_the_long_rows(store: SQLStore) -> None:
    android = Segment.of({"os": "Android"}).key
    store.upsert_values(
        values(
            ("likes", IOS.segment.key, T0, 5.0),
            ("likes", "{}", T0 + timedelta(minutes=15), 9.0),
            ("likes", android, T0, float("nan")),
            ("views", "{}", T0, 3.0),
            ("likes", "{}", T0 - timedelta(hours=1), 1.0),  # outside the window
        ),
        G,
    )
    end = T0 + timedelta(hours=1)
    cells = store.load_cells(["likes", "views"], G, T0, end)
    likes = cells["likes"]
    assert likes.segments == sorted(["{}", IOS.segment.key, android])
    found = {
        (likes.segments[r], str(b)): v
        for r, b, v in zip(likes.rows, likes.buckets, likes.values, strict=True)
    }
    assert found[(IOS.segment.key, "2024-05-01T00:00:00.000000")] == 5.0
    assert found[("{}", "2024-05-01T00:15:00.000000")] == 9.0
    assert np.isnan(found[(android, "2024-05-01T00:00:00.000000")])
    assert len(found) == 3
    assert cells["views"].segments == ["{}"]
    assert list(cells["views"].values) == [3.0]


def test_cells_in_windows_keep_every_series_of_the_range(store: SQLStore) -> None:
    store.upsert_values(
        values(
            ("likes", "{}", T0, 1.0),
            ("likes", "{}", T0 + timedelta(minutes=45), 4.0),
            ("likes", IOS.segment.key, T0 + timedelta(minutes=15), 2.0),  # between windows
        ),
        G,
    )
    windows = [
        (T0, T0 + timedelta(minutes=15)),
        (T0 + timedelta(minutes=45), T0 + timedelta(hours=1)),
    ]
    likes = store.load_cells(["likes"], G, T0, T0 + timedelta(hours=1), windows=windows)["likes"]
    assert likes.segments == sorted(["{}", IOS.segment.key])
    found = {
        (likes.segments[r], str(b)): v
        for r, b, v in zip(likes.rows, likes.buckets, likes.values, strict=True)
    }
    assert found[("{}", "2024-05-01T00:00:00.000000")] == 1.0
    assert found[("{}", "2024-05-01T00:45:00.000000")] == 4.0


def test_series_ids_are_given_to_rows_stored_before_them(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "old.duckdb")
    store.migrate(MIGRATIONS[:9])
    with store.session() as conn:
        conn.execute(
            "INSERT INTO metric_values VALUES ('likes', '{}', 900, '2024-05-01', 4, now())"
        )
    store.migrate()
    cells = store.load_cells(["likes"], G, T0, T0 + timedelta(hours=1))
    assert (cells["likes"].segments, list(cells["likes"].values)) == (["{}"], [4.0])


def test_known_segments_ignore_all_zero_series(store: SQLStore) -> None:
    store.upsert_values(values(("likes", "{}", T0, 3.0), ("likes", IOS.segment.key, T0, 0.0)), G)
    assert store.known_segments(["likes", "views"], G, T0) == {"likes": {"{}"}, "views": set()}


def test_ingest_watermark_only_moves_forward(store: SQLStore) -> None:
    assert store.ingested_until("feed") is None
    store.set_ingested_until("feed", T0 + timedelta(hours=2))
    store.set_ingested_until("feed", T0)
    assert store.ingested_until("feed") == T0 + timedelta(hours=2)


def test_one_result_per_analyzer_series_and_bucket(store: SQLStore) -> None:
    store.save_results([result(T0, Status.OK, 99.0)])
    store.save_results([result(T0, Status.ANOMALY, 1.0)])  # a re-analysis replaces it
    saved = store.list_results()
    assert len(saved) == 1
    assert saved[0].value == 1.0
    assert saved[0].status is Status.ANOMALY
    assert saved[0].series == IOS
    assert saved[0].bucket.start == T0
    assert saved[0].expected_upper is None
    assert saved[0].baselines == {"mean": 2.0}
    assert store.analyzed_keys(["likes"], G, T0) == {("a", "likes", IOS.segment.key): "h"}
    assert store.last_analyzed(["likes"], G) == T0


def test_last_notified_counts_sent_and_muted_alerts_only(store: SQLStore) -> None:
    r1, r2, r3 = (result(T0 + i * G.step) for i in range(3))
    store.save_results([r1, r2, r3])
    store.save_alerts(
        [
            Alert("m", Severity.HIGH, r1, AlertStatus.NOTIFY, T0),
            Alert("m", Severity.HIGH, r2, AlertStatus.MUTED, T0),
            Alert("m", Severity.HIGH, r3, AlertStatus.QUIET_HOURS, T0),
        ]
    )
    end = T0 + timedelta(hours=1)
    assert store.last_notified("m", "a", IOS, end) == r2.bucket.start
    assert store.last_notified("m", "a", IOS, r2.bucket.start) == T0
    assert store.last_notified("other", "a", IOS, end) is None
    rows = store.list_alerts(since=T0 + G.step)
    assert [(r.status, r.result.bucket.start) for r in rows] == [
        ("muted", r2.bucket.start),
        ("quiet_hours", r3.bucket.start),
    ]


def notification(key: str = "k1") -> Notification:
    return Notification(
        key=key,
        monitor="m",
        channel="console",
        series=IOS,
        bucket=Bucket(T0, G),
        title="t",
        text="text",
        html="<b>t</b>",
        image=b"\x89PNG....",
    )


def test_outbox_adds_a_key_once_and_records_attempts(store: SQLStore) -> None:
    store.enqueue([notification()])
    store.enqueue([notification()])
    pending = list(store.outbox((DeliveryStatus.PENDING,)))
    assert [n.key for n in pending] == ["k1"]
    assert pending[0].image == b"\x89PNG...."
    store.update_delivery("k1", DeliveryStatus.FAILED, 1, 1, "HTTP 500")
    failed = list(store.outbox((DeliveryStatus.FAILED,)))
    assert (failed[0].attempts, failed[0].parts_sent, failed[0].last_error) == (1, 1, "HTTP 500")
    assert list(store.outbox((DeliveryStatus.PENDING,))) == []


def test_a_delivery_is_claimed_by_one_reader_only(store: SQLStore) -> None:
    store.enqueue([notification()])
    (seen,) = store.outbox((DeliveryStatus.PENDING,))
    other = reopen(store)  # another process that read the same pending row
    assert store.claim_delivery("k1", seen.status, seen.attempts)
    assert not other.claim_delivery("k1", seen.status, seen.attempts)
    (claimed,) = store.outbox((DeliveryStatus.SENDING,))
    assert claimed.attempts == 1  # the claim is the attempt's start
    # Resuming a delivery that died mid-send is claimed the same way.
    assert other.claim_delivery("k1", DeliveryStatus.SENDING, 1)
    assert not store.claim_delivery("k1", DeliveryStatus.SENDING, 1)


def write_then_crash(store: SQLStore) -> None:
    with store.transaction():
        store.save_results([result(T0)])
        store.enqueue([notification()])
        raise RuntimeError("crash in the middle")


def test_transaction_rolls_back_everything_on_error(store: SQLStore) -> None:
    with pytest.raises(RuntimeError, match="crash in the middle"):
        write_then_crash(store)
    assert store.list_results() == []
    assert store.notification_rows() == []


def test_other_processes_can_open_the_store_between_sessions(store: SQLStore) -> None:
    other = reopen(store)
    with store.session():
        store.save_results([result(T0)])
    assert len(other.list_results()) == 1


def test_payloads_and_reference_snapshots(store: SQLStore) -> None:
    frame = values(("price.histogram", "{}", T0, 3.0), ("price.histogram", "{}", T0 + G.step, 4.0))
    frame["payload"] = [{"kind": "quantiles", "n": 3}, None]
    store.upsert_values(frame, G)
    payloads = store.load_payloads(["price.histogram"], G, T0, T0 + timedelta(hours=1))
    assert payloads["payload"].tolist() == [{"kind": "quantiles", "n": 3}]
    assert store.save_reference("launch", ["price.histogram"], G, T0, T0 + timedelta(hours=1)) == 2
    reference = store.load_reference("launch", ["price.histogram"])
    assert reference["value"].tolist() == [3.0, 4.0]
    assert reference["payload"].tolist() == [{"kind": "quantiles", "n": 3}, None]
    (listed,) = store.list_references()
    assert (listed["name"], listed["metrics"], listed["series"], listed["rows"]) == (
        "launch",
        1,
        1,
        2,
    )
    assert store.delete_reference("launch") is True
    assert store.delete_reference("launch") is False


def test_silences_are_listed_while_active_and_can_be_expired(store: SQLStore) -> None:
    silence = Silence("likes", {"os": "iOS"}, T0, T0 + timedelta(hours=2), "release", "m")
    first = store.add_silence(silence)
    second = store.add_silence(silence)
    assert second > first
    assert [s.id for s in store.list_silences(active_at=T0 + timedelta(hours=1))] == [
        first,
        second,
    ]
    assert store.list_silences(active_at=T0 + timedelta(hours=3)) == []
    assert store.expire_silence(first, T0 + timedelta(minutes=30)) is True
    assert store.expire_silence(first, T0 + timedelta(minutes=31)) is False
    active = store.list_silences(active_at=T0 + timedelta(hours=1))
    assert [s.id for s in active] == [second]
    assert store.list_silences()[0].segment == {"os": "iOS"}


def test_incidents_open_update_and_resolve(store: SQLStore) -> None:
    incident = Incident("m", IOS, G, T0, T0)
    incident_id = store.save_incident(incident)
    opened = store.open_incident("m", IOS)
    assert opened is not None
    assert opened.id == incident_id
    store.save_incident(
        replace(opened, status="resolved", resolved_bucket=T0 + G.step, normal_streak=4)
    )
    assert store.open_incident("m", IOS) is None
    (resolved,) = store.list_incidents("resolved")
    assert (resolved.resolved_bucket, resolved.normal_streak) == (T0 + G.step, 4)
    assert store.list_incidents("open") == []


def test_run_log_and_pipeline_state(store: SQLStore) -> None:
    records = [
        RunRecord("r1", "cycle", "feed", stage, T0, T0 + timedelta(seconds=1), "ok", 3, 4, "")
        for stage in ("ingest", "analyze")
    ]
    store.record_runs(records)
    assert [r.stage for r in store.list_runs()] == ["ingest", "analyze"]
    assert [r.stage for r in store.list_runs(limit=1)] == ["analyze"]
    assert store.pipeline_state("feed") == PipelineState("feed")
    state = PipelineState("feed", 2, T0, False, "timeout", None, False)
    store.save_pipeline_state(state)
    store.save_pipeline_state(replace(state, consecutive_failures=3, alerted=True))
    assert store.pipeline_state("feed") == replace(state, consecutive_failures=3, alerted=True)


def test_one_leader_at_a_time(store: SQLStore) -> None:
    ttl = timedelta(minutes=10)
    other = reopen(store)
    assert store.acquire_lock("scheduler", "a", T0, ttl) is True
    assert other.acquire_lock("scheduler", "b", T0 + timedelta(minutes=5), ttl) is False
    assert store.acquire_lock("scheduler", "a", T0 + timedelta(minutes=6), ttl) is True
    # a's heartbeat is from minute 6: b takes over only once it is older than the ttl.
    assert other.acquire_lock("scheduler", "b", T0 + timedelta(minutes=15), ttl) is False
    assert other.acquire_lock("scheduler", "b", T0 + timedelta(minutes=16), ttl) is True
    assert store.acquire_lock("scheduler", "a", T0 + timedelta(minutes=17), ttl) is False
    other.release_lock("scheduler", "b")
    assert store.acquire_lock("scheduler", "a", T0 + timedelta(minutes=18), ttl) is True


def test_prune_keeps_recent_rows_and_references(store: SQLStore) -> None:
    old, new = T0, T0 + timedelta(days=10)
    store.upsert_values(values(("likes", "{}", old, 1.0), ("likes", "{}", new, 2.0)), G)
    store.save_reference("kept", ["likes"], G, old, old + G.step)
    store.save_results([result(old), result(new)])
    store.save_alerts([Alert("m", Severity.HIGH, result(old), AlertStatus.NOTIFY, old)])
    store.enqueue([notification("old")])
    store.update_delivery("old", DeliveryStatus.SENT, 1, 1, "")
    counts = store.prune(values_before=new, results_before=new)
    assert counts["metric_values"] == 1
    assert counts["analysis_results"] == 1
    assert counts["alerts"] == 1
    assert counts["notifications"] == 1
    left = store.load_values(["likes"], G, old, new + G.step)
    assert left["value"].tolist() == [2.0]
    assert [r.bucket.start for r in store.list_results()] == [new]
    assert len(store.load_reference("kept", ["likes"])) == 1
    assert store.prune(values_before=None, results_before=None) == {}


def test_feedback_on_an_alert_is_stored_and_the_latest_wins(store: SQLStore) -> None:
    first = Feedback("m", "a", IOS, Bucket(T0, G), FeedbackLabel.FALSE_ALARM, "noise", "ann")
    store.save_feedback(first)
    store.save_feedback(replace(first, label=FeedbackLabel.TRUE_ANOMALY, note="real"))
    (got,) = store.list_feedback()
    assert (got.label, got.note, got.author) == (FeedbackLabel.TRUE_ANOMALY, "real", "ann")
    assert got.series == IOS
    assert got.bucket.start == T0
    assert got.created_at == T0
    assert store.list_feedback(since=T0 + G.step) == []


def test_series_listing_and_one_series_values(store: SQLStore) -> None:
    store.upsert_values(
        values(
            ("likes", IOS.segment.key, T0, 1.0),
            ("likes", IOS.segment.key, T0 + G.step, 2.0),
            ("likes", "{}", T0, 5.0),
        ),
        G,
    )
    listed = {(s["metric"], s["segment"]): s for s in store.list_series()}
    assert listed[("likes", IOS.segment.key)]["points"] == 2
    assert listed[("likes", IOS.segment.key)]["last"] == T0 + G.step
    assert listed[("likes", "{}")]["first"] == T0
    frame = store.load_series("likes", IOS.segment.key, G, T0, T0 + 2 * G.step)
    assert frame["value"].tolist() == [1.0, 2.0]
    store.save_results([result(T0), replace(result(T0), series=SeriesKey("likes"))])
    assert len(store.list_results(segment=IOS.segment.key)) == 1


def test_a_chat_press_is_recorded_once_and_its_message_found_and_amended(
    store: SQLStore,
) -> None:
    sent = replace(notification(), kind="incident", members=(("m", "likes", IOS.segment.key),))
    store.enqueue([sent])
    store.set_remote_ref("k1", "41")
    found = store.find_message("console", "41")
    assert found is not None
    assert found.key == "k1"
    assert store.find_message("console", "42") is None
    press = ChatAction("console:7", "console", 7, "k1", "ack", "@anna", "✔ Acknowledged", T0)
    assert store.record_action(press)
    assert not store.record_action(replace(press, outcome="again"))  # one per press id
    assert store.record_action(replace(press, id="console:9", seq=9, message_key=""))
    assert store.last_action_seq("console") == 9
    assert store.last_action_seq("other") is None
    assert store.list_actions("k1") == [press]
    store.amend_message("k1", "text\n✔ Acknowledged", "<b>t</b>\n✔ Acknowledged")
    amended = store.find_message("console", "41")
    assert amended is not None
    assert amended.text == "text\n✔ Acknowledged"


def test_hourly_and_daily_views_read_the_coarse_values_in_the_projects_zone(
    store: SQLStore,
) -> None:
    hour, day = Granularity.parse("1h"), Granularity.parse("1d")
    store.upsert_values(values(("likes", "{}", T0 + timedelta(hours=22), 40.0)), hour)
    store.upsert_values(values(("likes", "{}", T0, 900.0)), day)
    store.upsert_values(values(("likes", "{}", T0, 7.0)), G)  # 15m: in neither view
    hourly = store._rows("SELECT metric, segment, date, hour, value FROM hourly_values")
    daily = store._rows("SELECT metric, date, value FROM daily_values")
    assert [(m, s, str(d), int(h), float(v)) for m, s, d, h, v in hourly] == [
        ("likes", "{}", "2024-05-01", 22, 40.0)
    ]
    assert [(m, str(d), float(v)) for m, d, v in daily] == [("likes", "2024-05-01", 900.0)]
