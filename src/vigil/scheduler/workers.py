"""Several `vigil run --worker` processes sharing the work through the PostgreSQL store.

Each (dataset, due time) cycle is a row of `worker_jobs`. One worker at a time schedules: the
one holding a session-level advisory lock (`pg_try_advisory_lock`), which the server frees when
that worker's connection dies — no leases, no clocks — adds the due rows (`ON CONFLICT DO
NOTHING`, so a second scheduler would change nothing). Every worker claims the oldest queued
row with `SELECT … FOR UPDATE SKIP LOCKED` in a transaction that stays open while it runs that
dataset's cycle, and marks it done in the same transaction. A worker that dies mid-cycle drops
its connection, the row lock goes with it, and the next worker to look (within a second)
claims the job again; the cycle resumes from what the store committed (analysed buckets are
not analysed twice). Notifications are delivered by whichever worker runs a job, each claimed
first (an advisory lock and a conditional mark per notification), so each is sent once.

The scheduling worker also reads the chats' button presses and sends the reports that come
due, as `vigil run`'s leader does. A DuckDB store is one process's file: workers need the
PostgreSQL store. (A ClickHouse store has no row locks; pairing it with a PostgreSQL
coordination database is not built.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vigil.app import App
from vigil.errors import VigilError
from vigil.notify.actions import poll_chat_actions
from vigil.notify.pipeline import deliver_outbox
from vigil.notify.reports import due, queue_due
from vigil.scheduler.cycle import CycleReport, is_fire_time, run_cycle
from vigil.scheduler.schedule import next_due
from vigil.store.postgres import PostgresStore
from vigil.timeutil import as_utc, to_naive_utc

log = logging.getLogger(__name__)

# pg_advisory_lock classes (the first key; the second is a hash of the store's schema, and of
# the dataset's name: advisory locks are per database, and several stores may share one).
SCHEDULER_LOCKS = 0x76696773  # "vigs": the scheduling role of a store
DATASET_LOCKS = 0x7669676A  # "vigj": a dataset's running job
TABLE_LOCKS = 0x76696774  # "vigt": creating the jobs table
POLL = 1.0  # seconds between looks at an empty queue

_TABLE = """
CREATE TABLE IF NOT EXISTS worker_jobs (
    dataset TEXT NOT NULL,
    at TIMESTAMP NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    worker TEXT,
    queued_at TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    finished_at TIMESTAMP,
    error TEXT,
    PRIMARY KEY (dataset, at)
)
"""


@dataclass(frozen=True)
class Job:
    """One dataset's cycle at one due time."""

    dataset: str
    at: datetime


