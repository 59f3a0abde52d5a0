"""Reports: a scheduled summary of chosen metrics, whether or not anything alerted."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from vigil.config.schema.types import Base, Cron, Duration, Name


class ReportConfig(Base):
    """A summary on a schedule (Anomstack's summary report): per metric its newest value,
    its change against a day and a week earlier, the anomalies of the period, a sparkline."""

    id: Name = Field(description="Unique report id.")
    cron: Cron = Field(description="When to send it (project zone), e.g. '0 9 * * 1-5'.")
    channels: list[str] = Field(description="Channel names from vigil.yaml.")
    metrics: list[str] = Field(
        default_factory=lambda: ["*"], description="Metric names or globs to include."
    )
    segments: Literal["total", "all"] = Field(
        "total", description="The total of each metric, or every stored segment."
    )
    period: Duration = Field(
        timedelta(days=1), description="Anomalies are counted, and sparklines drawn, over this."
    )
    title: str | None = Field(None, description="The report's title (default: its id).")
