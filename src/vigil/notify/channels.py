"""The channel interface and the console channel."""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from vigil.model import Notification


class Progress(Protocol):
    """Called with the number of parts sent so far, each time one more part has gone out;
    `ref` is the channel's id of the message just sent (to edit and answer it later)."""

    def __call__(self, parts: int, ref: str | None = None) -> None: ...


class Channel(Protocol):
    """Delivers one notification; resumes from `parts_sent` so no part is sent twice.

    `idempotent` channels carry a key the receiver deduplicates on (a resend after a crash
    is harmless); for the others a resend of a part that may have arrived is tagged.
    """

    name: str
    idempotent: bool

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """Send what is left of the notification; return the number of parts sent in total.

        Multi-part channels call `progress` after each part. On failure raise NotifyError
        with `parts_sent` set to the parts that did go out.
        """
        ...


class ConsoleChannel:
    """Prints the alert text (and where its chart was saved) to a stream."""

    idempotent = False

    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        self.stream = stream

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """Print the message."""
        out = self.stream or sys.stdout
        out.write(f"\n{notification.text}\n")
        out.flush()
        return 1
