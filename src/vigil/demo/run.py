"""`vigil demo`: simulate, write the project, replay the last days, report what was caught."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from vigil.app import running_app
from vigil.clock import SystemClock
from vigil.config import load_project
from vigil.demo.project import write_project
from vigil.demo.simulate import Incident, simulate
from vigil.model import Alert, AlertStatus, DeliveryStatus
from vigil.scheduler.replay import replay_cycles
from vigil.scheduler.schedule import due_times
from vigil.timeutil import as_utc

DETECTION_LIMIT = timedelta(minutes=30)
AFTERMATH = timedelta(minutes=45)


@dataclass(frozen=True)
class DatasetSilence:
    """A dataset-level "no data" alert: the whole dataset had no rows from `start`."""

    dataset: str
    start: datetime
    metrics: set[str]


@dataclass(frozen=True)
class Detection:
    """How an injected incident was caught (or not)."""

    incident: Incident
    first_alert: Alert | None
    silence: DatasetSilence | None = None
    step: timedelta = timedelta(minutes=15)

    @property
    def delay(self) -> timedelta | None:
        """From the incident's start to the end of the first alerting bucket."""
        ends = []
        if self.first_alert is not None:
            ends.append(self.first_alert.result.bucket.end)
        if self.silence is not None:
            ends.append(self.silence.start + self.step)
        return min(ends) - self.incident.start if ends else None

    @property
    def label(self) -> str | None:
        """What caught it first."""
        if self.silence is not None and (
            self.first_alert is None or self.silence.start <= self.first_alert.result.bucket.start
        ):
            return f"no data: {self.silence.dataset}"
        return self.first_alert.result.series.label() if self.first_alert else None

    @property
    def caught(self) -> bool:
        """Whether an alert came within the detection limit."""
        return self.delay is not None and self.delay <= DETECTION_LIMIT


