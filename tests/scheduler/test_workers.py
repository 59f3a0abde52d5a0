"""Workers sharing the cycles through a PostgreSQL store: claimed once, taken over on death."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import VIGIL_YAML, ProjectFactory, Reply, WebStandIn, serving
from tests.scheduler.helpers import DROP, app_for, with_drop
from tests.scheduler.test_cross_dataset import TWO_DATASETS
from tests.store.backends import store_yaml
from vigil.app import App
from vigil.errors import VigilError
from vigil.scheduler.workers import JobQueue, Worker, worker_store

AT = DROP + timedelta(minutes=15)
MONITORS = (
    "analyzers:\n"
    "  - {id: day_week, type: same_time_comparison, metrics: [actions, sessions],"
    " buckets: 1, min_significance: null}\n"
    "monitors:\n"
    "  - {id: main, analyzers: ['*'], channels: [hook], group: none}\n"
)


class SlowHook(WebStandIn):
    """A webhook that takes a while to answer, so that deliveries can be cut short."""

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        time.sleep(0.7)
        return super().handle(path, headers, body)


def project_on_postgres(project_dir: ProjectFactory, store: str, hook: str) -> Path:
    with_drop(project_dir)
    vigil = VIGIL_YAML.replace("{type: duckdb, path: vigil.duckdb}", store).replace(
        "  console: {type: console}\n",
        f"  console: {{type: console}}\n  hook: {{type: webhook, url: '{hook}'}}\n",
    )
    return project_dir.write(
        {"vigil.yaml": vigil, "metrics/events.yaml": TWO_DATASETS, "monitors/main.yaml": MONITORS}
    )


def postgres_app(project_dir: ProjectFactory) -> Iterator[App]:
    with store_yaml("postgres") as store:
        root = project_on_postgres(project_dir, store, "http://127.0.0.1:9/none")
        app, _ = app_for(root)
        with app.session():
            app.store.migrate()
        yield app
        app.close()


def test_jobs_are_claimed_by_one_worker_at_a_time(project_dir: ProjectFactory) -> None:
    for app in postgres_app(project_dir):
        store = worker_store(app)
        first, second, third = (JobQueue(store, f"w{i}") for i in range(3))
        try:
            assert first.lead()
            assert not second.lead()  # one scheduler; the role is the server's lock
            assert first.enqueue(["events", "sessions"], AT) == 2
            assert first.enqueue(["events", "sessions"], AT) == 0  # queued once
            assert second.enqueue(["events"], AT + timedelta(minutes=15)) == 1
            with first.claim() as a, second.claim() as b, third.claim() as c:
                assert a is not None
                assert b is not None
                assert {a.dataset, b.dataset} == {"events", "sessions"}
                # events' later job waits for its earlier one: one cycle of a dataset at a time
                assert c is None
            with third.claim() as later:
                assert later is not None
                assert (later.dataset, later.at) == ("events", AT + timedelta(minutes=15))
            done = {(j["dataset"], j["status"], j["worker"]) for j in first.jobs()}
            assert ("events", "done", "w2") in done
            # The scheduler's connection dies: the role is free for the next worker.
            first.close()
            deadline = time.monotonic() + 10  # the server ends the session a moment later
            while not second.lead() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert second.lead()
        finally:
            for queue in (first, second, third):
                queue.close()


def test_a_job_whose_worker_died_is_claimed_again(project_dir: ProjectFactory) -> None:
    for app in postgres_app(project_dir):
        store = worker_store(app)
        dying, other = JobQueue(store, "dying"), JobQueue(store, "other")
        try:
            dying.enqueue(["events"], AT)
            claimed = dying.claim()
            job = claimed.__enter__()
            assert job is not None
            with other.claim() as nothing:
                assert nothing is None  # held by the dying worker
            dying.conn.close()  # as a SIGKILL would: no commit, the server drops the locks
            deadline = time.monotonic() + 10  # a moment later
            while time.monotonic() < deadline:
                with other.claim() as again:
                    if again is not None:
                        break
                time.sleep(0.05)
            assert again == job
            with contextlib.suppress(Exception):  # the dead connection's claim ends as it can
                claimed.__exit__(None, None, None)
        finally:
            dying.close()
            other.close()


def test_workers_need_the_postgres_store(project_dir: ProjectFactory) -> None:
    app, _ = app_for(project_dir.write())
    with pytest.raises(VigilError, match="needs the PostgreSQL store"):
        worker_store(app)


def worker(root: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "vigil.cli", "--project", str(root), "run", "--worker"]
    return subprocess.Popen(
        [*args, "--at", AT.isoformat()], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def migrated(stack: ExitStack, project_dir: ProjectFactory) -> tuple[SlowHook, Path]:
    """A slow recording webhook and a project on a fresh, migrated PostgreSQL store."""
    web = stack.enter_context(_served(SlowHook()))
    store = stack.enter_context(store_yaml("postgres"))
    root = project_on_postgres(project_dir, store, f"{web.url}/hook")
    migrate = [sys.executable, "-m", "vigil.cli", "--project", str(root), "store", "migrate"]
    subprocess.run(migrate, env=dict(os.environ), check=True, capture_output=True)
    return web, root


def outcome(root: Path) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """The jobs and the notifications in the store."""
    app, _ = app_for(root)
    queue = JobQueue(worker_store(app), "reader")
    jobs = queue.jobs()
    queue.close()
    rows = app.store.notification_rows()
    app.close()
    return jobs, rows


@pytest.mark.slow
def test_two_workers_share_the_datasets_and_send_each_alert_once(
    project_dir: ProjectFactory,
) -> None:
    with ExitStack() as stack:
        web, root = migrated(stack, project_dir)
        runs = [worker(root, dict(os.environ)) for _ in range(2)]
        outputs = [p.communicate(timeout=120)[0].decode() for p in runs]
        assert all(p.returncode == 0 for p in runs), outputs
        jobs, rows = outcome(root)
    assert {(j["dataset"], j["status"]) for j in jobs} == {("events", "done"), ("sessions", "done")}
    keys = Counter(r.headers["x-vigil-key"] for r in web.requests)
    assert len(rows) == 6  # total, iOS, Android in each dataset (group: none)
    assert {r["status"] for r in rows} == {"sent"}
    assert set(keys) == {r["key"] for r in rows}
    assert set(keys.values()) == {1}, keys


@pytest.mark.slow
def test_a_killed_workers_job_is_finished_by_another(project_dir: ProjectFactory) -> None:
    with ExitStack() as stack:
        web, root = migrated(stack, project_dir)
        first = worker(root, dict(os.environ))
        deadline = time.monotonic() + 60
        while not web.requests and time.monotonic() < deadline:
            time.sleep(0.05)
        assert web.requests, "the first worker never delivered"
        first.send_signal(signal.SIGKILL)  # mid-delivery of its first job
        first.communicate(timeout=30)
        killed_at = time.monotonic()
        second = worker(root, dict(os.environ))
        output = second.communicate(timeout=120)[0].decode()
        assert second.returncode == 0, output
        took_over = time.monotonic() - killed_at
        jobs, rows = outcome(root)
    assert {j["status"] for j in jobs} == {"done"}
    assert len(rows) == 6
    assert {r["status"] for r in rows} == {"sent"}
    keys = Counter(r.headers["x-vigil-key"] for r in web.requests)
    assert set(keys) == {r["key"] for r in rows}  # nothing lost
    # Only the request in flight when the worker died may arrive twice: with the same
    # x-vigil-key, which the webhook's receiver deduplicates on (docs/channels.md).
    assert sum(n - 1 for n in keys.values()) <= 1, keys
    assert took_over < 60


def _served(server: SlowHook) -> contextlib.AbstractContextManager[SlowHook]:
    return contextlib.contextmanager(serving)(server)


def test_the_scheduling_worker_sends_the_reports_that_come_due(
    project_dir: ProjectFactory,
) -> None:
    report = (
        "reports:\n  - {id: noon, title: Noon summary, cron: '15 12 * * *',"
        " channels: [console], metrics: [actions]}\n"
    )
    with store_yaml("postgres") as store:
        root = project_on_postgres(project_dir, store, "http://127.0.0.1:9/none")
        (root / "monitors" / "report.yaml").write_text(report)
        app, out = app_for(root)
        with app.session():
            app.store.migrate()
        queue = JobQueue(worker_store(app), "w")
        try:
            worker = Worker(app, queue)
            worker.lead_chores(DROP)  # 12:00: the report is due at 12:15
            assert "Noon summary" not in out.getvalue()
            worker.lead_chores(DROP + timedelta(minutes=20))
            assert out.getvalue().count("Noon summary") == 1
            worker.lead_chores(DROP + timedelta(minutes=40))
            assert out.getvalue().count("Noon summary") == 1  # once
        finally:
            queue.close()
            app.close()
