"""Correlated grouping: the anomalies of one cycle that belong together become one message.

A monitor's `group` setting says what belongs together: `dataset` (the default: every metric
and slice of one dataset in one bucket — an outage hits users, likes and views at once),
`monitor` (everything the monitor routes in one bucket) or `none` (one message per series).
Analyzers that agree on one series count once: a series is one member however many of its
analyzers fired. A bundle of one series keeps the ordinary per-series message.
"""

from __future__ import annotations

import html
from collections import Counter

from vigil.config.project import Project
from vigil.config.schema import MonitorConfig
from vigil.model import Alert, Segment, Severity
from vigil.notify.message import SEVERITY_MARK, Message, add_footer, expected_range
from vigil.timeutil import get_zone

# Members listed one per line; the rest are counted.
LISTED = 8


def bundle_of(project: Project, monitor: MonitorConfig, alerts: list[Alert]) -> str | None:
    """The name of the bundle a series' alerts join, or None for a message of its own."""
    series = alerts[0].result.series
    return bundle_name(project, monitor, series.metric, series.segment)


def bundle_name(
    project: Project, monitor: MonitorConfig, metric: str, segment: Segment
) -> str | None:
    """The bundle of a series under a monitor: its dataset (or the monitor), split by the
    monitor's `group_by` dimensions ("feed · os=Android"); None for `group: none` or a metric
    no longer in the project."""
    if monitor.group == "none":
        return None
    if monitor.group == "monitor":
        base = monitor.id
    else:
        try:
            base = project.dataset_of(metric).name
        except KeyError:
            return None
    if not monitor.group_by:
        return base
    tags = dict(segment.tags)
    parts = [f"{d}={tags[d]}" for d in monitor.group_by if d in tags]
    return f"{base} · {', '.join(parts) or 'total'}"


def strength(alerts: list[Alert]) -> tuple[int, float]:
    """Rank of a member: its severity first, then the size of its largest deviation."""
    severity = min((a.severity for a in alerts), key=list(Severity).index)
    size = max(abs(a.result.deviation or 0.0) for a in alerts)
    return -list(Severity).index(severity), size


def ranked(members: list[list[Alert]]) -> list[list[Alert]]:
    """Members from the most to the least severe and deviating."""
    return sorted(members, key=strength, reverse=True)


def incident_message(
    project: Project,
    monitor: MonitorConfig,
    bundle: str,
    members: list[list[Alert]],
    owners: list[str],
    links: dict[str, str],
) -> Message:
    """One message for the bundle: a headline, the members by severity and size, owners."""
    order = ranked(members)
    severity = min((a.severity for g in order for a in g), key=list(Severity).index)
    lead = order[0][0].result
    tz = project.timezone
    local = lead.bucket.start.astimezone(get_zone(tz))
    segments = Counter(g[0].result.series.segment.label() for g in order)
    metrics = {g[0].result.series.metric for g in order}
    # "on os=Android" when one slice is all there is besides the totals it moves.
    slices = [label for label in segments if label != "total"]
    where = f" on {slices[0]}" if len(slices) == 1 else ""
    headline_parts = _headline(project, order)
    shown = bundle.split(" · ")[0]  # a group_by split shows as "on os=Android"
    title = f"{shown}{where}: {len(order)} anomalies in {len(metrics)} metric" + (
        "s" if len(metrics) != 1 else ""
    )
    headline = f"{SEVERITY_MARK[severity]} {title} — " + ", ".join(headline_parts)
    when = f"since {local:%Y-%m-%d %H:%M} ({lead.bucket.granularity.name} bucket, {tz})"
    lines = [headline, when]
    html_lines = [
        f"{SEVERITY_MARK[severity]} <b>{html.escape(title)}</b> — "
        + html.escape(", ".join(headline_parts)),
        html.escape(when),
    ]
    for line in breakdown_lines(project, order):
        lines.append(line)
        html_lines.append(html.escape(line))
    for group in order[:LISTED]:
        line = "• " + _detail(project, group)
        lines.append(line)
        html_lines.append(html.escape(line))
    if len(order) > LISTED:
        more = f"… and {len(order) - LISTED} more series"
        lines.append(more)
        html_lines.append(html.escape(more))
    footer = f"Severity: {severity.value} · monitor {monitor.id} · {project.settings.name}"
    add_footer(lines, html_lines, footer, owners, links)
    return Message(title=title, text="\n".join(lines), html="\n".join(html_lines))


