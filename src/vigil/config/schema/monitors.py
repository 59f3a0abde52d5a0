"""Monitors: which anomalies are sent where, and how."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from vigil.config.schema.analyzers import TimeRange
from vigil.config.schema.defaults import QuietHours
from vigil.config.schema.types import Base, Cron, Duration, Name
from vigil.model import Direction, Severity


class MuteWindow(Base):
    """A recurring mute: from each fire time of `cron` (project zone), for `duration`."""

    cron: Cron = Field(description="When each window starts, e.g. '0 2 * * 0' (Sunday 02:00).")
    duration: Duration = Field(description="How long each window lasts.")


class MessageTemplate(Base):
    """Jinja2 templates (sandboxed) for a message; a part left out keeps the default."""

    title: str | None = Field(None, description="Title (chart caption, email subject).")
    text: str | None = Field(None, description="Plain text (console, Slack, Teams, webhook).")
    html: str | None = Field(None, description="HTML (Telegram, email); values are escaped.")


class Escalation(Base):
    """Raise an alert's severity when its deviation is large."""

    min_deviation: float = Field(gt=0, description="|deviation| (fraction) at least this…")
    severity: Severity = Field(description="…gives this severity.")


class MonitorConfig(Base):
    """Which analyzers' anomalies reach which channels, and when to stay quiet."""

    id: Name = Field(description="Unique monitor id.")
    analyzers: list[str] = Field(description="Analyzer ids, or ['*'] for all.")
    channels: list[str] = Field(
        default_factory=lambda: ["console"], description="Channel names from vigil.yaml."
    )
    severity: Severity = Field(Severity.HIGH, description="critical, high, medium, low, info.")
    escalations: list[Escalation] = Field(
        default_factory=list,
        description="Severity by deviation, e.g. [{min_deviation: 0.5, severity: critical}].",
    )
    routes: dict[Severity, list[str]] = Field(
        default_factory=dict,
        description="Severity → channels; a severity not listed uses `channels`.",
    )
    mode: Annotated[
        Literal["every_anomaly", "digest"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = Field(
        "every_anomaly",
        description=(
            "`every_anomaly`: a message per series; `digest`: one message per run summarising"
            " all anomalies, grouped by metric and segment (EVERY_ANOMALY / DIGEST accepted)."
        ),
    )
    digest_top: int = Field(5, ge=1, description="Anomalies shown in detail in a digest.")
    group: Literal["dataset", "monitor", "none"] = Field(
        "dataset",
        description=(
            "One message per incident: the anomalies of one bucket in one `dataset` (or all"
            " the `monitor` routes) are one message, across metrics, slices and analyzers;"
            " `none`: a message per series."
        ),
    )
    llm: Literal["off", "annotate", "confirm"] | None = Field(
        None, description="The second opinion for this monitor (default: the project's `llm`)."
    )
    group_by: list[str] = Field(
        default_factory=list,
        description="Dimensions that split an incident: with [os], the anomalies of one bucket"
        " make one message per os value (and one for the total), not one for the dataset.",
    )
    template: MessageTemplate | None = Field(
        None, description="Custom message for every channel (docs/templates.md)."
    )
    channel_templates: dict[str, MessageTemplate] = Field(
        default_factory=dict, description="Channel name → custom message for that channel."
    )
    cooldown: Duration | None = Field(None, description="Overrides defaults.cooldown.")
    quiet_hours: QuietHours | Literal["off"] | None = Field(
        None, description="Overrides defaults.quiet_hours; `off` disables them."
    )
    dataset_timestamp_offset: Duration | None = Field(
        None, description="Overrides defaults.dataset_timestamp_offset for this monitor."
    )
    mention_owners: bool = Field(True, description="@mention metric and slice owners.")
    chart: bool = Field(True, description="Attach the today/yesterday/week-ago chart.")
    metrics: list[str] = Field(
        default_factory=lambda: ["*"], description="Only anomalies of these metrics (globs)."
    )
    exclude_metrics: list[str] = Field(
        default_factory=list, description="Never anomalies of these metrics (globs)."
    )
    segments: Literal["all", "total", "slices"] | list[dict[str, str]] = Field(
        "all", description="Only these segments: `all`, `total`, `slices` or selectors."
    )
    direction: Direction = Field(
        Direction.BOTH, description="Only anomalies above (`up`) or below (`down`) expectation."
    )
    min_severity: Severity | None = Field(
        None, description="Only alerts at least this severe (after escalations)."
    )
    renotify_factor: float | None = Field(
        None,
        gt=1,
        description=(
            "Notify again within the cooldown when an open incident's deviation grows to this"
            " many times the last notified one (e.g. 1.5)."
        ),
    )
    resolve_after: int | None = Field(
        None,
        ge=1,
        description="Send a 'resolved' message once the series has been normal this many buckets.",
    )
    mute_windows: list[MuteWindow] = Field(
        default_factory=list,
        description="Recurring windows with no notifications (logged as mute_window).",
    )
    exclusion_ranges: list[TimeRange] = Field(
        default_factory=list, description="Fixed spans (holidays) with no notifications."
    )

    @model_validator(mode="after")
    def _group_by_needs_a_group(self) -> MonitorConfig:
        if self.group_by and self.group == "none":
            raise ValueError("group_by splits grouped messages; with group: none there are none")
        return self
