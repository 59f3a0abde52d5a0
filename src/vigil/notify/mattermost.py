"""Mattermost incoming webhook: markdown text."""

from __future__ import annotations

from typing import Any

import httpx

from vigil.config.schema import MattermostChannelConfig
from vigil.model import Notification
from vigil.notify.channels import Progress
from vigil.notify.http import post


class MattermostChannel:
    """Posts one message per notification."""

    idempotent = False

    def __init__(self, name: str, config: MattermostChannelConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """One request."""
        first, _, rest = notification.text.partition("\n")
        body: dict[str, Any] = {"text": f"**{first}**" + (f"\n{rest}" if rest else "")}
        if self.config.channel:
            body["channel"] = self.config.channel
        if self.config.username:
            body["username"] = self.config.username
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            url = self.config.webhook_url.get_secret_value()
            post(client, url, f"mattermost {self.name}", json=body)
        return 1
