"""What the dashboard and the API show, read from the store and the configuration.

Plain functions of (project, store, …) that return JSON-ready dicts; no web framework here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from vigil.config.project import Metric, Project
from vigil.errors import NotFoundError, VigilError
from vigil.model import SENT_STATUSES, DeliveryStatus, Feedback, Segment, SeriesKey, Status
from vigil.notify.incidents import grouped_incidents
from vigil.scheduler.ingest import watermark
from vigil.store.base import AlertRow, Store
from vigil.timeutil import Granularity, as_utc, to_naive_utc
from vigil.web.downsample import band_envelope, extreme_indices

DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    return as_utc(value).isoformat() if value is not None else None


def metric_of(project: Project, name: str) -> Metric:
    """The configured metric, or NotFoundError listing what there is."""
    try:
        return project.metric(name)
    except KeyError:
        known = sorted(m.name for d in project.datasets for m in d.metrics)
        raise NotFoundError(
            f"unknown metric '{name}'; expected one of: {', '.join(known) or 'none'}"
        ) from None


# --- metrics and series -----------------------------------------------------------------


def metrics(project: Project, store: Store) -> list[dict[str, Any]]:
    """Every configured metric with its dataset, owners, analyzers and stored series count."""
    counts: dict[str, int] = {}
    for s in store.list_series():
        counts[s["metric"]] = counts.get(s["metric"], 0) + 1
    return [
        {
            "name": m.name,
            "title": m.title,
            "dataset": d.name,
            "source": d.config.source,
            "granularity": m.granularity.name,
            "owners": list(m.owners),
            "analyzers": [a.id for a in m.analyzers],
            "series": counts.get(m.name, 0),
        }
        for d in project.datasets
        for m in d.metrics
    ]


def series(store: Store, metric: str | None = None) -> list[dict[str, Any]]:
    """Stored series (optionally of one metric), with points and first and last bucket."""
    return [
        {
            "metric": s["metric"],
            "segment": Segment.from_key(s["segment"]).label(),
            "segment_tags": Segment.from_key(s["segment"]).as_dict(),
            "granularity": Granularity(int(s["granularity"])).name,
            "points": int(s["points"]),
            "first": iso(s["first"]),
            "last": iso(s["last"]),
        }
        for s in store.list_series()
        if metric is None or s["metric"] == metric
    ]


def values(
    project: Project,
    store: Store,
    metric: str,
    segment: Segment,
    start: datetime,
    end: datetime,
) -> list[dict[str, Any]]:
    """The stored values of one series in [start, end)."""
    g = metric_of(project, metric).granularity
    frame = store.load_series(metric, segment.key, g, start, end)
    return [
        {"bucket": iso(pd.Timestamp(b).to_pydatetime()), "value": _number(v)}
        for b, v in zip(frame["bucket"], frame["value"], strict=True)
    ]


# --- the chart ----------------------------------------------------------------------------


def chart(
    project: Project,
    store: Store,
    metric: str,
    segment: Segment,
    start: datetime,
    end: datetime,
    width: int = 1000,
    analyzer: str | None = None,
) -> dict[str, Any]:
    """One series for the explorer: values, the expected band, anomalies, and the same
    times a day and a week earlier; long ranges thinned to about `width` bins (min and max
    of each kept, so peaks and dips survive)."""
    m = metric_of(project, metric)
    g = m.granularity
    times = bucket_times(g, start, end)
    if len(times) > 400_000:
        raise VigilError(
            f"{len(times)} buckets of {g.name} from {iso(start)} to {iso(end)}; expected a"
            " range of at most 400,000 buckets"
        )
    overlays = {"day_ago": DAY, "week_ago": WEEK} if g.seconds < DAY.total_seconds() else {}
    reach = max(overlays.values(), default=timedelta(0))
    stored = store.load_series(metric, segment.key, g, start - reach, end)
    own = _aligned(stored, times, timedelta(0))
    shifted = {name: _aligned(stored, times, lag) for name, lag in overlays.items()}
    results = store.load_series_results(metric, segment.key, g, start, end)
    chosen = analyzer or _band_analyzer(results)
    band = results[results["analyzer"] == chosen] if chosen else results.iloc[:0]
    lower = _aligned(_column(band, "expected_lower"), times, timedelta(0))
    upper = _aligned(_column(band, "expected_upper"), times, timedelta(0))
    keep = extreme_indices(own, max(1, width))
    low, high = band_envelope(lower, upper, keep)
    anomalies = results[results["status"] == Status.ANOMALY.value]
    return {
        "metric": metric,
        "title": m.title,
        "segment": segment.label(),
        "granularity": g.name,
        "from": iso(start),
        "to": iso(end),
        "points": int(np.count_nonzero(~np.isnan(own))),
        "downsampled": len(keep) < len(times),
        "band_analyzer": chosen,
        "t": (times[keep].astype("datetime64[s]").astype(np.int64)).tolist(),
        "value": _list(own[keep]),
        "lower": _list(low),
        "upper": _list(high),
        **{name: _list(v[keep]) for name, v in shifted.items()},
        "anomalies": [
            {
                "t": int(pd.Timestamp(str(row.bucket)).timestamp()),
                "value": _number(row.value),
                "analyzer": row.analyzer,
                "deviation": _number(row.deviation),
                "reason": row.reason,
            }
            for row in anomalies.itertuples(index=False)
        ],
    }


def bucket_times(g: Granularity, start: datetime, end: datetime) -> np.ndarray:
    """Bucket starts in [floor(start), end) as naive-UTC datetime64[us]."""
    first = g.floor(start)
    if not g.is_calendar:
        begin = np.datetime64(to_naive_utc(first), "us")
        stop = np.datetime64(to_naive_utc(end), "us")
        return np.arange(begin, stop, np.timedelta64(g.seconds, "s")).astype("datetime64[us]")
    return np.array([to_naive_utc(b) for b in g.range(first, end)], dtype="datetime64[us]")


def _aligned(frame: pd.DataFrame, times: np.ndarray, lag: timedelta) -> np.ndarray:
    """The frame's `value` at each bucket time minus `lag` (NaN where there is none)."""
    out = np.full(len(times), np.nan)
    if frame.empty or not len(times):
        return out
    stamps = pd.to_datetime(frame["bucket"]).to_numpy(dtype="datetime64[us]") + np.timedelta64(
        int(lag.total_seconds()), "s"
    )
    where = np.searchsorted(times, stamps)
    ok = (where < len(times)) & (times[np.minimum(where, len(times) - 1)] == stamps)
    out[where[ok]] = pd.to_numeric(frame["value"], errors="coerce").to_numpy(dtype=float)[ok]
    return out


