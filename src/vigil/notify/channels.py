"""The channel interface and the console channel."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from vigil.model import Notification


class Channel(Protocol):
    """Delivers one notification; resumes from `parts_sent` so no part is sent twice."""

    name: str

    def deliver(self, notification: Notification) -> int:
        """Send what is left of the notification; return the number of parts sent in total.

        On failure raise NotifyError with `parts_sent` set to the parts that did go out.
        """
        ...


class ConsoleChannel:
    """Prints the alert text (and where its chart was saved) to a stream."""

    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self.stream = stream

    def deliver(self, notification: Notification) -> int:
        """Print the message."""
        out = self.stream or sys.stdout
        out.write(f"\n{notification.text}\n")
        out.flush()
        return 1
