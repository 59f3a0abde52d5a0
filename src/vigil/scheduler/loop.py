"""`vigil run`: cycles at every due time, as the only leader, reloading edited config."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from vigil.app import App, build_app
from vigil.config import load_project
from vigil.config.watch import ConfigWatcher
from vigil.errors import ConfigError, VigilError
from vigil.model import RunRecord
from vigil.notify.actions import poll_chat_actions
from vigil.notify.pipeline import deliver_outbox
from vigil.notify.reports import due, queue_due
from vigil.scheduler.cycle import CycleReport, run_cycle
from vigil.scheduler.retention import PRUNE_EVERY, prune
from vigil.scheduler.schedule import next_due

log = logging.getLogger(__name__)
LOCK_NAME = "scheduler"


def default_owner() -> str:
    """A name for this process that is unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Loop:
    """The scheduler loop's state: the running app, its leadership and its config watcher."""

    app: App
    owner: str = field(default_factory=default_owner)
    on_cycle: Callable[[CycleReport], None] = lambda _: None
    reload_poll: float = 2.0
    on_event: Callable[[str], None] = lambda _: None
    watcher: ConfigWatcher | None = None
    pruned_at: datetime | None = None
    reports_checked: datetime | None = None  # reports due before the loop started are not sent

    def run(self, max_cycles: int | None = None) -> int:
        """A catch-up cycle now, then one at each due time, until stopped; return cycles run.

        Returns when the clock's sleep is interrupted (SIGTERM/SIGINT) or after `max_cycles`
        wake-ups. A failing cycle is logged and the loop goes on.
        """
        if self.watcher is None:
            self.watcher = ConfigWatcher(self.app.project.root)
            self.watcher.changed(self.app.project.settings.include)
        wakeups = 0
        at = self.app.clock.now()
        try:
            while max_cycles is None or wakeups < max_cycles:
                self._reload_if_changed()
                self._cycle_if_leader(at)
                wakeups += 1
                if max_cycles is not None and wakeups >= max_cycles:
                    break
                at = next_due(self.app.project, self.app.clock.now())
                if not self._sleep_until(at):
                    break
        finally:
            self.app.store.release_lock(LOCK_NAME, self.owner)
        return wakeups

    def _sleep_until(self, at: datetime) -> bool:
        """Wait for the next cycle, picking up config edits meanwhile; False when stopped.

        The wait is cut into `reload_poll` slices so that an edit (or a bad edit's error) is
        seen within seconds, not at the next due time.
        """
        while True:
            left = (at - self.app.clock.now()).total_seconds()
            if left <= 0:
                return True
            poll = self.reload_poll if self.app.project.settings.scheduler.hot_reload else left
            if not self.app.clock.sleep(min(left, poll)):
                return False
            if left > poll:
                self._reload_if_changed()
                self._poll_actions()
                self._send_due_reports()

    def _send_due_reports(self) -> None:
        """Queue and deliver the reports whose time came since the last look (the leader)."""
        app = self.app
        now = app.clock.now()
        since, self.reports_checked = self.reports_checked or now, now
        if not app.project.reports or since >= now or not due(app.project, since, now):
            return
        ttl = app.project.settings.scheduler.lock_ttl
        if not app.store.acquire_lock(LOCK_NAME, self.owner, now, ttl):
            return  # the leader sends them
        try:
            if queue_due(app.project, app.store, since, now):
                deliver_outbox(app.store, app.channels, app.project.secrets, now)
        except VigilError as e:
            log.error("reports not sent: %s", e)

    def _poll_actions(self) -> None:
        """Button presses in the chats, done within seconds (by the leader only)."""
        app = self.app
        polled = [
            c
            for c in app.channels.values()
            if getattr(getattr(c, "config", None), "actions", False)
        ]
        if not polled or not app.store.acquire_lock(
            LOCK_NAME, self.owner, app.clock.now(), app.project.settings.scheduler.lock_ttl
        ):
            return
        try:
            if poll_chat_actions(app.project, app.store, app.channels, app.clock.now()):
                deliver_outbox(app.store, app.channels, app.project.secrets, app.clock.now())
        except VigilError as e:
            log.error("button presses not read: %s", e)

    def _cycle_if_leader(self, at: datetime) -> None:
        app = self.app
        ttl = app.project.settings.scheduler.lock_ttl
        if not app.store.acquire_lock(LOCK_NAME, self.owner, app.clock.now(), ttl):
            self.on_event("standby: another vigil run holds the scheduler lock")
            return
        try:
            self.on_cycle(run_cycle(app, at, scheduled_only=True))
            self._send_due_reports()
        except VigilError as e:
            log.error("cycle at %s failed: %s", at, e)
            self.on_event(f"cycle failed: {e}")
        self._prune_if_due()

    def _prune_if_due(self) -> None:
        """Apply retention when leading starts, then once a day."""
        now = self.app.clock.now()
        if self.pruned_at is not None and now - self.pruned_at < PRUNE_EVERY:
            return
        self.pruned_at = now
        try:
            counts = prune(self.app, now)
        except VigilError as e:
            log.error("retention prune failed: %s", e)
            self.on_event(f"retention prune failed: {e}")
            return
        if any(counts.values()):
            deleted = ", ".join(f"{n} {table}" for table, n in counts.items() if n)
            self.on_event(f"retention: deleted {deleted}")

    def _reload_if_changed(self) -> None:
        app = self.app
        if not app.project.settings.scheduler.hot_reload or self.watcher is None:
            return
        if not self.watcher.changed(app.project.settings.include):
            return
        now = app.clock.now()
        try:
            project = load_project(app.project.root)
        except ConfigError as e:
            error = "\n".join(e.problems)
            log.error("config reload failed; keeping the running configuration:\n%s", error)
            self.on_event(f"config reload failed; keeping the running configuration:\n{error}")
            app.store.record_runs(
                [RunRecord("", "reload", "*", "config", now, now, "error", 0, 0, error)]
            )
            return
        replacement = build_app(project, app.clock, app.out)
        app.close()
        self.app = replacement
        replacement.store.record_runs([RunRecord("", "reload", "*", "config", now, now, "ok")])
        self.on_event("config reloaded")


def run_loop(
    app: App,
    *,
    on_cycle: Callable[[CycleReport], None] = lambda _: None,
    max_cycles: int | None = None,
) -> int:
    """Run the scheduler loop for `app` (see `Loop.run`)."""
    return Loop(app, on_cycle=on_cycle).run(max_cycles)
