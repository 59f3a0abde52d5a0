"""Commands that run the monitors: validate, check, replay, run, serve, backfill, backtest, demo."""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from vigil.app import running_app
from vigil.cli.base import (
    TIME,
    echo,
    find_project,
    handle_errors,
    main,
    print_report,
    project_of,
    range_of,
    time_of,
)
from vigil.clock import SystemClock
from vigil.config.loader import load_partial
from vigil.config.project import Project
from vigil.errors import ConfigError, VigilError
from vigil.notify.actions import poll_chat_actions
from vigil.scheduler.backfill import backfill_buckets, run_backfill
from vigil.scheduler.cycle import run_cycle
from vigil.scheduler.ingest import tells_only_present
from vigil.scheduler.loop import Loop
from vigil.scheduler.replay import replay_cycles
from vigil.scheduler.schedule import due_times
from vigil.sources import build_source


@main.command()
@click.option("--offline", is_flag=True, help="Check the files only; do not query the sources.")
@click.pass_context
@handle_errors
def validate(ctx: click.Context, offline: bool) -> None:
    """Check the configuration and every formula against its source; exit 1 on any error.

    Every problem is reported in one run: the files' own, then the formulas of the datasets
    in the files that are valid.
    """
    found, problems = load_partial(find_project(Path(ctx.obj)))
    if found is None:
        raise ConfigError(problems)
    project = found
    if not offline:
        for dataset in project.datasets:
            source = build_source(
                dataset.config.source, project.settings.sources[dataset.config.source], project.root
            )
            try:
                problems.extend(source.check(dataset))
            finally:
                source.close()
    if problems:
        raise ConfigError(problems)
    metrics = sum(len(d.metrics) for d in project.datasets)
    echo(
        f"OK: {len(project.files)} files, {len(project.datasets)} datasets, {metrics} metrics,"
        f" {len(project.analyzers)} analyzers, {len(project.monitors)} monitors"
    )


@main.command()
@click.option("--at", "at_text", type=TIME, help="Evaluate as of this time (default: now).")
@click.option("--no-notify", is_flag=True, help="Log alerts but send nothing.")
@click.pass_context
@handle_errors
def check(ctx: click.Context, at_text: str | None, no_notify: bool) -> None:
    """Run one cycle on the last complete bucket before --at."""
    project = project_of(ctx)
    clock = SystemClock()
    at = time_of(at_text, project) or clock.now()
    with running_app(project, clock) as app:
        if not no_notify:  # presses since the last check act before it routes anything
            poll_chat_actions(project, app.store, app.channels, clock.now())
        report = run_cycle(app, at, notify=not no_notify)
    print_report(report, project, verbose=True)
    if report.errors:
        sys.exit(1)


@main.command()
@click.option("--from", "start_text", type=TIME, required=True, help="Replay from this time.")
@click.option(
    "--to", "end_text", type=TIME, required=True, help="Replay up to this time (exclusive)."
)
@click.option("--no-notify", is_flag=True, help="Log alerts but send nothing.")
@click.pass_context
@handle_errors
def replay(ctx: click.Context, start_text: str, end_text: str, no_notify: bool) -> None:
    """Run, in order, every cycle the scheduler would have run between --from and --to."""
    project = project_of(ctx)
    start, end = range_of(start_text, end_text, project)
    times = due_times(project, start, end)
    with running_app(project, SystemClock()) as app, app.session():
        alerts = failed = 0
        for report in replay_cycles(app, times, notify=not no_notify):
            print_report(report, project, verbose=False)
            alerts += len(report.sent_alerts)
            ran = [o for o in report.outcomes if not o.skipped]
            failed += bool(ran) and all(o.error for o in ran)
    echo(
        f"Replayed {len(times)} cycles; {alerts} alerts"
        + (f"; {failed} cycles failed." if failed else ".")
    )
    if times and failed == len(times):
        raise VigilError("every cycle failed; see the errors above")


