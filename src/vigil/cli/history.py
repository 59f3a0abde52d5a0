"""Commands that read what happened: runs, alerts, incidents, the graph, silences."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import click

from vigil.app import running_app
from vigil.cli.base import TIME, echo, handle_errors, main, project_of, time_of
from vigil.clock import SystemClock
from vigil.config.graph import render_dot, render_mermaid, render_text, run_counts
from vigil.errors import VigilError
from vigil.model import ALERT_FILTERS, AlertStatus, RunRecord, Segment, Silence
from vigil.notify.incidents import grouped_incidents
from vigil.numbers import format_number
from vigil.store.base import AlertRow
from vigil.timeutil import get_zone, parse_duration, parse_instant


@main.command()
@click.option("--since", "since_text", type=TIME, help="Only runs started from this time.")
@click.option("--limit", default=50, show_default=True, help="At most this many records.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@handle_errors
def runs(ctx: click.Context, since_text: str | None, limit: int, as_json: bool) -> None:
    """The run log: each stage of each job, with rows in and out and errors."""
    project = project_of(ctx)
    with running_app(project, SystemClock()) as app:
        records = app.store.list_runs(since=time_of(since_text, project), limit=limit)
    if as_json:
        echo(json.dumps([_run_json(r) for r in records], indent=2))
        return
    zone = get_zone(project.timezone)
    for r in records:
        took = (r.finished_at - r.started_at).total_seconds()
        error = f"  {r.error.splitlines()[0]}" if r.error else ""
        echo(
            f"{r.started_at.astimezone(zone):%Y-%m-%d %H:%M:%S} {r.kind:<8} {r.dataset:<12}"
            f" {r.stage:<8} {r.status:<5} in {r.rows_in:>7} out {r.rows_out:>7} {took:6.2f}s{error}"
        )
    if not records:
        echo("No runs.")


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
    type=click.Choice(["text", "dot", "mermaid", "png"]),
    default="text",
    show_default=True,
    help="Output format (png: through Graphviz's dot, when installed).",
)
@click.option("--run", "with_run", is_flag=True, help="Label each node with the last run's counts.")
@click.option(
    "--output", type=click.Path(path_type=Path), help="Write here (png needs it; default: stdout)."
)
@click.pass_context
@handle_errors
def graph(ctx: click.Context, fmt: str, with_run: bool, output: Path | None) -> None:
    """Print the pipeline: sources → datasets → metrics → analyzers → monitors → channels."""
    project = project_of(ctx)
    counts: dict[str, str] = {}
    if with_run:
        with running_app(project, SystemClock()) as app:
            counts = run_counts(project, app.store.list_runs(limit=500))
        if not counts:
            echo("No run in the log yet: run `vigil check` first.", err=True)
    if fmt == "png":
        if output is None:
            raise VigilError("--format png writes a file: give --output graph.png")
        write_png(render_dot(project, counts), output)
        echo(f"Wrote {output}")
        return
    render = {"text": render_text, "dot": render_dot, "mermaid": render_mermaid}[fmt]
    text = render(project, counts)
    if output is not None:
        output.write_text(text, encoding="utf-8")
        echo(f"Wrote {output}")
    else:
        echo(text, nl=False)


def write_png(dot_source: str, output: Path) -> None:
    """Render dot to PNG with Graphviz's `dot`, or say how to get it."""
    import shutil
    import subprocess

    binary = shutil.which("dot")
    if binary is None:
        raise VigilError(
            "--format png needs Graphviz's `dot` (apt-get install graphviz, brew install"
            " graphviz); or write --format dot and render it elsewhere"
        )
    done = subprocess.run(
        [binary, "-Tpng", "-o", str(output)], input=dot_source, text=True, capture_output=True
    )
    if done.returncode != 0:
        raise VigilError(f"dot failed: {done.stderr.strip()[:300]}")


STATUSES = ALERT_FILTERS


