"""Notify: monitors route anomalies to channels through a persisted outbox."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TextIO

from vigil.config.schema import ChannelConfig
from vigil.notify.channels import Channel, ConsoleChannel

# type → (module, class); a channel's module (and its HTTP client) loads only when configured.
BACKENDS: dict[str, tuple[str, str]] = {
    "telegram": ("vigil.notify.telegram", "TelegramChannel"),
    "slack": ("vigil.notify.slack", "SlackChannel"),
    "email": ("vigil.notify.email", "EmailChannel"),
    "webhook": ("vigil.notify.webhook", "WebhookChannel"),
    "pagerduty": ("vigil.notify.pagerduty", "PagerDutyChannel"),
    "alertmanager": ("vigil.notify.alertmanager", "AlertmanagerChannel"),
    "teams": ("vigil.notify.teams", "TeamsChannel"),
    "mattermost": ("vigil.notify.mattermost", "MattermostChannel"),
}


def build_channel(name: str, config: ChannelConfig, stream: TextIO | None = None) -> Channel:
    """The channel backend registered for the config's `type`."""
    if config.type == "console":
        return ConsoleChannel(name, stream)
    module, cls = BACKENDS[config.type]
    factory: Callable[[str, Any], Channel] = getattr(importlib.import_module(module), cls)
    return factory(name, config)


__all__ = ["Channel", "build_channel"]
