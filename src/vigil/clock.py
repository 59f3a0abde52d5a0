"""Injected time: the system clock in production, a manual one in tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the time and waits."""

    def now(self) -> datetime:
        """The current UTC time."""
        ...

    def sleep(self, seconds: float) -> bool:
        """Wait; return False if woken early by a stop request."""
        ...


class SystemClock:
    """Real time; `sleep` wakes early when `stop()` is called (graceful shutdown)."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def now(self) -> datetime:
        """Wall-clock UTC."""
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> bool:
        """Wait up to `seconds`; False when stopped."""
        return not self._stop.wait(max(0.0, seconds))

    def stop(self) -> None:
        """Wake every sleeper and make further sleeps return at once."""
        self._stop.set()


class ManualClock:
    """A clock that moves only when told to (sleeping advances it instantly)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        """The manual time."""
        return self._now

    def sleep(self, seconds: float) -> bool:
        """Jump forward."""
        self._now += timedelta(seconds=max(0.0, seconds))
        return True

    def set(self, instant: datetime) -> None:
        """Jump to an instant."""
        self._now = instant