@main.command()
@click.option("--since", "since_text", type=TIME, help="Only alerts for buckets from this time.")
@click.option("--until", "until_text", type=TIME, help="Only alerts for buckets before this time.")
@click.option(
    "--status",
    type=click.Choice(STATUSES),
    default="sent",
    show_default=True,
    help="Which alerts: those sent, those held (cooldown, quiet_hours, silenced, …) or all.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@handle_errors
def alerts(
    ctx: click.Context,
    since_text: str | None,
    until_text: str | None,
    status: str,
    as_json: bool,
) -> None:
    """List alerts from the log (by default those that were sent)."""
    project = project_of(ctx)
    with running_app(project, SystemClock()) as app:
        rows = app.store.list_alerts(
            since=time_of(since_text, project), until=time_of(until_text, project)
        )
    wanted = AlertStatus.NOTIFY.value if status == "sent" else status

    def wanted_row(row: AlertRow) -> bool:
        return wanted == "all" or row.status == wanted

    shown = [r for r in rows if wanted_row(r)]
    if as_json:
        echo(json.dumps([alert_json(r) for r in shown], indent=2, ensure_ascii=False))
        return
    held = Counter(_status_label(r.status) for r in rows if not wanted_row(r))
    if not shown:
        echo("No alerts." if not rows else f"No alerts with status {status}.")
    else:
        echo(
            f"{'bucket':<16}  {'severity':<8} {'status':<11} {'series':<40} {'value':>10}"
            f" {'deviation':>9}  analyzer → monitor"
        )
    zone = get_zone(project.timezone)
    for row in shown:
        r = row.result
        try:
            value = project.metric(r.series.metric).show(r.value)
        except KeyError:  # a metric since removed from the project
            value = format_number(r.value)
        deviation = f"{r.deviation * 100:+.1f}%" if r.deviation is not None else ""
        echo(
            f"{r.bucket.start.astimezone(zone):%Y-%m-%d %H:%M}  {row.severity:<8}"
            f" {_status_label(row.status):<11} {r.series.label():<40} {value:>10}"
            f" {deviation:>9}  {r.analyzer} → {row.monitor}"
        )
        for channel, delivery, error in row.deliveries:
            if delivery != "sent":
                echo(f"    {channel}: {delivery}" + (f": {error}" if error else ""))
    if held:
        others = ", ".join(f"{n} {s}" for s, n in sorted(held.items()))
        echo(f"Not shown: {others} (--status all shows every alert).")


def _status_label(status: str) -> str:
    return "sent" if status == AlertStatus.NOTIFY.value else status


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
    project = project_of(ctx.find_root())
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
    echo(
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
    project = project_of(ctx.find_root())
    clock = SystemClock()
    with running_app(project, clock) as app:
        rows = app.store.list_silences(None if show_all else clock.now())
    zone = get_zone(project.timezone)
    for s in rows:
        where = Segment.of(s.segment).label() if s.segment else "*"
        state = " (expired)" if s.expired_at else ""
        echo(
            f"{s.id:>4}  {s.metric:<20} {where:<24} {s.monitor or '*':<12}"
            f" until {s.ends_at.astimezone(zone):%Y-%m-%d %H:%M}{state}  {s.reason}"
        )
    if not rows:
        echo("No silences.")


@silence.command("expire")
@click.argument("silence_id", type=int)
@click.pass_context
@handle_errors
def silence_expire(ctx: click.Context, silence_id: int) -> None:
    """End a silence now."""
    project = project_of(ctx.find_root())
    clock = SystemClock()
    with running_app(project, clock) as app:
        if not app.store.expire_silence(silence_id, clock.now()):
            raise VigilError(f"no active silence {silence_id}")
    echo(f"Silence {silence_id} expired.")


@main.command()
@click.option("--open", "only_open", is_flag=True, help="Only incidents still open.")
@click.option("--since", "since_text", type=TIME, help="Only incidents opened from this time.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
@handle_errors
def incidents(ctx: click.Context, only_open: bool, since_text: str | None, as_json: bool) -> None:
    """Incidents, newest first: the series that went wrong together (one monitor, one
    dataset, opened in the same bucket — what one message told), with how long they lasted."""
    project = project_of(ctx)
    since = time_of(since_text, project)
    with running_app(project, SystemClock()) as app:
        found = app.store.list_incidents("open" if only_open else None)
    groups = grouped_incidents(
        project, [i for i in found if since is None or i.opened_bucket >= since]
    )
    if as_json:
        echo(json.dumps(groups, indent=2, ensure_ascii=False))
        return
    if not groups:
        echo("No open incidents." if only_open else "No incidents.")
        return
    zone = get_zone(project.timezone)
    echo(f"{'opened':<16}  {'status':<8} {'lasted':>7}  {'monitor':<12} {'dataset':<12} series")
    for g in groups:
        opened = parse_instant(g["opened"], "UTC").astimezone(zone)
        names = [m["series"] for m in g["members"]]
        shown = ", ".join(names[:3]) + (f" … and {len(names) - 3} more" if len(names) > 3 else "")
        lasted = _minutes(g["minutes"])
        echo(
            f"{opened:%Y-%m-%d %H:%M}  {g['status']:<8} {lasted:>7}  {g['monitor']:<12}"
            f" {g['dataset']:<12} {len(names)}: {shown}"
        )


def _minutes(total: int) -> str:
    return f"{total // 60}h{total % 60:02d}" if total >= 60 else f"{total}m"
