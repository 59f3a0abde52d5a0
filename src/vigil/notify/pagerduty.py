"""PagerDuty Events API v2: trigger with a dedup_key stable per monitor and series."""

from __future__ import annotations

import hashlib

import httpx

from vigil.config.schema import PagerDutyChannelConfig
from vigil.model import Notification
from vigil.notify.channels import Progress
from vigil.notify.http import post

SEVERITY = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
    "info": "info",
}


def dedup_key(notification: Notification) -> str:
    """One PagerDuty incident per monitor and series: repeated triggers update it."""
    raw = f"{notification.monitor}|{notification.series.metric}|{notification.series.segment.key}"
    return "vigil-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


class PagerDutyChannel:
    """Sends a trigger event."""

    idempotent = True

    def __init__(self, name: str, config: PagerDutyChannelConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """One event: `resolve` for a resolved incident, else `trigger`."""
        if notification.kind == "resolved":
            event: dict[str, object] = {
                "routing_key": self.config.routing_key.get_secret_value(),
                "event_action": "resolve",
                "dedup_key": dedup_key(notification),
            }
            return self._send(event)
        event = {
            "routing_key": self.config.routing_key.get_secret_value(),
            "event_action": "trigger",
            "dedup_key": dedup_key(notification),
            "payload": {
                "summary": notification.title,
                "source": f"vigil:{notification.monitor}",
                "severity": SEVERITY.get(notification.severity, "error"),
                "timestamp": notification.bucket.start.isoformat(),
                "component": notification.series.metric,
                "custom_details": {
                    "segment": notification.series.segment.as_dict(),
                    "text": notification.text,
                    "owners": notification.recipients,
                },
            },
        }
        return self._send(event)

    def _send(self, event: dict[str, object]) -> int:
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            post(client, self.config.api_url, f"pagerduty {self.name}", json=event)
        return 1
