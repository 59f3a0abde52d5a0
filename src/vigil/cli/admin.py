"""Commands that manage a project: imports, benchmarks, the store, references, channels."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from vigil import passwords
from vigil.app import running_app
from vigil.cli.base import TIME, echo, handle_errors, main, project_of, range_of, time_of
from vigil.clock import SystemClock
from vigil.config.project import matches_any
from vigil.config.schema import IDENTIFIER
from vigil.config.schema.web import MIN_PASSWORD_LENGTH
from vigil.config.whylabs import convert
from vigil.config.yamlfile import dump_yaml
from vigil.errors import ConfigError, NotifyError, VigilError
from vigil.notify.pipeline import redact, sample_notification
from vigil.scheduler.retention import prune
from vigil.store import create_store


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
        echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        echo(
            f"Wrote {out}: {len(result.definitions['analyzers'])} analyzers,"
            f" {len(result.definitions['monitors'])} monitors."
        )
    for note in result.not_honoured:
        echo(f"not honoured: {note}", err=True)


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
        echo(json.dumps(document, indent=2))
        return
    echo(f"NAB, {report.files} files, detector {detector} ({report.seconds:.1f} s)")
    fixed_label = f"at {DEFAULT_THRESHOLD}"
    echo(f"{'profile':<20} {'score':>7} {'raw':>9} {'threshold':>10} {fixed_label:>8}")
    for best, at in zip(report.scores, report.at_default, strict=True):
        echo(
            f"{best.profile:<20} {best.normalized:7.2f} {best.raw:9.3f} {best.threshold:10.4f}"
            f" {at.normalized:8.2f}"
        )


DEFAULT_SCENARIO_END = "2026-12-04"


@bench.command("scenarios")
@click.option(
    "--seeds",
    help="Comma-separated scenario seeds (default: the tuning seeds and the held-out ones).",
)
@click.option(
    "--analyzers",
    "sets",
    default="recommended,readme,auto",
    show_default=True,
    help="Analyzer sets to compare: recommended (what a project without analyzers gets),"
    " readme (same_time_comparison, threshold 0.3), auto.",
)
@click.option(
    "--days",
    default=4,
    show_default=True,
    type=click.IntRange(2, 14),
    help="Days replayed (one is the quieter day).",
)
@click.option(
    "--end",
    default=DEFAULT_SCENARIO_END,
    show_default=True,
    help="The scenarios' last midnight (UTC); another one shifts the weekdays.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def bench_scenarios(seeds: str | None, sets: str, days: int, end: str, as_json: bool) -> None:
    """Replay simulated apps with labelled incidents through analyzer sets: incidents caught
    within 30 minutes, false alerts per day per 10 series, alerts on a quieter day."""
    from vigil.quality.scenario_bench import HELD_OUT_SEEDS, SETS, TUNING_SEEDS, render, run

    chosen = tuple(x.strip() for x in sets.split(",") if x.strip())
    unknown = [x for x in chosen if x not in SETS]
    if unknown or not chosen:
        raise VigilError(
            f"--analyzers: unknown set {', '.join(unknown) or '(none)'}; expected some of:"
            f" {', '.join(SETS)}"
        )
    try:
        numbers = (
            tuple(int(x) for x in seeds.split(",")) if seeds else (*TUNING_SEEDS, *HELD_OUT_SEEDS)
        )
    except ValueError:
        raise VigilError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
    try:
        last = datetime.fromisoformat(end).replace(tzinfo=UTC)
    except ValueError:
        raise VigilError(f"--end: expected a date like 2026-12-04, got {end!r}") from None
    scores = run(numbers, chosen, last, replay_days=days)
    if as_json:
        echo(
            json.dumps(
                [
                    {
                        "seed": s.seed,
                        "shape": s.shape,
                        "analyzers": s.analyzers,
                        "held_out": s.seed in HELD_OUT_SEEDS,
                        "incidents": s.incidents,
                        "caught": s.caught,
                        "missed": list(s.missed),
                        "false_alerts": s.false_alerts,
                        "false_per_day_per_10_series": round(s.false_per_day_per_10, 3),
                        "quiet_day_alerts": s.quiet_day_alerts,
                        "messages_per_day": round(s.messages / s.days, 2),
                    }
                    for s in scores
                ],
                indent=2,
            )
        )
        return
    echo(render(scores, set(HELD_OUT_SEEDS)))


@main.group()
def store() -> None:
    """The metric store: schema migrations and retention."""


@store.command("migrate")
@click.option("--status", is_flag=True, help="Show the schema version; change nothing.")
@click.pass_context
@handle_errors
def store_migrate(ctx: click.Context, status: bool) -> None:
    """Bring the store's schema to the newest version (each migration runs once, in order)."""
    project = project_of(ctx.find_root())
    backend = create_store(project, SystemClock().now)
    newest = backend.migrations[-1].version
    if status:
        current = backend.schema_version()
        pending = [m for m in backend.migrations if m.version > current]
        echo(f"Schema version {current} of {newest}; {len(pending)} pending.")
        for m in pending:
            echo(f"  pending {m.version}: {m.name}")
        return
    applied = backend.migrate()
    for name in applied:
        echo(f"  applied {name}")
    echo(f"Schema version {backend.schema_version()} of {newest}.")


