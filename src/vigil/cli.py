"""The `vigil` command line: thin commands that parse, call a stage, and render."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from vigil import secrets
from vigil.analysis.base import format_number
from vigil.app import running_app
from vigil.clock import SystemClock
from vigil.config import Project, load_project
from vigil.config.graph import render_dot, render_mermaid, render_text
from vigil.config.project import matches_any
from vigil.config.schema import IDENTIFIER
from vigil.config.whylabs import convert
from vigil.config.yamlfile import dump_yaml
from vigil.errors import ConfigError, NotifyError, VigilError
from vigil.model import AlertStatus, RunRecord, Segment, Silence
from vigil.notify.pipeline import redact, sample_notification
from vigil.scheduler.backfill import backfill_buckets, run_backfill
from vigil.scheduler.cycle import CycleReport, run_cycle
from vigil.scheduler.loop import Loop
from vigil.scheduler.retention import prune
from vigil.scheduler.schedule import due_times
from vigil.sources import build_source
from vigil.store import create_store
from vigil.store.base import AlertRow
from vigil.timeutil import get_zone, parse_duration, parse_instant

F = TypeVar("F", bound=Callable[..., Any])


def _fail(message: str) -> None:
    for line in secrets.redact(message).splitlines() or [message]:
        click.echo(f"Error: {line}", err=True)
    sys.exit(1)


def handle_errors(func: F) -> F:
    """Print Vigil errors as `Error: …` lines on stderr and exit 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as e:
            _fail("\n".join(e.problems))
        except VigilError as e:
            _fail(str(e))

    return wrapper  # type: ignore[return-value]


class TimeParam(click.ParamType[str]):
    """ISO 8601 time, `now` or `now-2h`; naive times are in the project's zone."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Keep the text; it is parsed once the project's zone is known."""
        if isinstance(value, str):
            try:
                parse_instant(value)
            except ValueError as e:
                self.fail(str(e), param, ctx)
        return value


TIME = TimeParam()


