"""Notify: monitors route anomalies to channels through a persisted outbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from vigil.config.schema import ChannelConfig
from vigil.notify.channels import Channel, ConsoleChannel
from vigil.notify.telegram import TelegramChannel

BACKENDS: dict[str, Callable[[str, Any, TextIO | None], Channel]] = {
    "console": lambda name, _config, stream: ConsoleChannel(name, stream),
    "telegram": lambda name, config, _stream: TelegramChannel(name, config),
}


def build_channel(name: str, config: ChannelConfig, stream: TextIO | None = None) -> Channel:
    """The channel backend registered for the config's `type`."""
    return BACKENDS[config.type](name, config, stream)


__all__ = ["Channel", "build_channel"]