@store.command("prune")
@click.pass_context
@handle_errors
def store_prune(ctx: click.Context) -> None:
    """Delete values and results older than the store's retention_days."""
    project = project_of(ctx.find_root())
    retention = project.settings.store.retention_days
    if retention.values is None and retention.results is None:
        echo("No retention_days configured in the store settings; nothing to prune.")
        return
    clock = SystemClock()
    with running_app(project, clock) as app:
        counts = prune(app, clock.now())
    for table, n in counts.items():
        echo(f"  {table}: {n} rows deleted")
    echo(f"Pruned {sum(counts.values())} rows.")


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
    project = project_of(ctx.find_root())
    if not IDENTIFIER.match(name):
        raise VigilError(f"'{name}' is not a valid name; expected letters, digits and _")
    start, end = range_of(start_text, end_text, project)
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
    echo(f"Reference '{name}': {rows} values of {len(chosen)} metrics.")


@reference.command("list")
@click.pass_context
@handle_errors
def reference_list(ctx: click.Context) -> None:
    """List the stored references."""
    project = project_of(ctx.find_root())
    with running_app(project, SystemClock()) as app:
        rows = app.store.list_references()
    for r in rows:
        echo(
            f"{r['name']:<20} {r['metrics']:>3} metrics {r['series']:>5} series"
            f" {r['rows']:>7} values  {r['first']:%Y-%m-%d %H:%M} – {r['last']:%Y-%m-%d %H:%M}"
        )
    if not rows:
        echo("No references.")


@reference.command("delete")
@click.argument("name")
@click.pass_context
@handle_errors
def reference_delete(ctx: click.Context, name: str) -> None:
    """Delete reference NAME."""
    project = project_of(ctx.find_root())
    with running_app(project, SystemClock()) as app:
        if not app.store.delete_reference(name):
            raise VigilError(f"no reference '{name}'")
    echo(f"Reference '{name}' deleted.")


@main.group()
def notify() -> None:
    """Channels: send a test message."""


@notify.command("test")
@click.argument("channel")
@click.pass_context
@handle_errors
def notify_test(ctx: click.Context, channel: str) -> None:
    """Send a test message (with a sample chart) to CHANNEL and print the outcome."""
    project = project_of(ctx.find_root())
    if channel not in project.settings.channels:
        known = ", ".join(sorted(project.settings.channels)) or "none"
        hint = (
            "; `vigil demo` adds it when TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID are set"
            if channel == "telegram"
            else ""
        )
        raise VigilError(
            f"unknown channel '{channel}': vigil.yaml's channels are {known}; add it under"
            f" `channels:` (docs/channels.md){hint}"
        )
    clock = SystemClock()
    with running_app(project, clock) as app:
        note = sample_notification(project, channel, clock.now())
        try:
            parts = app.channels[channel].deliver(note)
        except NotifyError as e:
            raise VigilError(f"{channel}: {redact(str(e), project.secrets)}") from None
    echo(f"Sent a test message to '{channel}' ({parts} part{'s' if parts != 1 else ''}).")


@main.group()
def report() -> None:
    """Scheduled summaries (the `reports:` of the configuration)."""


@report.command("send")
@click.argument("report_id")
@click.option("--at", "at_text", type=TIME, help="The report as of this time (default now).")
@click.pass_context
@handle_errors
def report_send(ctx: click.Context, report_id: str, at_text: str | None) -> None:
    """Build one report and send it now (`vigil run` sends them at their cron times)."""
    from vigil.notify.pipeline import deliver_outbox
    from vigil.notify.reports import build

    project = project_of(ctx)
    chosen = project.reports.get(report_id)
    if chosen is None:
        known = ", ".join(sorted(project.reports)) or "none configured"
        raise VigilError(f"unknown report '{report_id}'; expected one of: {known}")
    with running_app(project, SystemClock()) as app:
        at = time_of(at_text, project) or app.clock.now()
        made = build(project, app.store, chosen, at.replace(second=0, microsecond=0))
        with app.store.transaction():
            app.store.enqueue(made)
        done = deliver_outbox(
            app.store, app.channels, project.secrets, app.clock.now(), only={n.key for n in made}
        )
    echo(f"Report {report_id}: {done.sent} sent, {done.failed} failed.")
    if done.failed:
        raise VigilError("\n".join(done.errors or []))


@main.group()
def grafana() -> None:
    """Grafana provisioning for the metric store."""


@grafana.command("export")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default="grafana",
    show_default=True,
    help="Where to write the provisioning files.",
)
@click.option(
    "--password-env",
    default="VIGIL_DB_PASSWORD",
    show_default=True,
    help="The environment variable Grafana reads the store's password from.",
)
@click.pass_context
@handle_errors
def grafana_export(ctx: click.Context, directory: Path, password_env: str) -> None:
    """Write a datasource for the store and a dashboard per dataset (docs/grafana.md)."""
    from vigil.grafana import export

    for path in export(project_of(ctx), directory, password_env):
        echo(f"wrote {path}")


@main.command("hash-password")
@handle_errors
def hash_password() -> None:
    """Print the scrypt hash of a password (read from stdin or a hidden prompt) for web.users.

    Put it in `password_hash:`; the password itself then lives nowhere on disk.
    """
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password.strip()) < MIN_PASSWORD_LENGTH:
        raise VigilError(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters")
    echo(passwords.hash_password(password))