@main.command()
@click.option("--web/--no-web", default=True, help="Serve the dashboard too (web.with_run).")
@click.option(
    "--worker",
    is_flag=True,
    help="Share the work with other `vigil run --worker` processes through the PostgreSQL"
    " store: each dataset's cycle is a job one of them claims (docs/deploy.md).",
)
@click.option(
    "--at",
    "at_text",
    type=TIME,
    help="With --worker: queue the cycles due at this time, run queued jobs until none is"
    " left, and exit (a one-shot worker).",
)
@click.pass_context
@handle_errors
def run(ctx: click.Context, web: bool, worker: bool, at_text: str | None) -> None:
    """Run cycles on schedule until SIGTERM or Ctrl-C (the current cycle finishes first).

    Only one `vigil run` per store works at a time (a lock in the store); others wait as
    standby — unless they are `--worker`s, which share the datasets' cycles. Edits of the
    configuration are validated and picked up without a restart.
    """
    project = project_of(ctx)
    clock = SystemClock()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: clock.stop())
    if at_text is not None and not worker:
        raise VigilError("--at goes with --worker (for one cycle without workers: vigil check)")
    if worker:
        _run_worker(project, clock, time_of(at_text, project))
        return
    echo(f"vigil run: {len(project.datasets)} datasets; Ctrl-C to stop")
    server = None
    if web and project.settings.web.with_run:
        from vigil.web.server import WebServer  # the web stack loads only when served

        server = WebServer(project, clock)
        try:
            echo(f"vigil run: dashboard at {server.start()}")
        except VigilError as e:  # the scheduler matters more than the dashboard
            echo(f"vigil run: {e}; scheduling without it", err=True)
            server = None
    try:
        with running_app(project, clock) as app:
            loop = Loop(
                app,
                on_cycle=lambda r: print_report(r, loop.app.project, verbose=False),
                on_event=lambda text: echo(f"vigil run: {text}", err=True),
            )
            loop.run()
    finally:
        if server is not None:
            server.stop()
    echo("vigil run: stopped")


def _run_worker(project: Project, clock: SystemClock, at: datetime | None) -> None:
    from vigil.scheduler.loop import default_owner
    from vigil.scheduler.workers import JobQueue, Worker, worker_store

    with running_app(project, clock) as app:
        name = default_owner()
        queue = JobQueue(worker_store(app), name)
        echo(f"vigil run --worker {name}: {len(project.datasets)} datasets; Ctrl-C to stop")
        try:
            ran = Worker(app, queue).run(
                at, on_cycle=lambda r: print_report(r, app.project, verbose=False)
            )
        finally:
            queue.close()
    echo(f"vigil run --worker: stopped after {ran} jobs")


