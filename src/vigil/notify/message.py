"""Compose the alert message: metric, slice, value, baselines, deviation, owners, links."""

from __future__ import annotations

import html
import string
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from vigil.config.project import Metric
from vigil.model import Alert, Bucket, SeriesKey, Severity
from vigil.numbers import format_number
from vigil.timeutil import get_zone

SEVERITY_MARK = {
    Severity.CRITICAL: "🔴",
    Severity.HIGH: "🟠",
    Severity.MEDIUM: "🟡",
    Severity.LOW: "🔵",
    Severity.INFO: "⚪",
}


@dataclass(frozen=True)
class Message:
    """One alert message in plain text and Telegram-style HTML."""

    title: str
    text: str
    html: str


def render_links(
    templates: dict[str, str], series: SeriesKey, bucket: Bucket, dataset: str
) -> dict[str, str]:
    """Fill each link template; values are URL-encoded."""
    fields = {
        "metric": series.metric,
        "segment": series.segment.label(),
        "bucket": bucket.start.isoformat(),
        "bucket_end": bucket.end.isoformat(),
        "granularity": bucket.granularity.name,
        "dataset": dataset,
    }
    encoded = {k: quote(v, safe="") for k, v in fields.items()}
    out = {}
    for name, template in templates.items():
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
        out[name] = template.format(**{k: encoded.get(k, "") for k in names})
    return out


@dataclass(frozen=True)
class MessageInputs:
    """What a message about one monitor's alerts on one series and bucket is made from."""

    project_name: str
    metric: Metric
    alerts: list[Alert]
    owners: list[str]
    links: dict[str, str]
    tz: str
    mentions: list[str] | None = None

    @property
    def mention_list(self) -> list[str]:
        """The owners in the channel's mention syntax (the handles themselves by default)."""
        return self.owners if self.mentions is None else self.mentions


def compose_message(inputs: MessageInputs) -> Message:
    """The message for all alerts of one monitor on one series and bucket."""
    project_name, metric, alerts = inputs.project_name, inputs.metric, inputs.alerts
    owners, links, tz = inputs.mention_list, inputs.links, inputs.tz
    first = alerts[0].result
    series, bucket = first.series, first.bucket
    severity = min((a.severity for a in alerts), key=list(Severity).index)
    local = bucket.start.astimezone(get_zone(tz))
    when = f"{local:%Y-%m-%d %H:%M} ({bucket.granularity.name} bucket, {tz})"
    title = f"{metric.title} · {series.segment.label()}"
    value = metric.show(first.value)
    lines = [f"{SEVERITY_MARK[severity]} {title}", f"Value: {value} at {when}"]
    html_lines = [
        f"{SEVERITY_MARK[severity]} <b>{html.escape(metric.title)}</b> · "
        f"<i>{html.escape(series.segment.label())}</i>",
        f"Value: <b>{html.escape(value)}</b> at {html.escape(when)}",
    ]
    for alert in alerts:
        r = alert.result
        bounds = expected_range(r.expected_lower, r.expected_upper, metric.show)
        expected = f"; expected {bounds}" if bounds else ""
        deviation = f"; deviation {r.deviation * 100:+.1f}%" if r.deviation is not None else ""
        line = f"{r.analyzer} ({r.analyzer_type}): {r.reason}{expected}{deviation}"
        lines.append(line)
        html_lines.append(html.escape(line))
    footer = f"Severity: {severity.value} · monitor {alerts[0].monitor} · {project_name}"
    add_footer(lines, html_lines, footer, owners, links)
    return Message(title=title, text="\n".join(lines), html="\n".join(html_lines))


def expected_range(
    lower: float | None, upper: float | None, show: Callable[[float | None], str] = format_number
) -> str:
    """`10 – 20`, `≥ 10` or `≤ 20` (an open side is left out, never "n/a"), or nothing."""
    if lower is not None and upper is not None:
        return f"{show(lower)} – {show(upper)}"
    if lower is not None:
        return f"≥ {show(lower)}"
    if upper is not None:
        return f"≤ {show(upper)}"
    return ""


def add_footer(
    lines: list[str], html_lines: list[str], footer: str, owners: list[str], links: dict[str, str]
) -> None:
    """The severity line, the owners to @mention and the links, in text and HTML."""
    lines.append(footer)
    html_lines.append(html.escape(footer))
    if owners:
        lines.append("Owners: " + " ".join(owners))
        html_lines.append("Owners: " + html.escape(" ".join(owners)))
    for name, url in links.items():
        lines.append(f"{name}: {url}")
        html_lines.append(f'<a href="{html.escape(url, quote=True)}">{html.escape(name)}</a>')
