"""Settings that datasets and metrics inherit."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from vigil.config.schema.types import Base, ClockTime, Duration, Fill, GranularityName


class QuietHours(Base):
    """A daily window (project time zone) in which anomalies are logged but not sent."""

    start: ClockTime = Field(description="Start of the window, HH:MM.")
    end: ClockTime = Field(description="End of the window, HH:MM (may be past midnight).")


class SegmentOwners(Base):
    """Extra owners to @mention for series of one slice."""

    segment: dict[str, str] = Field(description="Slice values, e.g. {os: iOS}; `*` = any value.")
    owners: list[str] = Field(description="Handles to @mention, e.g. ['@ios_lead'].")


class HolidaysConfig(Base):
    """Days that are not like other days: their values are left out of every baseline."""

    countries: list[str] = Field(
        default_factory=list,
        description="ISO 3166 country codes whose public holidays count, e.g. [US, RU] (the"
        " holidays package's calendars).",
    )
    dates: list[date] = Field(
        default_factory=list, description="More holidays, e.g. ['2026-12-31'] (local dates)."
    )
    mute: bool = Field(
        False,
        description="Also skip the checks of a holiday's own buckets (nothing alerts on a"
        " holiday); without it a holiday is checked against normal days.",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`holidays: [US, RU]` is short for `holidays: {countries: [US, RU]}`."""
        return {"countries": data} if isinstance(data, list) else data

    @field_validator("countries")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from vigil.calendar import supported_countries

        known = supported_countries()
        wrong = [c for c in value if c.upper() not in known]
        if wrong:
            raise ValueError(
                f"unknown country {', '.join(repr(c) for c in wrong)}; expected ISO 3166 codes"
                f" such as US, GB, DE, FR, RU, IN, BR ({len(known)} are known)"
            )
        return [c.upper() for c in value]


class Defaults(Base):
    """Settings every dataset and metric inherits unless it sets its own."""

    granularity: GranularityName = Field("15m", description="Bucket width: 5m, 15m, 1h, 1d, 1w.")
    delay: Duration = Field(
        timedelta(minutes=2), description="Wait this long after a bucket ends for late data."
    )
    lookback: int = Field(
        4, ge=0, description="Buckets before the newest that each cycle re-reads (late rows)."
    )
    fill: Fill = Field(
        "zero",
        description=(
            "A known series with no rows in a bucket: `zero` (counts: nothing happened) or"
            " `missing` (ratios: undefined)."
        ),
    )
    holidays: HolidaysConfig | None = Field(
        None,
        description="Holidays left out of baselines (and optionally muted); see docs/analyzers.md.",
    )
    owners: list[str] = Field(default_factory=list, description="Handles to @mention.")
    links: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Named URL templates; placeholders {metric}, {segment}, {bucket}, {bucket_end},"
            " {granularity}, {dataset}."
        ),
    )
    cooldown: Duration = Field(
        timedelta(hours=3),
        description="After an alert, the same analyzer and series stay quiet this long.",
    )
    quiet_hours: QuietHours | None = Field(
        None, description="Daily window with no notifications (still logged)."
    )
    formula_dialect: Literal["duckdb", "postgres", "mysql", "sqlite", "clickhouse"] | None = Field(
        None,
        description="The SQL dialect formulas and filters are written in, when not the"
        " source's: they are translated to the source's with sqlglot (DuckDB's `/` divides"
        " as fractions, PostgreSQL's and SQLite's divide integers: a cast is added)."
        " Default: each source's own dialect.",
    )
    channels: list[str] = Field(
        default_factory=list,
        description="Channels of monitors that name none (Anomstack's alert_methods); empty:"
        " the console.",
    )
    rollups: list[GranularityName] = Field(
        default_factory=list,
        description="Coarser buckets every metric is also stored at, kept current each cycle"
        " (e.g. [1h, 1d]): the store's hourly_values and daily_values views read them, for BI"
        " tools and Grafana. Metrics with `rollup` derive them from the stored values; the"
        " others are recomputed by a SQL source.",
    )
    analyzers: Literal["recommended", "none"] = Field(
        "recommended",
        description="What a project that defines no analyzers and no monitors gets:"
        " `recommended` (a same-time comparison of every metric against a day and a week ago,"
        " scaled by how the day runs, with the count test; and a monitor `default` to"
        " `defaults.channels` or every channel; see docs/analyzers.md) or `none`.",
    )
    history: Duration = Field(
        timedelta(days=8),
        description="How much history the first cycle ingests when the store has none.",
    )
    backfill_grace_period: Duration | None = Field(
        None,
        description=(
            "After downtime, analyse missed buckets up to this far back (backfillGracePeriod"
            "Duration); null: 30d for hourly and daily data, 190d for weekly and monthly."
        ),
    )
    allow_partial: bool = Field(
        False,
        description=(
            "Also analyse the current, incomplete bucket (allowPartialTargetBatches); its"
            " result is redone each cycle until the bucket is complete."
        ),
    )
    batch_cooldown: Duration | None = Field(
        None,
        description=(
            "Analyse a bucket only once its values have not changed for this long"
            " (batchCoolDownPeriod)."
        ),
    )
    retries: int = Field(3, ge=1, description="Attempts per cycle to read a failing source.")
    retry_backoff: Duration = Field(
        timedelta(seconds=2), description="Wait before the first retry; doubles each time."
    )
    failure_alert_after: int = Field(
        3,
        ge=1,
        description="Consecutive failed cycles of a dataset before a pipeline-failure alert.",
    )
    dataset_timestamp_offset: Duration | None = Field(
        timedelta(days=1),
        description=(
            "Do not notify for buckets that ended longer ago than this (no alert storm after"
            " an outage; still logged). null: no limit."
        ),
    )
