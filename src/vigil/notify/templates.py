"""Custom message templates: Jinja2 in a sandbox, with documented variables."""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from vigil.config.schema import MessageTemplate
from vigil.notify.message import Message, MessageInputs
from vigil.timeutil import get_zone

_TEXT = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_HTML = SandboxedEnvironment(undefined=StrictUndefined, autoescape=True)


def template_context(inputs: MessageInputs, default: Message) -> dict[str, Any]:
    """The variables a template sees (listed in docs/templates.md)."""
    metric, alerts = inputs.metric, inputs.alerts
    first = alerts[0].result
    local = first.bucket.start.astimezone(get_zone(inputs.tz))
    return {
        "project": inputs.project_name,
        "monitor": alerts[0].monitor,
        "severity": min(a.severity.value for a in alerts),
        "metric": metric.name,
        "metric_title": metric.title,
        "segment": first.series.segment.as_dict(),
        "segment_label": first.series.segment.label(),
        "value": first.value,
        "bucket": local.strftime("%Y-%m-%d %H:%M"),
        "bucket_utc": first.bucket.start.isoformat(),
        "granularity": first.bucket.granularity.name,
        "owners": inputs.owners,
        "mentions": " ".join(inputs.mention_list),
        "links": inputs.links,
        "anomalies": [
            {
                "analyzer": a.result.analyzer,
                "analyzer_type": a.result.analyzer_type,
                "reason": a.result.reason,
                "expected_lower": a.result.expected_lower,
                "expected_upper": a.result.expected_upper,
                "deviation": a.result.deviation,
                "deviation_pct": None if a.result.deviation is None else a.result.deviation * 100,
                "baselines": a.result.baselines,
            }
            for a in alerts
        ],
        "default_title": default.title,
        "default_text": default.text,
        "default_html": default.html,
    }


def render(template: MessageTemplate, context: dict[str, Any], default: Message) -> Message:
    """The templated message; parts the template leaves out keep their default."""
    return Message(
        title=_TEXT.from_string(template.title).render(context)
        if template.title
        else default.title,
        text=_TEXT.from_string(template.text).render(context) if template.text else default.text,
        html=_HTML.from_string(template.html).render(context) if template.html else default.html,
    )


__all__ = ["TemplateError", "render", "template_context"]
