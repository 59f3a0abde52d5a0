"""Notify: monitors route anomalies to channels through a persisted outbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from vigil.config.schema import ChannelConfig
from vigil.notify.channels import Channel, ConsoleChannel
from vigil.notify.email import EmailChannel
from vigil.notify.mattermost import MattermostChannel
from vigil.notify.pagerduty import PagerDutyChannel
from vigil.notify.slack import SlackChannel
from vigil.notify.teams import TeamsChannel
from vigil.notify.telegram import TelegramChannel
from vigil.notify.webhook import WebhookChannel

BACKENDS: dict[str, Callable[[str, Any, TextIO | None], Channel]] = {
    "console": lambda name, _config, stream: ConsoleChannel(name, stream),
    "telegram": lambda name, config, _stream: TelegramChannel(name, config),
    "slack": lambda name, config, _stream: SlackChannel(name, config),
    "email": lambda name, config, _stream: EmailChannel(name, config),
    "webhook": lambda name, config, _stream: WebhookChannel(name, config),
    "pagerduty": lambda name, config, _stream: PagerDutyChannel(name, config),
    "teams": lambda name, config, _stream: TeamsChannel(name, config),
    "mattermost": lambda name, config, _stream: MattermostChannel(name, config),
}


def build_channel(name: str, config: ChannelConfig, stream: TextIO | None = None) -> Channel:
    """The channel backend registered for the config's `type`."""
    return BACKENDS[config.type](name, config, stream)


__all__ = ["Channel", "build_channel"]
