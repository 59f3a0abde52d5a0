"""The channel interface and the console channel."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Protocol, TextIO

from vigil.errors import NotifyError
from vigil.model import Notification

log = logging.getLogger(__name__)


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


def deliver_resolution(
    notification: Notification,
    progress: Progress | None,
    edit: Callable[[int], None],
    reply: Callable[[int], None],
) -> int:
    """A resolution on a channel that edits messages: part 1 edits the message it answers
    (when its id is known; a refused edit is logged, the reply still tells), part 2 — for
    kind `resolved` — replies in its thread. `edit` and `reply` get the parts sent so far."""
    parts = notification.parts_sent
    if parts < 1:
        if notification.remote_ref:
            try:
                edit(parts)
            except NotifyError as e:
                # Already edited (a resend), or too old or gone.
                if e.retryable:
                    raise
                log.warning("%s: the resolved message was not edited: %s", notification.channel, e)
        parts = 1
        if progress is not None:
            progress(parts)
    if parts < 2 and notification.kind == "resolved":
        reply(parts)
        parts = 2
        if progress is not None:
            progress(parts)
    return parts