def run_demo(
    directory: Path, *, days: int, replay_days: int, seed: int, out: TextIO | None = None
) -> dict[str, object]:
    """Build and replay the demo; print alerts and a summary; return the summary."""
    out = out or sys.stdout
    began = time.monotonic()
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    for stale in ("vigil.duckdb", "vigil.duckdb.wal", "charts"):
        path = directory / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out.write(f"Simulating {days} days of a social app ({start:%Y-%m-%d} – {end:%Y-%m-%d})...\n")
    incidents = simulate(directory / "data" / "app.duckdb", start, end, seed)
    write_project(directory)
    write_labels(directory / "incidents.yaml", incidents)
    project = load_project(directory)
    replay_from = end - timedelta(days=replay_days)
    out.write(f"Replaying {replay_days} days through the monitors, every 15 minutes...\n")
    alerts: list[Alert] = []
    with running_app(project, SystemClock(), out) as app, app.session():
        for report in replay_cycles(app, due_times(project, replay_from, end)):
            alerts.extend(report.alerts)
        metrics_of = {d.name: {m.name for m in d.metrics} for d in project.datasets}
        silences = [  # one message may name several datasets (feed+messenger)
            DatasetSilence(name, as_utc(row["bucket"]), metrics_of[name])
            for row in app.store.notification_rows()
            if row["monitor"] == "pipeline:no_data" and row["channel"] == "console"
            for name in str(row["metric"]).split("+")
            if name in metrics_of
        ]
        # What a person on call receives: the messages of one channel.
        messages = Counter(
            row["kind"] or "alert"
            for row in app.store.notification_rows()
            if row["channel"] == "console" and row["status"] == DeliveryStatus.SENT.value
        )
    summary = summarize(
        incidents, alerts, replay_days, time.monotonic() - began, directory, silences, messages
    )
    (directory / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    _print_summary(summary, out)
    return summary


def write_labels(path: Path, incidents: Sequence[Incident]) -> None:
    """The injected incidents as `vigil backtest --labels` windows (one per affected metric,
    up to AFTERMATH after each incident, as the summary counts them)."""
    lines = ["# The demo's injected incidents: vigil backtest --labels incidents.yaml"]
    for i in incidents:
        for metric in i.metrics:
            lines.append(
                f"- {{name: {i.name}, metric: {metric}, start: '{i.start.isoformat()}',"
                f" end: '{(i.end + AFTERMATH).isoformat()}'}}"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _is_related(alert: Alert, incident: Incident) -> bool:
    bucket = alert.result.bucket
    in_window = bucket.end > incident.start and bucket.start < incident.end + AFTERMATH
    return in_window and alert.result.series.metric in incident.metrics


def _silence_related(silence: DatasetSilence, incident: Incident) -> bool:
    in_window = incident.start <= silence.start < incident.end + AFTERMATH
    return in_window and bool(silence.metrics & set(incident.metrics))


def summarize(
    incidents: Sequence[Incident],
    alerts: Sequence[Alert],
    replay_days: int,
    seconds: float,
    directory: Path,
    silences: Sequence[DatasetSilence] = (),
    messages: Mapping[str, int] | None = None,
) -> dict[str, object]:
    """Which incidents were caught, how fast, and how many alerts were false."""
    sent = [a for a in alerts if a.status is AlertStatus.NOTIFY]
    detections = []
    for incident in incidents:
        related = sorted(
            (a for a in sent if _is_related(a, incident)), key=lambda a: a.result.bucket.start
        )
        quiet = sorted(
            (s for s in silences if _silence_related(s, incident)), key=lambda s: s.start
        )
        detections.append(
            Detection(incident, related[0] if related else None, quiet[0] if quiet else None)
        )
    false = [a for a in sent if not any(_is_related(a, i) for i in incidents)]
    false_silences = [s for s in silences if not any(_silence_related(s, i) for i in incidents)]
    return {
        "incidents": [
            {
                "name": d.incident.name,
                "description": d.incident.description,
                "start": d.incident.start.isoformat(),
                "caught": d.caught,
                "delay_minutes": d.delay.total_seconds() / 60 if d.delay is not None else None,
                "first_alert": d.label,
            }
            for d in detections
        ],
        "alerts_sent": len(sent),
        "alerts_suppressed": len(alerts) - len(sent),
        "dataset_alerts": len(silences),
        "false_alerts": [
            f"{a.result.bucket.start.isoformat()} {a.result.series.label()} ({a.result.analyzer})"
            for a in false
        ]
        + [f"{s.start.isoformat()} no data: {s.dataset}" for s in false_silences],
        "false_alerts_per_day": (len(false) + len(false_silences)) / replay_days,
        "messages": dict(messages or {}),
        "charts_dir": str(directory / "charts"),
        "seconds": round(seconds, 1),
    }


def _print_summary(summary: dict[str, object], out: TextIO) -> None:
    out.write("\n=== Demo summary ===\n")
    for item in summary["incidents"]:  # type: ignore[attr-defined]
        mark = "caught" if item["caught"] else "MISSED"
        delay = item["delay_minutes"]
        when = f"after {delay:.0f} min by {item['first_alert']}" if delay is not None else ""
        out.write(f"  [{mark}] {item['name']}: {item['description']} {when}\n")
    false = summary["false_alerts"]
    out.write(
        f"Alerts sent: {summary['alerts_sent']} on series and {summary['dataset_alerts']} 'no data'"
        f" on datasets (plus {summary['alerts_suppressed']} held back by cooldown or quiet hours);"
        f" false alerts: {len(false)}"  # type: ignore[arg-type]
        f" ({summary['false_alerts_per_day']:.2f} per day)\n"
    )
    for line in false:  # type: ignore[attr-defined]
        out.write(f"  false: {line}\n")
    messages: dict[str, int] = summary.get("messages") or {}  # type: ignore[assignment]
    if messages:
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(messages.items()))
        out.write(f"Messages on the console channel: {sum(messages.values())} ({parts})\n")
    out.write(f"Charts: {summary['charts_dir']}   Took {summary['seconds']} s\n")
    project = _relative(Path(str(summary["charts_dir"])).parent)
    vigil = f"{_command()} --project {project}"
    out.write("Next, exactly as typed here:\n")
    out.write(f"  {vigil} alerts --status sent      # the alerts that were sent\n")
    out.write(f"  {vigil} validate                  # the configuration and every formula\n")
    out.write(f"  {vigil} serve                     # the dashboard: http://127.0.0.1:8000\n")


def _command() -> str:
    """How this shell reaches `vigil`: the bare name when it is on PATH, else its path."""
    running = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    found = shutil.which("vigil")
    if found and running is not None and Path(found).resolve() == running:
        return "vigil"
    if running is not None and running.name == "vigil":
        return str(_relative(running))
    return "vigil"


def _relative(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path