class JobQueue:
    """The `worker_jobs` table of a PostgreSQL store, seen by one worker (two connections of
    its own: one claims jobs, one holds the scheduling lock)."""

    def __init__(self, store: PostgresStore, worker: str) -> None:
        self.worker = worker
        self.schema = store.schema
        self.conn = store.connection()
        self.lock_conn = store.connection()
        self.scheduling = False
        for conn in (self.conn, self.lock_conn):  # pg_stat_activity names the worker
            conn.execute("SELECT set_config('application_name', %s, false)", [f"vigil {worker}"])
        with self.conn.transaction():
            self.conn.execute(
                "SELECT pg_advisory_xact_lock(%s::int, hashtext(%s))", [TABLE_LOCKS, self.schema]
            )
            self.conn.execute(_TABLE)

    def lead(self) -> bool:
        """Whether this worker schedules (taking the role when it is free)."""
        if not self.scheduling:
            row = self.lock_conn.execute(
                "SELECT pg_try_advisory_lock(%s::int, hashtext(%s))",
                [SCHEDULER_LOCKS, self.schema],
            ).fetchone()
            self.scheduling = bool(row and row[0])
        return self.scheduling

    def enqueue(self, datasets: list[str], at: datetime) -> int:
        """Add a job per dataset at `at` (an existing one is left as it is)."""
        added = 0
        with self.conn.transaction():
            for name in datasets:
                cursor = self.conn.execute(
                    "INSERT INTO worker_jobs (dataset, at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    [name, to_naive_utc(at)],
                )
                added += cursor.rowcount
        return added

    @contextmanager
    def claim(self) -> Iterator[Job | None]:
        """The oldest queued job no other worker holds (None when there is none), held until
        the block ends: then it is done (with the block's error, if it raised)."""
        with self.conn.transaction():
            job = self._take()
            if job is None:
                yield None
                return
            error = ""
            try:
                yield job
            except VigilError as e:
                error = str(e)
                log.error("job %s at %s failed: %s", job.dataset, job.at, e)
            self.conn.execute(
                "UPDATE worker_jobs SET status = 'done', worker = %s, error = %s,"
                " finished_at = now() AT TIME ZONE 'UTC' WHERE dataset = %s AND at = %s",
                [self.worker, error, job.dataset, to_naive_utc(job.at)],
            )

    def _take(self) -> Job | None:
        """Lock the oldest queued job whose dataset no other worker is running: the dataset's
        advisory lock first (one cycle of a dataset at a time), then the row (SKIP LOCKED)."""
        candidates = self.conn.execute(
            "SELECT dataset, at FROM worker_jobs WHERE status = 'queued'"
            " ORDER BY at, dataset LIMIT 50"
        ).fetchall()
        tried: set[str] = set()
        for dataset, at in candidates:
            if dataset in tried:
                continue  # its oldest job is someone else's: the later ones wait
            tried.add(dataset)
            free = self.conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s::int, hashtext(%s))",
                [DATASET_LOCKS, f"{self.schema}.{dataset}"],
            ).fetchone()
            if not (free and free[0]):
                continue
            row = self.conn.execute(
                "SELECT 1 FROM worker_jobs WHERE dataset = %s AND at = %s AND status = 'queued'"
                " FOR UPDATE SKIP LOCKED",
                [dataset, at],
            ).fetchone()
            if row is not None:
                return Job(str(dataset), as_utc(at))
        return None

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, oldest first (for /health, the CLI and tests)."""
        cursor = self.conn.execute(
            "SELECT dataset, at, status, worker, error FROM worker_jobs ORDER BY at, dataset"
        )
        names = [c.name for c in cursor.description or []]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def close(self) -> None:
        """Give up the scheduling role and the connections."""
        for conn in (self.conn, self.lock_conn):
            try:
                conn.close()
            except Exception:  # closing is best effort; the server frees what was held
                log.debug("closing a worker connection failed", exc_info=True)


def worker_store(app: App) -> PostgresStore:
    """The store as a PostgreSQL store, or a clear error."""
    if not isinstance(app.store, PostgresStore):
        raise VigilError(
            "vigil run --worker needs the PostgreSQL store (store: {type: postgres, ...}):"
            f" workers share the work through its row locks; this project's store is"
            f" '{app.project.settings.store.type}'"
        )
    return app.store


@dataclass
class Worker:
    """One worker process's loop: schedule when it holds the role, run queued jobs."""

    app: App
    queue: JobQueue
    next_at: datetime | None = None
    reports_checked: datetime | None = None  # reports due before the worker started are not sent

    def lead_chores(self, now: datetime) -> None:
        """As the scheduler, what `vigil run`'s leader does besides cycles: read the chats'
        button presses and send the reports that came due."""
        if not self.queue.lead():
            return
        app = self.app
        since, self.reports_checked = self.reports_checked or now, now
        try:
            sent = poll_chat_actions(app.project, app.store, app.channels, now)
            if app.project.reports and since < now and due(app.project, since, now):
                sent = queue_due(app.project, app.store, since, now) or sent
            if sent:
                deliver_outbox(app.store, app.channels, app.project.secrets, now)
        except VigilError as e:
            log.error("reports or button presses not handled: %s", e)

    def schedule(self, now: datetime) -> int:
        """As the scheduler: queue every dataset due at the next due time once it has come
        (and at `now` on the first call: the catch-up cycle)."""
        if not self.queue.lead():
            return 0
        at = now if self.next_at is None else self.next_at
        if at > now:
            return 0
        self.next_at = next_due(self.app.project, now)
        return self.queue_due(at)

    def queue_due(self, at: datetime) -> int:
        """Queue the datasets due at `at` (a job already queued or done stays as it is)."""
        due = [d.name for d in self.app.project.datasets if is_fire_time(d, at)]
        return self.queue.enqueue(due, at)

    def work_one(self) -> CycleReport | None:
        """Run one queued job (its dataset's cycle, then the outbox); None when idle."""
        with self.queue.claim() as job:
            if job is None:
                return None
            return run_cycle(self.app, job.at, scheduled_only=True, datasets={job.dataset})

    def run(
        self,
        at: datetime | None = None,
        on_cycle: Callable[[CycleReport], None] | None = None,
    ) -> int:
        """Schedule and work until stopped; return the jobs run. With `at`, one pass instead:
        queue that time's jobs, run jobs until none is queued, and return (a one-shot
        `vigil run --worker --at`)."""
        ran = 0
        if at is not None:
            # Every one-shot worker queues the time's jobs (the same rows: added once), so
            # none finds the queue empty before the scheduling one has filled it.
            self.queue_due(at)
        while True:
            if at is None:
                self.schedule(self.app.clock.now())
            report = self.work_one()
            if report is not None:
                ran += 1
                if on_cycle is not None:
                    on_cycle(report)
                continue
            if at is not None:
                return ran
            self.lead_chores(self.app.clock.now())
            wait = POLL
            if self.next_at is not None and self.queue.scheduling:
                left = (self.next_at - self.app.clock.now()).total_seconds()
                wait = max(0.0, min(POLL, left))
            if not self.app.clock.sleep(wait):
                return ran
