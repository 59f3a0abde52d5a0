"""Microsoft Teams incoming webhook: a MessageCard."""

from __future__ import annotations

import httpx

from vigil.config.schema import TeamsChannelConfig
from vigil.model import Notification
from vigil.notify.channels import Progress
from vigil.notify.http import post

COLORS = {"critical": "D62728", "high": "FF7F0E", "medium": "FFD700", "low": "1F77B4"}


class TeamsChannel:
    """Posts one card per notification."""

    idempotent = False

    def __init__(self, name: str, config: TeamsChannelConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """One request."""
        card = {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": notification.title,
            "themeColor": COLORS.get(notification.severity, "808080"),
            "title": notification.title,
            "text": "<br>".join(notification.text.splitlines()[1:]),
        }
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            post(
                client, self.config.webhook_url.get_secret_value(), f"teams {self.name}", json=card
            )
        return 1