@click.group()
@click.option(
    "--project",
    "-p",
    type=click.Path(path_type=Path),
    default=".",
    envvar="VIGIL_PROJECT",
    show_default=True,
    help="Project directory (with vigil.yaml).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="vigil")
@click.pass_context
def main(ctx: click.Context, project: Path, verbose: int) -> None:
    """Vigil watches business and product metrics and alerts the right people."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secrets.register_environment()
    secrets.install()
    ctx.obj = project


def _project(ctx: click.Context) -> Project:
    return load_project(ctx.obj)


def _time(text: str | None, project: Project) -> datetime | None:
    return None if text is None else parse_instant(text, project.timezone)


def _range(start_text: str, end_text: str, project: Project) -> tuple[datetime, datetime]:
    start = parse_instant(start_text, project.timezone)
    end = parse_instant(end_text, project.timezone)
    if end <= start:
        raise VigilError(f"--to ({end_text}) must be after --from ({start_text})")
    return start, end


@main.command()
@click.option("--offline", is_flag=True, help="Check the files only; do not query the sources.")
@click.pass_context
@handle_errors
def validate(ctx: click.Context, offline: bool) -> None:
    """Check the configuration and every formula against its source; exit 1 on any error."""
    project = _project(ctx)
    problems: list[str] = []
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
    click.echo(
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
    project = _project(ctx)
    clock = SystemClock()
    at = _time(at_text, project) or clock.now()
    with running_app(project, clock) as app:
        report = run_cycle(app, at, notify=not no_notify)
    print_report(report, project, verbose=True)
    if report.errors:
        sys.exit(1)


@main.command()
@click.option("--from", "start_text", type=TIME, required=True, help="Replay from this time.")
@click.option("--to", "end_text", type=TIME, required=True, help="Replay up to this time.")
@click.option("--no-notify", is_flag=True, help="Log alerts but send nothing.")
@click.pass_context
@handle_errors
def replay(ctx: click.Context, start_text: str, end_text: str, no_notify: bool) -> None:
    """Run, in order, every cycle the scheduler would have run between --from and --to."""
    project = _project(ctx)
    start, end = _range(start_text, end_text, project)
    times = due_times(project, start, end)
    with running_app(project, SystemClock()) as app, app.session():
        alerts = 0
        for at in times:
            report = run_cycle(app, at, notify=not no_notify, scheduled_only=True, kind="replay")
            print_report(report, project, verbose=False)
            alerts += len(report.sent_alerts)
    click.echo(f"Replayed {len(times)} cycles; {alerts} alerts.")


@main.command()
@click.option("--web/--no-web", default=True, help="Serve the dashboard too (web.with_run).")
@click.pass_context
@handle_errors
def run(ctx: click.Context, web: bool) -> None:
    """Run cycles on schedule until SIGTERM or Ctrl-C (the current cycle finishes first).

    Only one `vigil run` per store works at a time (a lock in the store); others wait as
    standby. Edits of the configuration are validated and picked up without a restart.
    """
    project = _project(ctx)
    clock = SystemClock()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: clock.stop())
    click.echo(f"vigil run: {len(project.datasets)} datasets; Ctrl-C to stop")
    server = None
    if web and project.settings.web.with_run:
        from vigil.web.server import WebServer  # the web stack loads only when served

        server = WebServer(project, clock)
        try:
            click.echo(f"vigil run: dashboard at {server.start()}")
        except VigilError as e:  # the scheduler matters more than the dashboard
            click.echo(f"vigil run: {e}; scheduling without it", err=True)
            server = None
    try:
        with running_app(project, clock) as app:
            loop = Loop(
                app,
                on_cycle=lambda r: print_report(r, loop.app.project, verbose=False),
                on_event=lambda text: click.echo(f"vigil run: {text}", err=True),
            )
            loop.run()
    finally:
        if server is not None:
            server.stop()
    click.echo("vigil run: stopped")


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

    project = _project(ctx)
    server = WebServer(project, SystemClock(), host, port)
    click.echo(f"vigil serve: http://{server.host}:{server.port} (Ctrl-C to stop)")
    server.serve()


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
    project = _project(ctx)
    start, end = _range(start_text, end_text, project)
    chosen = {m.strip() for m in metrics.split(",")} if metrics else None
    known = {m.name for d in project.datasets for m in d.metrics}
    if chosen and chosen - known:
        raise VigilError(f"unknown metric '{sorted(chosen - known)[0]}' in --metrics")
    with running_app(project, SystemClock()) as app:
        total = sum(
            len(backfill_buckets(app, d, start, end))
            for d in project.datasets
            if chosen is None or any(m.name in chosen for m in d.metrics)
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
    click.echo(
        f"Backfilled {report.buckets} buckets ({report.skipped} already done):"
        f" {report.results} checks, {report.anomalies} anomalies."
    )
    if report.errors:
        raise VigilError("\n".join(report.errors))


@main.command()
@click.option("--since", "since_text", type=TIME, help="Only runs started from this time.")
@click.option("--limit", default=50, show_default=True, help="At most this many records.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@handle_errors
def runs(ctx: click.Context, since_text: str | None, limit: int, as_json: bool) -> None:
    """The run log: each stage of each job, with rows in and out and errors."""
    project = _project(ctx)
    with running_app(project, SystemClock()) as app:
        records = app.store.list_runs(since=_time(since_text, project), limit=limit)
    if as_json:
        click.echo(json.dumps([_run_json(r) for r in records], indent=2))
        return
    zone = get_zone(project.timezone)
    for r in records:
        took = (r.finished_at - r.started_at).total_seconds()
        error = f"  {r.error.splitlines()[0]}" if r.error else ""
        click.echo(
            f"{r.started_at.astimezone(zone):%Y-%m-%d %H:%M:%S} {r.kind:<8} {r.dataset:<12}"
            f" {r.stage:<8} {r.status:<5} in {r.rows_in:>7} out {r.rows_out:>7} {took:6.2f}s{error}"
        )
    if not records:
        click.echo("No runs.")


def _run_json(r: RunRecord) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "kind": r.kind,
        "dataset": r.dataset,
        "stage": r.stage,
        "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat(),
        "status": r.status,
        "rows_in": r.rows_in,
        "rows_out": r.rows_out,
        "error": r.error,
    }


@main.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot", "mermaid"]),
    default="text",
    show_default=True,
    help="Output format.",
)
@click.pass_context
@handle_errors
def graph(ctx: click.Context, fmt: str) -> None:
    """Print the pipeline: sources → datasets → metrics → analyzers → monitors → channels."""
    project = _project(ctx)
    render = {"text": render_text, "dot": render_dot, "mermaid": render_mermaid}[fmt]
    click.echo(render(project), nl=False)


@main.command()
@click.option("--since", "since_text", type=TIME, help="Only alerts for buckets from this time.")
@click.option("--until", "until_text", type=TIME, help="Only alerts for buckets before this time.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@handle_errors
def alerts(
    ctx: click.Context, since_text: str | None, until_text: str | None, as_json: bool
) -> None:
    """List alerts from the log."""
    project = _project(ctx)
    with running_app(project, SystemClock()) as app:
        rows = app.store.list_alerts(
            since=_time(since_text, project), until=_time(until_text, project)
        )
    if as_json:
        click.echo(json.dumps([alert_json(r) for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("No alerts.")
    zone = get_zone(project.timezone)
    for row in rows:
        r = row.result
        click.echo(
            f"{r.bucket.start.astimezone(zone):%Y-%m-%d %H:%M}  {row.severity:<8} {row.status:<11}"
            f" {r.series.label():<40} {format_number(r.value):>10}  {r.analyzer} → {row.monitor}"
        )
        for channel, status, error in row.deliveries:
            if status != "sent":
                click.echo(f"    {channel}: {status}" + (f": {error}" if error else ""))


def alert_json(row: AlertRow) -> dict[str, Any]:
    """The JSON form of an alert (documented in docs/cli.md)."""
    r = row.result
    return {
        "time": r.bucket.start.isoformat(),
        "bucket_end": r.bucket.end.isoformat(),
        "granularity": r.bucket.granularity.name,
        "metric": r.series.metric,
        "segment": r.series.segment.as_dict(),
        "value": r.value,
        "baselines": r.baselines,
        "expected_lower": r.expected_lower,
        "expected_upper": r.expected_upper,
        "deviation": r.deviation,
        "analyzer": r.analyzer,
        "analyzer_type": r.analyzer_type,
        "monitor": row.monitor,
        "severity": row.severity,
        "status": row.status,
        "reason": r.reason,
        "deliveries": [
            {"channel": channel, "status": status, "error": error}
            for channel, status, error in row.deliveries
        ],
    }


def print_report(report: CycleReport, project: Project, *, verbose: bool) -> None:
    """Human summary of a cycle: what was checked and what alerted."""
    zone = get_zone(project.timezone)
    at = report.at.astimezone(zone)
    for outcome in report.outcomes:
        if outcome.error:
            click.echo(f"[{at:%Y-%m-%d %H:%M}] {outcome.error}", err=True)
            continue
        if verbose:
            buckets = ", ".join(f"{b.astimezone(zone):%H:%M}" for b in outcome.buckets)
            click.echo(
                f"[{at:%Y-%m-%d %H:%M}] {outcome.dataset}: bucket {buckets},"
                f" {outcome.rows_ingested} values ingested, {len(outcome.results)} checks,"
                f" {len(outcome.anomalies)} anomalies"
            )
        if verbose:
            for alert in outcome.alerts:
                r = alert.result
                click.echo(
                    f"[{at:%Y-%m-%d %H:%M}] ALERT {r.series.label()} by {r.analyzer}"
                    f" → {alert.monitor}: {alert.status.value}"
                )
        elif outcome.alerts:
            held = Counter(
                a.status.value for a in outcome.alerts if a.status is not AlertStatus.NOTIFY
            )
            sent = len(outcome.alerts) - sum(held.values())
            detail = ", ".join(f"{n} {status}" for status, n in sorted(held.items()))
            click.echo(
                f"[{at:%Y-%m-%d %H:%M}] {outcome.dataset}: {len(outcome.alerts)} alerts,"
                f" {sent} notified" + (f", held back: {detail}" if detail else "")
            )
    for error in report.delivery.errors or []:
        click.echo(f"[{at:%Y-%m-%d %H:%M}] delivery failed: {error}", err=True)


@main.group()
def silence() -> None:
    """Silences: mute matching anomalies for a while (they are still logged)."""


@silence.command("add")
@click.option("--metric", required=True, help="Metric name or glob (likes, feed_*, *).")
@click.option("--segment", "segments", multiple=True, help="key=value; repeat for several.")
@click.option("--monitor", help="Only this monitor (default: all).")
@click.option("--for", "duration", help="How long, e.g. 2h.")
@click.option("--until", "until_text", type=TIME, help="Or until this time.")
@click.option("--reason", required=True, help="Why (shown in listings).")
@click.pass_context
@handle_errors
def silence_add(
    ctx: click.Context,
    metric: str,
    segments: tuple[str, ...],
    monitor: str | None,
    duration: str | None,
    until_text: str | None,
    reason: str,
) -> None:
    """Add a silence from now for --for (or --until)."""
    project = _project(ctx.find_root())
    if monitor is not None and monitor not in project.monitors:
        raise VigilError(
            f"unknown monitor '{monitor}'; expected one of: " + ", ".join(sorted(project.monitors))
        )
    selector = _segment_selector(segments)
    clock = SystemClock()
    now = clock.now()
    if (duration is None) == (until_text is None):
        raise VigilError("give --for DURATION or --until TIME")
    try:
        ends = (
            now + parse_duration(duration)
            if duration
            else parse_instant(until_text or "", project.timezone)
        )
    except ValueError as e:
        raise VigilError(f"--for: {e}") from None
    if ends <= now:
        raise VigilError("the silence would end before it starts")
    with running_app(project, clock) as app:
        new_id = app.store.add_silence(Silence(metric, selector, now, ends, reason, monitor))
    where = Segment.of(selector).label() if selector else "every segment"
    zone = get_zone(project.timezone)
    click.echo(
        f"Silence {new_id}: {metric} [{where}] until {ends.astimezone(zone):%Y-%m-%d %H:%M}"
        f" ({reason})"
    )


def _segment_selector(segments: tuple[str, ...]) -> dict[str, str]:
    selector: dict[str, str] = {}
    for item in segments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise VigilError(f"--segment '{item}': expected key=value, e.g. os=iOS")
        selector[key.strip()] = value.strip()
    return selector


@silence.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include ended and expired silences.")
@click.pass_context
@handle_errors
def silence_list(ctx: click.Context, show_all: bool) -> None:
    """List active silences."""
    project = _project(ctx.find_root())
    clock = SystemClock()
    with running_app(project, clock) as app:
        rows = app.store.list_silences(None if show_all else clock.now())
    zone = get_zone(project.timezone)
    for s in rows:
        where = Segment.of(s.segment).label() if s.segment else "*"
        state = " (expired)" if s.expired_at else ""
        click.echo(
            f"{s.id:>4}  {s.metric:<20} {where:<24} {s.monitor or '*':<12}"
            f" until {s.ends_at.astimezone(zone):%Y-%m-%d %H:%M}{state}  {s.reason}"
        )
    if not rows:
        click.echo("No silences.")


@silence.command("expire")
@click.argument("silence_id", type=int)
@click.pass_context
@handle_errors
def silence_expire(ctx: click.Context, silence_id: int) -> None:
    """End a silence now."""
    project = _project(ctx.find_root())
    clock = SystemClock()
    with running_app(project, clock) as app:
        if not app.store.expire_silence(silence_id, clock.now()):
            raise VigilError(f"no active silence {silence_id}")
    click.echo(f"Silence {silence_id} expired.")


@main.command("import-whylabs")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", default="dataset", show_default=True, help="Vigil dataset name.")
@click.option("--source", help="With --table and --time-column: also write the dataset.")
@click.option("--table", help="Table of the profiled columns.")
@click.option("--time-column", help="Its event time column.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here.")
@handle_errors
def import_whylabs(
    file: Path,
    dataset: str,
    source: str | None,
    table: str | None,
    time_column: str | None,
    out: Path | None,
) -> None:
    """Convert a WhyLabs monitor config (JSON) into Vigil analyzers and monitors (YAML).

    Every field that cannot be honoured is listed on stderr; unknown fields are errors.
    """
    try:
        doc = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError([f"{file}:{e.lineno}: not JSON: {e.msg}"]) from None
    result = convert(doc, str(file), dataset)
    definitions = dict(result.definitions)
    if source and table and time_column and result.dataset is not None:
        block = {"source": source, "table": table, "time_column": time_column}
        definitions = {"datasets": [{**result.dataset, **block}], **definitions}
    elif result.dataset is not None and result.dataset["profile"]:
        columns = ", ".join(c["column"] for c in result.dataset["profile"])
        result.not_honoured.append(
            f"dataset '{dataset}': profile these columns ({columns}) in a dataset, or pass"
            " --source, --table and --time-column to write it"
        )
    text = dump_yaml(definitions)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        click.echo(
            f"Wrote {out}: {len(result.definitions['analyzers'])} analyzers,"
            f" {len(result.definitions['monitors'])} monitors."
        )
    for note in result.not_honoured:
        click.echo(f"not honoured: {note}", err=True)


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

    project = _project(ctx)
    start, end = _range(start_text, end_text, project)
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
        click.echo(json.dumps(report.as_json(), indent=2) if as_json else bt.render(report))
        return
    analyzer, param, values = bt.parse_sweep(sweep)
    reports = []
    for value in values:
        changed = {**overrides, analyzer: {**overrides.get(analyzer, {}), param: value}}
        reports.append(
            (
                value,
                bt.backtest(
                    project.root, start, end, monitor=monitor, overrides=changed, labels=windows
                ),
            )
        )
    if as_json:
        click.echo(json.dumps([{"value": v, **r.as_json()} for v, r in reports], indent=2))
    else:
        click.echo(bt.render_sweep(f"{analyzer}.{param}", reports))


@main.group()
def bench() -> None:
    """Measure detection quality."""


@bench.command("nab")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="VIGIL_NAB_DIR",
    required=True,
    help="The NAB corpus: data/ and labels/ ($VIGIL_NAB_DIR).",
)
@click.option("--detector", default="auto", show_default=True, help="Detector name.")
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), help="Write per-row scores here."
)
@click.option(
    "--results",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Score existing results (DIR/<category>/<detector>_<file>) instead of detecting.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def bench_nab(
    data_dir: Path, detector: str, out: Path | None, results: Path | None, as_json: bool
) -> None:
    """Stream every NAB series through the detector and compute its NAB scores."""
    from vigil.quality.nab import DEFAULT_THRESHOLD, benchmark

    if results is None and detector != "auto":
        raise VigilError(
            f"detector '{detector}': only 'auto' runs here; score others with --results"
        )
    if not (data_dir / "labels" / "combined_windows.json").exists():
        raise VigilError(
            f"{data_dir}: expected the NAB corpus (data/ and labels/combined_windows.json)"
        )
    try:
        report = benchmark(data_dir, detector, out, results)
    except (OSError, KeyError, ValueError) as e:
        raise VigilError(f"NAB: {e}") from e
    if as_json:
        document = {
            "detector": detector,
            "files": report.files,
            "seconds": round(report.seconds, 2),
            "default_threshold": DEFAULT_THRESHOLD,
            "profiles": {
                best.profile: {
                    "score": round(best.normalized, 2),
                    "raw": round(best.raw, 3),
                    "threshold": best.threshold,
                    "score_at_default": round(at.normalized, 2),
                }
                for best, at in zip(report.scores, report.at_default, strict=True)
            },
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"NAB, {report.files} files, detector {detector} ({report.seconds:.1f} s)")
    fixed_label = f"at {DEFAULT_THRESHOLD}"
    click.echo(f"{'profile':<20} {'score':>7} {'raw':>9} {'threshold':>10} {fixed_label:>8}")
    for best, at in zip(report.scores, report.at_default, strict=True):
        click.echo(
            f"{best.profile:<20} {best.normalized:7.2f} {best.raw:9.3f} {best.threshold:10.4f}"
            f" {at.normalized:8.2f}"
        )


@main.group()
def store() -> None:
    """The metric store: schema migrations and retention."""


@store.command("migrate")
@click.option("--status", is_flag=True, help="Show the schema version; change nothing.")
@click.pass_context
@handle_errors
def store_migrate(ctx: click.Context, status: bool) -> None:
    """Bring the store's schema to the newest version (each migration runs once, in order)."""
    project = _project(ctx.find_root())
    backend = create_store(project, SystemClock().now)
    newest = backend.migrations[-1].version
    if status:
        current = backend.schema_version()
        pending = [m for m in backend.migrations if m.version > current]
        click.echo(f"Schema version {current} of {newest}; {len(pending)} pending.")
        for m in pending:
            click.echo(f"  pending {m.version}: {m.name}")
        return
    applied = backend.migrate()
    for name in applied:
        click.echo(f"  applied {name}")
    click.echo(f"Schema version {backend.schema_version()} of {newest}.")


@store.command("prune")
@click.pass_context
@handle_errors
def store_prune(ctx: click.Context) -> None:
    """Delete values and results older than the store's retention_days."""
    project = _project(ctx.find_root())
    retention = project.settings.store.retention_days
    if retention.values is None and retention.results is None:
        click.echo("No retention_days configured in the store settings; nothing to prune.")
        return
    clock = SystemClock()
    with running_app(project, clock) as app:
        counts = prune(app, clock.now())
    for table, n in counts.items():
        click.echo(f"  {table}: {n} rows deleted")
    click.echo(f"Pruned {sum(counts.values())} rows.")


@main.group()
def reference() -> None:
    """Reference baselines: named snapshots of stored values and distributions."""


@reference.command("create")
@click.argument("name")
@click.option("--from", "start_text", required=True, type=TIME, help="First bucket (inclusive).")
@click.option("--to", "end_text", required=True, type=TIME, help="End (exclusive).")
@click.option("--metric", "metrics", multiple=True, help="Metric name or glob; default: all.")
@click.pass_context
@handle_errors
def reference_create(
    ctx: click.Context, name: str, start_text: str, end_text: str, metrics: tuple[str, ...]
) -> None:
    """Snapshot [--from, --to) of stored values as reference NAME (replacing it)."""
    project = _project(ctx.find_root())
    if not IDENTIFIER.match(name):
        raise VigilError(f"'{name}' is not a valid name; expected letters, digits and _")
    start, end = _range(start_text, end_text, project)
    patterns = list(metrics) or ["*", "*.*"]
    rows = 0
    chosen: list[str] = []
    with running_app(project, SystemClock()) as app:
        for dataset in project.datasets:
            names = [m.name for m in dataset.metrics if matches_any(m.name, patterns)]
            if names:
                chosen += names
                rows += app.store.save_reference(name, names, dataset.granularity, start, end)
    if not chosen:
        raise VigilError(f"no metric matches {', '.join(patterns)}")
    if not rows:
        raise VigilError(
            f"no stored values for {', '.join(chosen)} in that range; run `vigil backfill` first"
        )
    click.echo(f"Reference '{name}': {rows} values of {len(chosen)} metrics.")


@reference.command("list")
@click.pass_context
@handle_errors
def reference_list(ctx: click.Context) -> None:
    """List the stored references."""
    project = _project(ctx.find_root())
    with running_app(project, SystemClock()) as app:
        rows = app.store.list_references()
    for r in rows:
        click.echo(
            f"{r['name']:<20} {r['metrics']:>3} metrics {r['series']:>5} series"
            f" {r['rows']:>7} values  {r['first']:%Y-%m-%d %H:%M} – {r['last']:%Y-%m-%d %H:%M}"
        )
    if not rows:
        click.echo("No references.")


@reference.command("delete")
@click.argument("name")
@click.pass_context
@handle_errors
def reference_delete(ctx: click.Context, name: str) -> None:
    """Delete reference NAME."""
    project = _project(ctx.find_root())
    with running_app(project, SystemClock()) as app:
        if not app.store.delete_reference(name):
            raise VigilError(f"no reference '{name}'")
    click.echo(f"Reference '{name}' deleted.")


@main.group()
def notify() -> None:
    """Channels: send a test message."""


@notify.command("test")
@click.argument("channel")
@click.pass_context
@handle_errors
def notify_test(ctx: click.Context, channel: str) -> None:
    """Send a test message (with a sample chart) to CHANNEL and print the outcome."""
    project = _project(ctx.find_root())
    if channel not in project.settings.channels:
        known = ", ".join(sorted(project.settings.channels))
        raise VigilError(f"unknown channel '{channel}'; expected one of: {known}")
    clock = SystemClock()
    with running_app(project, clock) as app:
        note = sample_notification(project, channel, clock.now())
        try:
            parts = app.channels[channel].deliver(note)
        except NotifyError as e:
            raise VigilError(f"{channel}: {redact(str(e), project.secrets)}") from None
    click.echo(f"Sent a test message to '{channel}' ({parts} part{'s' if parts != 1 else ''}).")


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
@click.option("--replay-days", default=3, show_default=True, help="Days replayed through monitors.")
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


if __name__ == "__main__":
    main()