@main.command()
@click.option("--host", help="Address to listen on (default: web.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: web.port, 8000; 0 for any free one).")
@click.pass_context
@handle_errors
def serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the dashboard and the REST API (/api/v1) until Ctrl-C.

    Without web.tokens or web.users it serves only on a loopback address, to anyone there.
    """
    from vigil.web.server import WebServer

    project = project_of(ctx)
    server = WebServer(project, SystemClock(), host, port)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    url = server.start()  # the real address, also when --port 0 asked for any free port
    echo(f"vigil serve: {url} (Ctrl-C to stop)")
    try:
        while not stop.wait(0.5) and server.running:
            pass
    finally:
        server.stop()
    echo("vigil serve: stopped")


@main.command()
@click.option("--from", "start_text", type=TIME, required=True, help="First bucket time.")
@click.option("--to", "end_text", type=TIME, required=True, help="End (exclusive).")
@click.option("--metrics", help="Comma-separated metric names (default: all).")
@click.option("--no-notify", is_flag=True, help="Log alerts but send nothing.")
@click.option("--reanalyze", is_flag=True, help="Redo buckets that already have results.")
@click.pass_context
@handle_errors
def backfill(
    ctx: click.Context,
    start_text: str,
    end_text: str,
    metrics: str | None,
    no_notify: bool,
    reanalyze: bool,
) -> None:
    """Ingest and analyse history; interrupted, it resumes where it stopped.

    Alerts for buckets older than a monitor's dataset_timestamp_offset are logged, not sent.
    """
    project = project_of(ctx)
    start, end = range_of(start_text, end_text, project)
    chosen = {m.strip() for m in metrics.split(",")} if metrics else None
    known = {m.name for d in project.datasets for m in d.metrics}
    if chosen and chosen - known:
        raise VigilError(f"unknown metric '{sorted(chosen - known)[0]}' in --metrics")
    with running_app(project, SystemClock()) as app:
        total = sum(
            len(backfill_buckets(app, d, start, end))
            for d in project.datasets
            if (chosen is None or any(m.name in chosen for m in d.metrics))
            and not tells_only_present(app, d)
        )
        with click.progressbar(length=total, label="backfill", file=sys.stderr) as bar:
            report = run_backfill(
                app,
                start,
                end,
                metrics=chosen,
                notify=not no_notify,
                reanalyze=reanalyze,
                on_progress=bar.update,
            )
    for note in report.notes:
        echo(f"Note: {note}.", err=True)
    echo(
        f"Backfilled {report.buckets} buckets ({report.skipped} already done):"
        f" {report.results} checks, {report.anomalies} anomalies."
    )
    if report.errors:
        raise VigilError("\n".join(report.errors))


@main.command()
@click.option("--from", "start_text", type=TIME, required=True, help="First cycle time.")
@click.option("--to", "end_text", type=TIME, required=True, help="Last cycle time.")
@click.option("--monitor", help="Only this monitor (default: all).")
@click.option("--set", "settings", multiple=True, help="analyzer.param=value; repeatable.")
@click.option("--sweep", help="analyzer.param=a,b,c: one backtest per value, side by side.")
@click.option(
    "--labels",
    help="Incident windows: a YAML/JSON file, or 'feedback' for the true anomalies marked in"
    " the dashboard.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@handle_errors
def backtest(
    ctx: click.Context,
    start_text: str,
    end_text: str,
    monitor: str | None,
    settings: tuple[str, ...],
    sweep: str | None,
    labels: str | None,
    as_json: bool,
) -> None:
    """Replay history through the analyzers and monitors as the scheduler would, into a
    scratch store: what would have fired, per day, and precision/recall against labels."""
    from vigil.quality import backtest as bt

    project = project_of(ctx)
    start, end = range_of(start_text, end_text, project)
    overrides: dict[str, dict[str, Any]] = {}
    for text in settings:
        analyzer, param, value = bt.parse_setting(text)
        overrides.setdefault(analyzer, {})[param] = value
    windows = None
    if labels == "feedback":
        with running_app(project, SystemClock()) as app:
            windows = bt.feedback_labels(app.store.list_feedback())
    elif labels:
        windows = bt.read_labels(Path(labels), project.timezone)
    if sweep is None:
        report = bt.backtest(
            project.root, start, end, monitor=monitor, overrides=overrides, labels=windows
        )
        echo(json.dumps(report.as_json(), indent=2) if as_json else bt.render(report))
        return
    analyzer, param, values = bt.parse_sweep(sweep)
    reports = []
    read: dict[tuple[str, datetime, datetime], Any] = {}  # the source, read once for all
    for value in values:
        changed = {**overrides, analyzer: {**overrides.get(analyzer, {}), param: value}}
        reports.append(
            (
                value,
                bt.backtest(
                    project.root,
                    start,
                    end,
                    monitor=monitor,
                    overrides=changed,
                    labels=windows,
                    read=read,
                ),
            )
        )
    if as_json:
        echo(json.dumps([{"value": v, **r.as_json()} for v, r in reports], indent=2))
    else:
        echo(bt.render_sweep(f"{analyzer}.{param}", reports))


@main.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default="demo-project",
    show_default=True,
    help="Where to write the demo project.",
)
@click.option("--days", default=14, show_default=True, help="Days of simulated history (>= 10).")
@click.option(
    "--replay-days",
    default=3,
    show_default=True,
    type=click.IntRange(min=1),
    help="Days replayed through monitors (at least 1).",
)
@click.option("--seed", default=7, show_default=True, help="Random seed of the simulation.")
@handle_errors
def demo(directory: Path, days: int, replay_days: int, seed: int) -> None:
    """Simulate a social app with incidents, replay it through the monitors, report."""
    from vigil.demo.run import run_demo

    if days < replay_days + 8:
        raise VigilError(
            f"--days must be at least --replay-days + 8 (got {days}); the monitors"
            " compare with a week ago"
        )
    run_demo(directory, days=days, replay_days=replay_days, seed=seed)
