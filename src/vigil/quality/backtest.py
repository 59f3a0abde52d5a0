"""Backtest: replay history through the configured analyzers and monitors, as the scheduler
would, into a scratch store, and report what would have fired (and, given labels, how well).

The same code runs as in `vigil run`: the cycles at every due time between the two instants,
ingesting from the real sources (read-only), the same cooldowns, quiet hours and incident
merging. Nothing is sent (every channel becomes a silent console) and the project's own store
is not touched: the scratch store lives in a temporary directory.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from vigil.app import running_app
from vigil.clock import SystemClock
from vigil.config import load_project
from vigil.config.project import Project
from vigil.config.schema import ConsoleChannelConfig, DuckDBStoreConfig
from vigil.errors import VigilError
from vigil.model import SENT_STATUSES, Feedback, FeedbackLabel, Segment
from vigil.scheduler.replay import replay_cycles
from vigil.scheduler.schedule import due_times
from vigil.timeutil import as_utc, parse_instant

FIRED = SENT_STATUSES


@dataclass(frozen=True)
class LabelWindow:
    """A known incident: anomalies of matching series in [start, end) are true detections."""

    start: datetime
    end: datetime
    metric: str = "*"
    segment: dict[str, str] = field(default_factory=dict)
    name: str = ""

    def covers(self, metric: str, segment: Segment, bucket: datetime) -> bool:
        """Whether an alert on this series at this bucket falls in the window."""
        return (
            self.start <= bucket < self.end
            and fnmatchcase(metric, self.metric)
            and segment.matches(self.segment)
        )


@dataclass(frozen=True)
class FiredAlert:
    """An alert the backtest says would have been sent."""

    monitor: str
    analyzer: str
    metric: str
    segment: str
    bucket: datetime
    value: float | None
    deviation: float | None
    reason: str


@dataclass(frozen=True)
class SentMessage:
    """A message a channel would have received: what a person on call counts."""

    channel: str
    kind: str  # alert, incident, digest, pipeline, resolved
    bucket: datetime


@dataclass
class BacktestReport:
    """What would have fired, per monitor and day, and the scores against labels."""

    start: datetime
    end: datetime
    cycles: int
    alerts: list[FiredAlert]
    held_back: int
    errors: list[str]
    labels: list[LabelWindow] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    messages: list[SentMessage] = field(default_factory=list)

    def message_counts(self) -> dict[str, dict[str, int]]:
        """Per channel, the messages it would have received, by kind."""
        out: dict[str, Counter[str]] = {}
        for m in self.messages:
            out.setdefault(m.channel, Counter())[m.kind] += 1
        return {c: dict(sorted(k.items())) for c, k in sorted(out.items())}

    def busiest(self) -> tuple[str, list[SentMessage]]:
        """The channel that would have received the most messages, and those messages."""
        by_channel: dict[str, list[SentMessage]] = {}
        for m in self.messages:
            by_channel.setdefault(m.channel, []).append(m)
        if not by_channel:
            return "", []
        return max(sorted(by_channel.items()), key=lambda item: len(item[1]))

    def incident_messages(self) -> dict[str, Any] | None:
        """On the busiest channel: messages per labelled incident (within its windows, any
        metric) and messages outside every incident (None without labels)."""
        if self.labels is None:
            return None
        spans: dict[str, list[LabelWindow]] = {}
        for w in self.labels:
            spans.setdefault(w.name or f"{w.start:%Y-%m-%d %H:%M}", []).append(w)
        _, messages = self.busiest()
        per = {
            name: sum(1 for m in messages if any(w.start <= m.bucket < w.end for w in windows))
            for name, windows in spans.items()
        }
        outside = sum(
            1 for m in messages if not any(w.start <= m.bucket < w.end for w in self.labels)
        )
        return {
            "per_incident": per,
            "mean_per_incident": sum(per.values()) / len(per) if per else None,
            "outside_incidents": outside,
        }

    @property
    def days(self) -> float:
        """Length of the backtest in days."""
        return max((self.end - self.start).total_seconds() / 86_400, 1e-9)

    def per_day(self) -> dict[str, float]:
        """Alerts per day for each monitor."""
        counts = Counter(a.monitor for a in self.alerts)
        return {m: n / self.days for m, n in sorted(counts.items())}

    def quality(self) -> dict[str, Any] | None:
        """Precision, recall and detection delay against the labels (None without labels)."""
        if self.labels is None:
            return None
        matched = [
            a
            for a in self.alerts
            if any(w.covers(a.metric, Segment.from_label(a.segment), a.bucket) for w in self.labels)
        ]
        delays = []
        found = 0
        for window in self.labels:
            hits = [
                a.bucket
                for a in self.alerts
                if window.covers(a.metric, Segment.from_label(a.segment), a.bucket)
            ]
            if hits:
                found += 1
                delays.append((min(hits) - window.start).total_seconds() / 60)
        return {
            "labels": len(self.labels),
            "detected": found,
            "precision": len(matched) / len(self.alerts) if self.alerts else None,
            "recall": found / len(self.labels) if self.labels else None,
            "true_alerts": len(matched),
            "false_alerts": len(self.alerts) - len(matched),
            "mean_delay_minutes": sum(delays) / len(delays) if delays else None,
            "max_delay_minutes": max(delays) if delays else None,
        }

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON document."""
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "cycles": self.cycles,
            "settings": self.settings,
            "alerts": [
                {
                    "monitor": a.monitor,
                    "analyzer": a.analyzer,
                    "metric": a.metric,
                    "segment": a.segment,
                    "bucket": a.bucket.isoformat(),
                    "value": a.value,
                    "deviation": a.deviation,
                    "reason": a.reason,
                }
                for a in self.alerts
            ],
            "alerts_per_day": self.per_day(),
            "messages": self.message_counts(),
            "messages_per_day": {
                c: sum(k.values()) / self.days for c, k in self.message_counts().items()
            },
            "incident_messages": self.incident_messages(),
            "held_back": self.held_back,
            "quality": self.quality(),
            "errors": self.errors,
        }