def breakdown_lines(project: Project, order: list[list[Alert]]) -> list[str]:
    """Which slice explains a metric's change: `os=Android explains 97% of the total drop
    in Likes` — for metrics with the total and slices among the members, from the values the
    comparison used (the last buckets' mean against the same time the first lag earlier).
    Only additive metrics (the slices' baselines add up to no more than the total's)."""
    by_metric: dict[str, dict[str, tuple[float, float]]] = {}
    for group in order:
        for alert in group:
            result = alert.result
            now = result.baselines.get("current_mean")
            lags = [k for k in result.baselines if k.startswith("lag_")]
            if now is None or not lags:
                continue
            then = result.baselines[lags[0]]
            if then is None or now != now or then != then:
                continue
            label = result.series.segment.label()
            by_metric.setdefault(result.series.metric, {})[label] = (float(now), float(then))
    out = []
    for metric, seen in by_metric.items():
        total = seen.pop("total", None)
        if total is None or not seen or abs(total[0] - total[1]) < 1e-9:
            continue
        if sum(then for _, then in seen.values()) > total[1] * 1.001:
            continue  # not additive (a ratio): shares of the total mean nothing
        change = total[0] - total[1]
        label, (now, then) = max(seen.items(), key=lambda kv: abs(kv[1][0] - kv[1][1]))
        share = (now - then) / change
        if share <= 0:
            continue
        kind = "drop" if change < 0 else "rise"
        title = project.metric(metric).title
        out.append(f"{label} explains {share * 100:.0f}% of the total {kind} in {title}")
        if len(out) == 2:
            break
    return out


def _headline(project: Project, order: list[list[Alert]]) -> list[str]:
    """Per metric, strongest first: `Likes −93%`, or the range over its slices `Users −71…−43%`
    (at most three metrics)."""
    changes: dict[str, list[float]] = {}
    for group in order:
        result = max(group, key=lambda a: abs(a.result.deviation or 0.0)).result
        found = changes.setdefault(project.metric(result.series.metric).title, [])
        if result.deviation is not None:
            found.append(result.deviation * 100)
    parts = []
    for name, values in list(changes.items())[:3]:
        low, high = (min(values), max(values)) if values else (None, None)
        if low is None or high is None:
            parts.append(name)
        elif round(low) == round(high):
            parts.append(f"{name} {low:+.0f}%")
        else:
            parts.append(f"{name} {low:+.0f}…{high:+.0f}%")
    return parts


def _detail(project: Project, group: list[Alert]) -> str:
    """One member: metric · slice, value, expected range (open sides left out), deviation,
    and the analyzers that agree."""
    result = max(group, key=lambda a: abs(a.result.deviation or 0.0)).result
    metric = project.metric(result.series.metric)
    text = f"{metric.title} · {result.series.segment.label()}: {metric.show(result.value)}"
    mean = result.baselines.get("current_mean")
    if (
        mean is not None
        and result.value is not None
        and metric.show(mean) != metric.show(result.value)
    ):
        # The range and the deviation are of the compared mean: show it first.
        text = (
            f"{metric.title} · {result.series.segment.label()}: {metric.show(mean)} (mean of"
            f" the compared buckets; last bucket {metric.show(result.value)})"
        )
    bounds = expected_range(result.expected_lower, result.expected_upper, metric.show)
    text += f" (expected {bounds})" if bounds else ""
    if result.deviation is not None:
        text += f", {result.deviation * 100:+.1f}%"
    analyzers = sorted({a.result.analyzer for a in group})
    return text + f" [{', '.join(analyzers)}]"
