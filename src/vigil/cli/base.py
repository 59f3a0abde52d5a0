"""The `vigil` command group and what its commands share: errors, times, the report."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from vigil import secrets
from vigil.config import Project, load_project
from vigil.config.loader import PROJECT_FILE
from vigil.errors import ConfigError, VigilError
from vigil.model import AlertStatus, Status
from vigil.scheduler.cycle import CycleReport, DatasetOutcome
from vigil.scheduler.ingest import history_buckets
from vigil.timeutil import get_zone, parse_instant

F = TypeVar("F", bound=Callable[..., Any])


def echo(text: str, *, err: bool = False, nl: bool = True) -> None:
    """Print output with every known secret masked."""
    click.echo(secrets.redact(text), err=err, nl=nl)


def fail(message: str) -> None:
    for line in secrets.redact(message).splitlines() or [message]:
        click.echo(f"Error: {line}", err=True)  # already redacted
    sys.exit(1)


def handle_errors(func: F) -> F:
    """Print Vigil errors as `Error: …` lines on stderr and exit 1, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as e:
            fail("\n".join(e.problems))
        except VigilError as e:
            fail(str(e))

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
    help="Project directory (with vigil.yaml); default: this one or the nearest parent"
    " that has a vigil.yaml.",
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


def project_of(ctx: click.Context) -> Project:
    return load_project(find_project(Path(ctx.obj)))


def find_project(path: Path) -> Path:
    """The project for `path`: the directory itself when it holds a vigil.yaml, else the
    nearest parent that does (as git finds its repository); else `path`, for the error."""
    if not path.is_dir() or (path / PROJECT_FILE).exists():
        return path
    for parent in path.resolve().parents:
        if (parent / PROJECT_FILE).exists():
            return parent
    return path


def time_of(text: str | None, project: Project) -> datetime | None:
    return None if text is None else parse_instant(text, project.timezone)


def range_of(start_text: str, end_text: str, project: Project) -> tuple[datetime, datetime]:
    start = parse_instant(start_text, project.timezone)
    end = parse_instant(end_text, project.timezone)
    if end <= start:
        raise VigilError(f"--to ({end_text}) must be after --from ({start_text})")
    return start, end


def report_step(project: Project, dataset: str) -> timedelta:
    """The bucket width of a dataset (for the commands a report suggests)."""
    found = next((d for d in project.datasets if d.name == dataset), None)
    return timedelta(seconds=found.granularity.seconds if found else 900)


def print_report(report: CycleReport, project: Project, *, verbose: bool) -> None:
    """Human summary of a cycle: what was checked and what alerted."""
    zone = get_zone(project.timezone)
    at = report.at.astimezone(zone)
    for outcome in report.outcomes:
        if outcome.error:
            echo(f"[{at:%Y-%m-%d %H:%M}] {outcome.error}", err=True)
            continue
        if verbose:
            buckets = ", ".join(f"{b.astimezone(zone):%H:%M}" for b in outcome.buckets)
            echo(
                f"[{at:%Y-%m-%d %H:%M}] {outcome.dataset}: bucket {buckets},"
                f" {outcome.rows_ingested} values ingested, {len(outcome.results)} checks,"
                f" {len(outcome.anomalies)} anomalies"
            )
            for bucket in outcome.already_checked:
                start = bucket.astimezone(zone)
                end = start + (report_step(project, outcome.dataset))
                echo(
                    f"[{at:%Y-%m-%d %H:%M}] {outcome.dataset}: bucket {start:%Y-%m-%d %H:%M} was"
                    " already checked; to check it again: vigil backfill"
                    f" --from {start:%Y-%m-%dT%H:%M} --to {end:%Y-%m-%dT%H:%M} --reanalyze"
                )
        if verbose:
            _history_hint(project, outcome, at, zone)
            for alert in outcome.alerts:
                r = alert.result
                echo(
                    f"[{at:%Y-%m-%d %H:%M}] ALERT {r.series.label()} by {r.analyzer}"
                    f" → {alert.monitor}: {alert.status.value}"
                )
        elif outcome.alerts:
            held = Counter(
                a.status.value for a in outcome.alerts if a.status is not AlertStatus.NOTIFY
            )
            sent = len(outcome.alerts) - sum(held.values())
            detail = ", ".join(f"{n} {status}" for status, n in sorted(held.items()))
            echo(
                f"[{at:%Y-%m-%d %H:%M}] {outcome.dataset}: {len(outcome.alerts)} alerts,"
                f" {sent} notified" + (f", held back: {detail}" if detail else "")
            )
    for error in report.delivery.errors or []:
        echo(f"[{at:%Y-%m-%d %H:%M}] delivery failed: {error}", err=True)


def _history_hint(project: Project, outcome: DatasetOutcome, at: datetime, zone: Any) -> None:
    """Metrics whose checks all lack a baseline (a metric just added, a new project): say how
    to load their history instead of leaving a bare `insufficient_baseline`."""
    short: dict[str, int] = {}
    checked: dict[str, int] = {}
    for r in outcome.results:
        checked[r.series.metric] = checked.get(r.series.metric, 0) + 1
        if r.status is Status.INSUFFICIENT:
            short[r.series.metric] = short.get(r.series.metric, 0) + 1
    starved = sorted(m for m, n in short.items() if n == checked[m])
    if not starved or not outcome.buckets:
        return
    dataset = next(d for d in project.datasets if d.name == outcome.dataset)
    g = dataset.granularity
    newest = max(outcome.buckets)
    minimum = int(project.settings.defaults.history // g.step) if not g.is_month else 0
    start = g.shift(newest, -history_buckets(dataset, minimum)).astimezone(zone)
    end = g.next(newest).astimezone(zone)
    echo(
        f"[{at:%Y-%m-%d %H:%M}] {outcome.dataset}: {', '.join(starved)}: no baseline yet (too"
        " little history in the store); to load it: vigil backfill"
        f" --from {start:%Y-%m-%dT%H:%M} --to {end:%Y-%m-%dT%H:%M} --metrics"
        f" {','.join(starved)}"
    )