def scratch_project(project: Project, folder: Path, monitor: str | None) -> Project:
    """The project with a scratch store, silent channels, no charts and (optionally) one
    monitor."""
    if monitor is not None and monitor not in project.monitors:
        raise VigilError(
            f"--monitor: unknown monitor '{monitor}'; expected one of: "
            + ", ".join(sorted(project.monitors))
        )
    settings = project.settings.model_copy(
        update={
            "store": DuckDBStoreConfig(type="duckdb", path=str(folder / "backtest.duckdb")),
            "channels": {
                name: ConsoleChannelConfig(type="console") for name in project.settings.channels
            },
            "charts_dir": None,
        }
    )
    monitors = {
        m.id: m.model_copy(update={"chart": False})
        for m in project.monitors.values()
        if monitor is None or m.id == monitor
    }
    return replace(project, settings=settings, monitors=monitors)


def backtest(
    root: Path,
    start: datetime,
    end: datetime,
    *,
    monitor: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    labels: list[LabelWindow] | None = None,
    env: Mapping[str, str] | None = None,
    read: dict[tuple[str, datetime, datetime], Any] | None = None,
) -> BacktestReport:
    """Replay [start, end) of the project in `root` with `overrides` applied; nothing sent.

    Backtests of one sweep share `read`: what each dataset's source answered for the range
    (the settings swept change the analyzers, not the queries)."""
    project = load_project(root, env=env, analyzer_overrides=overrides or {})
    with tempfile.TemporaryDirectory(prefix="vigil-backtest-") as folder:
        scratch = scratch_project(project, Path(folder), monitor)
        times = due_times(scratch, start, end)
        alerts: list[FiredAlert] = []
        held = 0
        errors: list[str] = []
        with running_app(scratch, SystemClock(), io.StringIO()) as app, app.session():
            # Sent (to silent console stand-ins of the channels) so that the messages a person
            # on call would have received are composed and counted; nothing leaves the process.
            for report in replay_cycles(app, times, notify=True, kind="backtest", read=read):
                errors += report.errors
                for alert in report.alerts:
                    if alert.status not in FIRED:
                        held += 1
                        continue
                    r = alert.result
                    alerts.append(
                        FiredAlert(
                            alert.monitor,
                            r.analyzer,
                            r.series.metric,
                            r.series.segment.label(),
                            r.bucket.start,
                            r.value,
                            r.deviation,
                            r.reason,
                        )
                    )
            messages = [
                SentMessage(str(row["channel"]), str(row["kind"] or "alert"), as_utc(row["bucket"]))
                for row in app.store.notification_rows()
                # An edit of a message already counted is not one more message.
                if str(row["status"]) == "sent" and row["kind"] != "resolved-edit"
            ]
    settings = {
        f"{a}.{k}": v for a, changes in (overrides or {}).items() for k, v in changes.items()
    }
    return BacktestReport(start, end, len(times), alerts, held, errors, labels, settings, messages)


def parse_setting(text: str) -> tuple[str, str, Any]:
    """`analyzer.param=value` → (analyzer, param, value); the value is read as YAML."""
    name, sep, raw = text.partition("=")
    analyzer, dot, param = name.strip().partition(".")
    if not sep or not dot or not analyzer or not param:
        raise VigilError(
            f"--set '{text}': expected analyzer.param=value, e.g. day_week.threshold=0.4"
        )
    return analyzer, param, _scalar(raw)


def parse_sweep(text: str) -> tuple[str, str, list[Any]]:
    """`analyzer.param=a,b,c` → (analyzer, param, [a, b, c])."""
    analyzer, param, _ = parse_setting(text.split(",", 1)[0])
    raw = text.partition("=")[2]
    values = [_scalar(v) for v in raw.split(",") if v.strip()]
    if len(values) < 2:
        raise VigilError(f"--sweep '{text}': expected two or more values, e.g. x.threshold=0.3,0.4")
    return analyzer, param, values