def _column(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """bucket and one column of `frame`, as `value`."""
    return pd.DataFrame({"bucket": frame["bucket"], "value": frame[name]})


def _band_analyzer(results: pd.DataFrame) -> str | None:
    """The analyzer with the most expected ranges in view (its band is drawn)."""
    bounded = results[results["expected_lower"].notna() | results["expected_upper"].notna()]
    if bounded.empty:
        return None
    counts = bounded["analyzer"].value_counts()
    return str(sorted(counts.index[counts == counts.max()])[0])


# --- segment breakdown --------------------------------------------------------------------


def breakdown(
    project: Project,
    store: Store,
    metric: str,
    at: datetime,
    compare: timedelta = DAY,
    buckets: int = 1,
) -> dict[str, Any]:
    """Which slices drove the total's change at `at` against `compare` earlier: the mean of
    `buckets` buckets ending at `at` in each segment, its change, and its share of the
    total's change (meaningful for additive metrics; ranked by the size of the change)."""
    m = metric_of(project, metric)
    g = m.granularity
    end = g.next(g.floor(at))
    start = g.shift(end, -buckets)
    now = _means(store, m, start, end)
    then = _means(store, m, start - compare, end - compare)
    total_key = Segment().key
    total_delta = _delta(now.get(total_key), then.get(total_key))
    rows: list[dict[str, Any]] = []
    for key in sorted(set(now) | set(then)):
        if key == total_key:
            continue
        delta = _delta(now.get(key), then.get(key))
        share = delta / total_delta if delta is not None and total_delta else None
        rows.append(
            {
                "segment": Segment.from_key(key).label(),
                "value": _number(now.get(key)),
                "baseline": _number(then.get(key)),
                "change": _number(delta),
                "change_pct": _number(_pct(now.get(key), then.get(key))),
                "share_of_total_change": _number(share),
            }
        )
    rows.sort(key=lambda r: -abs(float(r["change"] or 0.0)))
    return {
        "metric": metric,
        "at": iso(g.floor(at)),
        "compare": f"{int(compare.total_seconds() // 3600)}h",
        "buckets": buckets,
        "total": {
            "value": _number(now.get(total_key)),
            "baseline": _number(then.get(total_key)),
            "change": _number(total_delta),
            "change_pct": _number(_pct(now.get(total_key), then.get(total_key))),
        },
        "segments": rows,
    }


def _means(store: Store, m: Metric, start: datetime, end: datetime) -> dict[str, float]:
    frame = store.load_values([m.name], m.granularity, start, end)
    if frame.empty:
        return {}
    return {str(k): float(v) for k, v in frame.groupby("segment")["value"].mean().items()}


def _delta(now: float | None, then: float | None) -> float | None:
    return None if now is None or then is None else now - then


def _pct(now: float | None, then: float | None) -> float | None:
    return None if now is None or not then else (now - then) / abs(then)


# --- alerts, feedback, incidents, runs ----------------------------------------------------


@dataclass(frozen=True)
class AlertFilter:
    """Which alerts to list."""

    metric: str | None = None
    segment: Segment | None = None
    monitor: str | None = None
    severity: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # `sent` (notified or muted), one decision (cooldown, silenced, expected, …), or None: all.
    status: str | None = None


SENT = tuple(s.value for s in SENT_STATUSES)


def alerts(store: Store, chosen: AlertFilter) -> list[dict[str, Any]]:
    """Alerts, newest first, with their result, deliveries and any feedback."""
    rows = store.list_alerts(since=chosen.since, until=chosen.until)
    verdicts = {_feedback_key(f): f for f in store.list_feedback(since=chosen.since)}
    out = []
    for row in reversed(rows):
        r = row.result
        if chosen.metric and r.series.metric != chosen.metric:
            continue
        if chosen.segment is not None and r.series.segment != chosen.segment:
            continue
        if chosen.monitor and row.monitor != chosen.monitor:
            continue
        if chosen.severity and row.severity != chosen.severity:
            continue
        if chosen.status == "sent" and row.status not in SENT:
            continue
        if chosen.status not in (None, "sent") and row.status != chosen.status:
            continue
        out.append(alert_json(row, verdicts.get(_alert_key(row))))
    return out


def alert_json(row: AlertRow, feedback: Feedback | None = None) -> dict[str, Any]:
    """One alert as the API shows it."""
    r = row.result
    return {
        "id": alert_id(row.monitor, r.analyzer, r.series, r.bucket.start),
        "monitor": row.monitor,
        "severity": row.severity,
        "status": row.status,
        "created_at": iso(row.created_at),
        "metric": r.series.metric,
        "segment": r.series.segment.label(),
        "bucket": iso(r.bucket.start),
        "granularity": r.bucket.granularity.name,
        "analyzer": r.analyzer,
        "analyzer_type": r.analyzer_type,
        "value": _number(r.value),
        "expected_lower": _number(r.expected_lower),
        "expected_upper": _number(r.expected_upper),
        "deviation": _number(r.deviation),
        "reason": r.reason,
        "deliveries": [{"channel": c, "status": s, "error": e} for c, s, e in row.deliveries],
        "feedback": feedback_json(feedback) if feedback else None,
    }


def alert_id(monitor: str, analyzer: str, series: SeriesKey, bucket: datetime) -> str:
    """A stable id for an alert, usable in URLs."""
    return "|".join(
        [monitor, analyzer, series.metric, series.segment.label(), as_utc(bucket).isoformat()]
    )


def parse_alert_id(text: str) -> tuple[str, str, SeriesKey, datetime]:
    """(monitor, analyzer, series, bucket) from `alert_id`; ValueError if malformed."""
    parts = text.split("|")
    if len(parts) != 5:
        raise ValueError(
            f"alert id '{text}': expected monitor|analyzer|metric|segment|bucket, as listed"
            " by /api/v1/alerts"
        )
    monitor, analyzer, metric, segment, bucket = parts
    return monitor, analyzer, SeriesKey(metric, Segment.from_label(segment)), _instant(bucket)


def _instant(text: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"'{text}': expected an ISO 8601 time") from None


def find_alert(store: Store, alert: str) -> AlertRow:
    """The alert with this id, or NotFoundError."""
    monitor, analyzer, key, bucket = parse_alert_id(alert)
    for row in store.list_alerts(since=bucket, until=bucket + timedelta(microseconds=1)):
        r = row.result
        if (row.monitor, r.analyzer, r.series) == (monitor, analyzer, key):
            return row
    raise NotFoundError(f"no alert '{alert}'")


def feedback_json(f: Feedback) -> dict[str, Any]:
    """One verdict as the API shows it."""
    return {
        "alert": alert_id(f.monitor, f.analyzer, f.series, f.bucket.start),
        "monitor": f.monitor,
        "analyzer": f.analyzer,
        "metric": f.series.metric,
        "segment": f.series.segment.label(),
        "bucket": iso(f.bucket.start),
        "label": f.label.value,
        "note": f.note,
        "author": f.author,
        "created_at": iso(f.created_at),
    }


def _feedback_key(f: Feedback) -> tuple[str, str, SeriesKey, datetime]:
    return (f.monitor, f.analyzer, f.series, as_utc(f.bucket.start))


def _alert_key(row: AlertRow) -> tuple[str, str, SeriesKey, datetime]:
    r = row.result
    return (row.monitor, r.analyzer, r.series, as_utc(r.bucket.start))


def incidents(store: Store, status: str | None = None) -> list[dict[str, Any]]:
    """Incidents, newest first."""
    return [
        {
            "id": i.id,
            "monitor": i.monitor,
            "metric": i.series.metric,
            "segment": i.series.segment.label(),
            "granularity": i.granularity.name,
            "status": i.status,
            "opened": iso(i.opened_bucket),
            "last_anomaly": iso(i.last_anomaly_bucket),
            "resolved": iso(i.resolved_bucket),
        }
        for i in store.list_incidents(status)
    ]


def runs(store: Store, since: datetime | None, limit: int) -> list[dict[str, Any]]:
    """Run-log records, newest first, with durations."""
    return [
        {
            "run_id": r.run_id,
            "kind": r.kind,
            "dataset": r.dataset,
            "stage": r.stage,
            "started_at": iso(r.started_at),
            "finished_at": iso(r.finished_at),
            "duration_ms": round((r.finished_at - r.started_at).total_seconds() * 1000, 1),
            "status": r.status,
            "rows_in": r.rows_in,
            "rows_out": r.rows_out,
            "error": r.error,
        }
        for r in reversed(store.list_runs(since=since, limit=limit))
    ]


def silences(store: Store, active_at: datetime | None) -> list[dict[str, Any]]:
    """Silences by id (only those active at `active_at` when given)."""
    return [
        {
            "id": s.id,
            "metric": s.metric,
            "segment": s.segment,
            "monitor": s.monitor,
            "starts_at": iso(s.starts_at),
            "ends_at": iso(s.ends_at),
            "expired_at": iso(s.expired_at),
            "reason": s.reason,
        }
        for s in store.list_silences(active_at)
    ]


# --- the overview -------------------------------------------------------------------------


def overview(project: Project, store: Store, now: datetime) -> dict[str, Any]:
    """Monitors with their state, open incidents, the last runs, data freshness."""
    open_incidents = store.list_incidents("open")
    active = store.list_silences(now)
    stored = store.list_series()
    newest = _newest_by_metric(stored)
    freshness = [_freshness(project, store, d.name, now, newest) for d in project.datasets]
    # A monitor whose data does not arrive (a failing source, a silent or stale dataset) cannot
    # be "ok": it is not checking anything.
    failing = {f["dataset"] for f in freshness if f["failing"] or f["silent_since"] or f["stale"]}
    sent_24h: dict[str, int] = {}
    for row in store.list_alerts(since=now - timedelta(days=1), until=now):
        if row.status in SENT:
            sent_24h[row.monitor] = sent_24h.get(row.monitor, 0) + 1
    monitors = []
    for monitor in project.monitors.values():
        watched = _datasets_of(project, monitor.analyzers)
        firing = [i for i in open_incidents if i.monitor == monitor.id]
        unsilenced = [
            i for i in firing if not any(s.covers(monitor.id, i.series, now) for s in active)
        ]
        named = [s for s in active if s.monitor == monitor.id]
        if watched & failing:
            state = "failing"
        elif unsilenced:
            state = "firing"
        elif firing or named:
            state = "silenced"
        else:
            state = "ok"
        monitors.append(
            {
                "id": monitor.id,
                "state": state,
                "severity": monitor.severity.value,
                "channels": list(monitor.channels),
                "datasets": sorted(watched),
                "open_incidents": len(firing),
                "alerts_24h": sent_24h.get(monitor.id, 0),
            }
        )
    return {
        "project": project.settings.name,
        "now": iso(now),
        "monitors": monitors,
        "alerts_24h": sum(sent_24h.values()),
        "incidents": incidents(store, "open"),
        "incident_groups": grouped_incidents(project, open_incidents),
        "runs": runs(store, None, 20),
        "freshness": freshness,
        "series": len(stored),
    }


OUTBOX_LATE = timedelta(minutes=15)


def health(project: Project, store: Store, now: datetime) -> dict[str, Any]:
    """Counts an uptime check can alert on: datasets by state and the outbox's backlog."""
    stored = store.list_series()
    newest = _newest_by_metric(stored)
    states = {"fresh": 0, "stale": 0, "silent": 0, "failing": 0}
    for d in project.datasets:
        f = _freshness(project, store, d.name, now, newest)
        state = (
            "failing"
            if f["failing"]
            else "silent"
            if f["silent_since"]
            else "stale"
            if f["stale"]
            else "fresh"
        )
        states[state] += 1
    waiting = (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.SENDING)
    queued = [n.bucket.end for n in store.outbox(waiting)]
    oldest = round((now - min(queued)).total_seconds()) if queued else None
    gave_up = sum(
        1
        for row in store.notification_rows()
        if row["status"] == DeliveryStatus.GAVE_UP.value
        and row["created_at"] is not None
        and as_utc(row["created_at"]) >= now - timedelta(days=1)
    )
    healthy = states["fresh"] == len(project.datasets) and (
        oldest is None or oldest <= OUTBOX_LATE.total_seconds()
    )
    return {
        "status": "ok" if healthy else "unhealthy",
        "project": project.settings.name,
        "datasets": states,
        "outbox": {"waiting": len(queued), "oldest_seconds": oldest, "gave_up_24h": gave_up},
    }


def _newest_by_metric(stored: list[dict[str, Any]]) -> dict[str, datetime]:
    """The newest stored bucket of each metric, from `Store.list_series`."""
    newest: dict[str, datetime] = {}
    for s in stored:
        newest[s["metric"]] = max(s["last"], newest.get(s["metric"], s["last"]))
    return newest


def _datasets_of(project: Project, analyzer_ids: list[str]) -> set[str]:
    chosen = set(analyzer_ids)
    return {
        d.name
        for d in project.datasets
        for m in d.metrics
        if any("*" in chosen or a.id in chosen for a in m.analyzers)
    }


def _freshness(
    project: Project,
    store: Store,
    dataset: str,
    now: datetime,
    newest_by_metric: dict[str, datetime],
) -> dict[str, Any]:
    d = next(x for x in project.datasets if x.name == dataset)
    newest = max(
        (newest_by_metric[m.name] for m in d.metrics if m.name in newest_by_metric),
        default=None,
    )
    state = store.pipeline_state(dataset)
    due_by = None if newest is None else d.granularity.next(newest) + d.delay + d.granularity.step
    return {
        "dataset": dataset,
        "source": d.config.source,
        "granularity": d.granularity.name,
        "ingested_until": iso(store.ingested_until(watermark(d))),
        "newest_bucket": iso(newest),
        "lag_seconds": None
        if newest is None
        else round((now - d.granularity.next(newest)).total_seconds()),
        "stale": newest is not None and due_by is not None and now > due_by,
        "failing": state.consecutive_failures > 0,
        "silent_since": iso(state.silent_since),
        "last_error": state.last_error,
    }


# --- helpers ------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if number != number else number


def _list(values: np.ndarray) -> list[float | None]:
    return [None if v != v else float(v) for v in values.tolist()]
