"""Prometheus Alertmanager, API v2: Vigil's incidents as alerts that fire and resolve.

An incident message becomes one alert per series it is about, labelled so that
Alertmanager's routing, grouping and silences work on Vigil's words: `alertname`, `monitor`,
`metric`, `segment` (and each segment tag as a label of its own), `severity`, plus the
channel's `labels`. The alert carries the message as annotations and an `endsAt` of
`active_for` ahead, since Vigil sends it once rather than re-sending it every minute as
Prometheus does. The incident's resolution posts the same labels with `endsAt` = the time it
was normal again, which resolves them. Pipeline messages fire and resolve too: "no data" /
"data is back" and "failing" / "recovered", one alert per dataset.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from vigil.config.schema import AlertmanagerChannelConfig
from vigil.model import Notification, Segment
from vigil.notify.channels import Progress
from vigil.notify.http import post

# A pipeline message that ends what another began: it resolves that one's alerts.
ENDS = {"pipeline:data_back": "pipeline:no_data", "pipeline:recovered": "pipeline:failure"}
RESOLVING = ("resolved", "resolved-edit")
_RESERVED = {"alertname", "monitor", "metric", "segment", "severity", "dataset"}


def label_name(tag: str) -> str:
    """A segment tag as a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)."""
    name = re.sub(r"[^a-zA-Z0-9_]", "_", tag)
    return name if re.match(r"[a-zA-Z_]", name) else f"_{name}"


class AlertmanagerChannel:
    """Posts alerts to /api/v2/alerts; repeating a post is harmless (same labels, same alert)."""

    idempotent = True

    def __init__(self, name: str, config: AlertmanagerChannelConfig) -> None:
        self.name = name
        self.config = config

    def alerts(self, notification: Notification, now: datetime) -> list[dict[str, object]]:
        """The alerts a notification fires or resolves."""
        cfg = self.config
        resolving = notification.kind in RESOLVING or notification.monitor in ENDS
        at = notification.bucket.start
        ends = at if resolving else now + cfg.active_for
        starts = min(at, ends)
        annotations = {"summary": notification.title, "description": notification.text}
        if notification.recipients:
            annotations["owners"] = notification.recipients
        out: list[dict[str, object]] = []
        for labels in self._label_sets(notification):
            alert: dict[str, object] = {
                "labels": {**cfg.labels, **labels, "alertname": cfg.alertname},
                "startsAt": _rfc3339(starts),
                "endsAt": _rfc3339(ends),
            }
            if not resolving:
                alert["annotations"] = annotations
            out.append(alert)
        return out

    def _label_sets(self, notification: Notification) -> list[dict[str, str]]:
        monitor = ENDS.get(notification.monitor, notification.monitor)
        if monitor.startswith("pipeline:"):
            return [
                {"monitor": monitor, "dataset": dataset}
                for dataset in notification.series.metric.split("+")
            ]
        members = notification.members or (
            (notification.monitor, notification.series.metric, notification.series.segment.key),
        )
        out = []
        for member_monitor, metric, key in members:
            segment = Segment.from_key(key)
            labels = {label_name(k): v for k, v in segment.tags if label_name(k) not in _RESERVED}
            labels.update(monitor=member_monitor, metric=metric, segment=segment.label())
            if notification.severity:
                labels["severity"] = notification.severity
            out.append(labels)
        return out

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """One POST with every alert of the notification."""
        cfg = self.config
        auth = None
        if cfg.username is not None:
            secret = cfg.password.get_secret_value() if cfg.password is not None else ""
            auth = httpx.BasicAuth(cfg.username, secret)
        body = self.alerts(notification, datetime.now(UTC))
        with httpx.Client(timeout=cfg.timeout.total_seconds(), auth=auth) as client:
            url = cfg.url.rstrip("/") + "/api/v2/alerts"
            post(client, url, f"alertmanager {self.name}", json=body)
        return 1


def _rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