def _scalar(raw: str) -> Any:
    return YAML(typ="safe").load(raw) if raw.strip() else ""


def read_labels(path: Path, tz: str) -> list[LabelWindow]:
    """Incident windows from a YAML or JSON file: a list of {start, end, metric?, segment?,
    name?} (times ISO 8601, naive ones in the project zone)."""
    try:
        data = YAML(typ="safe").load(path.read_text())
    except OSError as e:
        raise VigilError(f"--labels {path}: cannot read: {e.strerror}") from e
    except Exception as e:  # the YAML parser's own errors
        raise VigilError(f"--labels {path}: not YAML or JSON: {e}") from e
    items = data.get("incidents") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise VigilError(f"--labels {path}: expected a list of {{start, end, metric, segment}}")
    windows = []
    for i, item in enumerate(items):
        where = f"--labels {path}: item {i + 1}"
        if not isinstance(item, dict) or "start" not in item or "end" not in item:
            raise VigilError(f"{where}: expected start and end (and optionally metric, segment)")
        try:
            start = parse_instant(str(item["start"]), tz)
            end = parse_instant(str(item["end"]), tz)
        except ValueError as e:
            raise VigilError(f"{where}: {e}") from None
        if end <= start:
            raise VigilError(f"{where}: end must be after start")
        segment = item.get("segment") or {}
        if isinstance(segment, str):
            try:
                segment = Segment.from_label(segment).as_dict()
            except ValueError as e:
                raise VigilError(f"{where}: {e}") from None
        windows.append(
            LabelWindow(
                start, end, str(item.get("metric", "*")), dict(segment), str(item.get("name", ""))
            )
        )
    return windows


def feedback_labels(feedback: list[Feedback]) -> list[LabelWindow]:
    """Alerts people called true anomalies, as one-bucket windows."""
    return [
        LabelWindow(
            as_utc(f.bucket.start),
            as_utc(f.bucket.end),
            f.series.metric,
            f.series.segment.as_dict(),
            f"feedback {f.monitor}",
        )
        for f in feedback
        if f.label is FeedbackLabel.TRUE_ANOMALY
    ]


def render(report: BacktestReport) -> str:
    """The report as text."""
    lines = [
        f"Backtest {report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M} UTC:"
        f" {report.cycles} cycles, {len(report.alerts)} alerts would have been sent"
        f" ({report.held_back} held back by cooldown, quiet hours or silences)."
    ]
    for monitor, rate in report.per_day().items():
        lines.append(f"  {monitor}: {rate:.2f} alerts per day")
    for channel, kinds in report.message_counts().items():
        total = sum(kinds.values())
        detail = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
        lines.append(
            f"  messages on {channel}: {total} ({detail}), {total / report.days:.2f} per day"
        )
    for a in report.alerts[:50]:
        lines.append(f"  {a.bucket:%Y-%m-%d %H:%M} {a.monitor} {a.metric} [{a.segment}] {a.reason}")
    if len(report.alerts) > 50:
        lines.append(f"  … and {len(report.alerts) - 50} more (--json lists all)")
    quality = report.quality()
    if quality is not None:
        lines.append(_quality_line(quality))
    told = report.incident_messages()
    if told is not None and report.messages:
        channel, _ = report.busiest()
        per = ", ".join(f"{name} {n}" for name, n in told["per_incident"].items())
        lines.append(
            f"  messages per labelled incident on {channel}: {per};"
            f" {told['outside_incidents']} outside every incident"
        )
    lines += [f"  error: {e}" for e in report.errors]
    return "\n".join(lines)


def _quality_line(q: dict[str, Any]) -> str:
    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0%}"

    delay = q["mean_delay_minutes"]
    return (
        f"Against {q['labels']} labelled incidents: precision {pct(q['precision'])},"
        f" recall {pct(q['recall'])} ({q['detected']} found),"
        f" {q['false_alerts']} false alerts, mean delay "
        + ("n/a" if delay is None else f"{delay:.0f} min")
    )


def render_sweep(name: str, reports: list[tuple[Any, BacktestReport]]) -> str:
    """Settings side by side: alerts, alerts per day, precision, recall, delay."""
    lines = [
        f"{name:<28} {'alerts':>7} {'per day':>8} {'msgs/day':>9} {'precision':>10}"
        f" {'recall':>7} {'delay':>8}"
    ]
    for value, report in reports:
        q = report.quality() or {}
        precision = q.get("precision")
        recall = q.get("recall")
        delay = q.get("mean_delay_minutes")
        lines.append(
            f"{json.dumps(value):<28} {len(report.alerts):>7}"
            f" {len(report.alerts) / report.days:>8.2f}"
            f" {len(report.busiest()[1]) / report.days:>9.2f}"
            f" {'–' if precision is None else f'{precision:.0%}':>10}"
            f" {'–' if recall is None else f'{recall:.0%}':>7}"
            f" {'–' if delay is None else f'{delay:.0f} min':>8}"
        )
    return "\n".join(lines)
