"""Reports: a summary of chosen metrics on a schedule, whether or not anything alerted.

Per metric (its total, or every segment): the newest value, its change against the same
bucket a day and a week earlier, how many anomalies the period had, and a sparkline of the
period — as a text and an HTML table, with every sparkline in one image (inline in an email,
the photo of a Telegram or Slack message). A report is a notification like any other: queued
in the outbox with a key of the report, the channel and its fire time, so `vigil run` and a
`vigil report send` in the same minute send it once.
"""

from __future__ import annotations

import hashlib
import html
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from croniter import croniter

from vigil.config.project import Project, matches_any
from vigil.config.schema import ReportConfig
from vigil.model import Bucket, Notification, Segment, SeriesKey, Status
from vigil.numbers import format_value
from vigil.store.base import Store
from vigil.timeutil import Granularity, get_zone, to_naive_utc

ROWS_DRAWN = 16  # sparklines in the image, at most


@dataclass(frozen=True)
class Line:
    """One metric (and segment) of a report."""

    title: str
    segment: str
    value: float | None
    day: float | None  # relative change against a day earlier
    week: float | None
    anomalies: int
    spark: np.ndarray
    number_format: str


def due(project: Project, since: datetime, until: datetime) -> list[tuple[ReportConfig, datetime]]:
    """The reports whose cron fired in (since, until], with the fire time."""
    zone = get_zone(project.timezone)
    out = []
    for report in project.reports.values():
        times = croniter(report.cron, since.astimezone(zone))
        while True:
            fire = times.get_next(datetime)
            if fire > until.astimezone(zone):
                break
            out.append((report, fire.astimezone(until.tzinfo)))
    return out


def build(project: Project, store: Store, report: ReportConfig, at: datetime) -> list[Notification]:
    """The report at `at`, one notification per channel."""
    lines = _lines(project, store, report, at)
    title = report.title or f"{report.id.replace('_', ' ').capitalize()} report"
    when = f"{at.astimezone(get_zone(project.timezone)):%Y-%m-%d %H:%M} {project.timezone}"
    text = [f"📊 {title} — {when}"]
    rows_html = []
    for line in lines:
        value = format_value(line.value, line.number_format)
        changes = f"{_pct(line.day)} vs a day ago, {_pct(line.week)} vs a week ago"
        flagged = f"{line.anomalies} anomal{'y' if line.anomalies == 1 else 'ies'}"
        text.append(f"• {line.title} · {line.segment}: {value} ({changes}) · {flagged}")
        rows_html.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(c)}</td>"
                for c in (line.title, line.segment, value, _pct(line.day), _pct(line.week))
            )
            + f"<td>{line.anomalies}</td></tr>"
        )
    if not lines:
        text.append("No values in the period for the report's metrics.")
    head = "".join(
        f"<th>{h}</th>" for h in ("Metric", "Segment", "Newest", "vs day", "vs week", "Anomalies")
    )
    body = (
        f"<b>📊 {html.escape(title)}</b> — {html.escape(when)}\n"
        f"<table><tr>{head}</tr>{''.join(rows_html)}</table>"
    )
    image = _sparklines(lines, project.timezone) if lines else None
    bucket = Bucket(at, Granularity.parse("1h", project.timezone))
    out = []
    for channel in report.channels:
        key = hashlib.sha256(f"report|{report.id}|{channel}|{at.isoformat()}".encode())
        out.append(
            Notification(
                key=key.hexdigest()[:32],
                monitor=f"report:{report.id}",
                channel=channel,
                series=SeriesKey(f"report:{report.id}"),
                bucket=bucket,
                title=f"{title} — {when}",
                text="\n".join(text),
                html=body,
                image=image,
                severity="info",
                kind="report",
            )
        )
    return out


def _lines(project: Project, store: Store, report: ReportConfig, at: datetime) -> list[Line]:
    lines = []
    stored: dict[str, list[str]] = {}
    if report.segments == "all":
        for s in store.list_series():
            stored.setdefault(s["metric"], []).append(s["segment"])
    for dataset in project.datasets:
        g = dataset.granularity
        for metric in dataset.metrics:
            if not matches_any(metric.name, report.metrics):
                continue
            keys = sorted(set(stored.get(metric.name, []))) if report.segments == "all" else []
            for key in keys or ["{}"]:
                line = _line(store, metric, key, g, at, report.period)
                if line is not None:
                    lines.append(line)
    return lines


def _line(
    store: Store, metric: Any, key: str, g: Granularity, at: datetime, period: timedelta
) -> Line | None:
    reach = max(period, timedelta(days=7)) + g.step
    frame = store.load_series(metric.name, key, g, at - reach, at)
    frame = frame[frame["value"].notna()]
    if frame.empty:
        return None
    by_time = dict(zip(frame["bucket"], frame["value"], strict=True))
    newest = frame["bucket"].max()
    value = float(by_time[newest])

    def change(back: timedelta) -> float | None:
        then = by_time.get(newest - back)
        return None if then in (None, 0) or then != then else value / float(then) - 1

    since = at - period
    recent = frame[frame["bucket"] >= to_naive_utc(since)]
    results = store.list_results(
        metric=metric.name, since=since, until=at, anomalies_only=True, segment=key
    )
    flagged = {
        (r.bucket.start, r.series.segment.key) for r in results if r.status is Status.ANOMALY
    }
    return Line(
        metric.title,
        Segment.from_key(key).label(),
        value,
        change(timedelta(days=1)),
        change(timedelta(days=7)),
        len(flagged),
        recent["value"].to_numpy(dtype=float),
        metric.format,
    )


def _pct(change: float | None) -> str:
    return "n/a" if change is None else f"{change * 100:+.1f}%"


def _sparklines(lines: list[Line], tz: str) -> bytes:
    """Every line's sparkline, one row each, in one image."""
    from vigil.notify.chart import pyplot

    plt, _ = pyplot()
    drawn = lines[:ROWS_DRAWN]
    fig, axes = plt.subplots(len(drawn), 1, figsize=(6.4, 0.62 * len(drawn) + 0.3), dpi=110)
    axes = np.atleast_1d(axes)
    try:
        for ax, line in zip(axes, drawn, strict=True):
            ax.plot(line.spark, color="#1f3a93", linewidth=1.6)
            if len(line.spark):
                ax.scatter([len(line.spark) - 1], [line.spark[-1]], s=14, color="#d62728")
            ax.set_yticks([])
            ax.set_xticks([])
            for side in ("top", "right", "left", "bottom"):
                ax.spines[side].set_visible(False)
            ax.set_title(
                f"{line.title} · {line.segment}   {format_value(line.value, line.number_format)}",
                fontsize=9,
                loc="left",
                pad=2,
            )
        fig.tight_layout(pad=0.4)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def queue_due(project: Project, store: Store, since: datetime, until: datetime) -> int:
    """Queue the reports due in (since, until]; return how many notifications."""
    made = [
        n for report, at in due(project, since, until) for n in build(project, store, report, at)
    ]
    if made:
        with store.transaction():
            store.enqueue(made)
    return len(made)
