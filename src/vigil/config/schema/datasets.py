"""Datasets, their metrics, slices and profiles."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from vigil.config.schema.defaults import SegmentOwners
from vigil.config.schema.types import (
    QUALIFIED_NAME,
    Base,
    Cron,
    Duration,
    Fill,
    GranularityName,
    Name,
)


def _parse_slice(value: object) -> object:
    """Accept `os`, `[os, country]` or `{os: [iOS, Android], country: '*'}`."""
    if isinstance(value, str):
        return {"dimensions": {value: "*"}}
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("a slice list names columns; expected strings like [os, country]")
        return {"dimensions": dict.fromkeys(value, "*")}
    if isinstance(value, dict) and "dimensions" not in value:
        return {"dimensions": value}
    return value


class SliceConfig(Base):
    """A slice: one or more dimension columns, each with all values (`*`) or a list."""

    dimensions: dict[str, Literal["*"] | list[str | int | bool]] = Field(
        description="Dimension column → `*` or the values to keep."
    )

    @field_validator("dimensions")
    @classmethod
    def _valid_columns(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("a slice needs at least one dimension column")
        for column in value:
            if not QUALIFIED_NAME.match(column):
                raise ValueError(f"'{column}' is not a column name")
        return value


Slice = Annotated[SliceConfig, BeforeValidator(_parse_slice)]


def _distinct_slices(slices: list[SliceConfig]) -> list[SliceConfig]:
    """The same slice twice would compute the same segments twice."""
    seen: set[str] = set()
    for index, found in enumerate(slices):
        key = repr(sorted((k, repr(v)) for k, v in found.dimensions.items()))
        if key in seen:
            raise ValueError(
                f"slice {index + 1} ({', '.join(found.dimensions)}) is listed twice;"
                " list each slice once"
            )
        seen.add(key)
    return slices


ProfileStat = Literal[
    "count",
    "null_count",
    "null_ratio",
    "mean",
    "median",
    "min",
    "max",
    "stddev",
    "unique_est",
    "unique_est_ratio",
    "count_integral",
    "count_fractional",
    "count_bool",
    "count_string",
    "inferred_type",
    "histogram",
    "frequent_items",
]
DatasetStat = Literal["missing_datapoint", "seconds_since_last_upload"]
CONTINUOUS_STATS: tuple[str, ...] = (
    "count",
    "null_ratio",
    "mean",
    "median",
    "min",
    "max",
    "stddev",
    "unique_est",
    "histogram",
)
DISCRETE_STATS: tuple[str, ...] = (
    "count",
    "null_ratio",
    "unique_est",
    "unique_est_ratio",
    "inferred_type",
    "frequent_items",
)


class ProfileColumn(Base):
    """Profile one column of the dataset's table per bucket and segment, inside the source."""

    column: str = Field(description="Column to profile.")
    kind: Literal["continuous", "discrete"] = Field(
        "continuous",
        description="continuous (numbers: quantile histogram) or discrete (categories: items).",
    )
    stats: list[ProfileStat] | None = Field(
        None,
        description=(
            "Statistics to compute; each becomes the metric `<column>.<stat>`. Default:"
            f" continuous {', '.join(CONTINUOUS_STATS)}; discrete {', '.join(DISCRETE_STATS)}."
        ),
    )
    owners: list[str] | None = Field(None, description="Handles to @mention (default: dataset's).")

    @field_validator("column")
    @classmethod
    def _valid_column(cls, value: str) -> str:
        if not QUALIFIED_NAME.match(value):
            raise ValueError(f"'{value}' is not a valid column name")
        return value

    @property
    def effective_stats(self) -> list[str]:
        """The stats asked for, or the kind's defaults."""
        if self.stats is not None:
            return list(dict.fromkeys(self.stats))
        return list(CONTINUOUS_STATS if self.kind == "continuous" else DISCRETE_STATS)


class FunnelStep(Base):
    """One step of a funnel: the rows (events) that reach it."""

    name: Name = Field(description="The step's name (visit, signup, activation).")
    filter: str = Field(description="SQL condition of the step's rows, e.g. event = 'signup'.")


class FunnelConfig(Base):
    """Ordered steps; their counts and the conversion between them become metrics."""

    steps: list[FunnelStep] = Field(min_length=2, description="The steps, in order.")
    unit: str | None = Field(
        None,
        description="Count distinct values of this column per step (user_id); default: rows.",
    )

    @field_validator("unit")
    @classmethod
    def _valid_unit(cls, value: str | None) -> str | None:
        if value is not None and not QUALIFIED_NAME.match(value):
            raise ValueError(f"'{value}' is not a column name")
        return value


class MetricConfig(Base):
    """One metric: an aggregate formula in the source's SQL dialect."""

    name: Name = Field(description="Unique metric name (letters, digits, _).")
    formula: str | None = Field(
        None,
        description=(
            "Aggregate SQL expression in the source's dialect, e.g. count(DISTINCT user_id)."
            " Not used with Python sources."
        ),
    )
    funnel: FunnelConfig | None = Field(
        None,
        description="Instead of a formula: a funnel. Its metrics are <name>_<step> (the"
        " step's count), <name>_<step>_to_<next> (conversion between steps) and"
        " <name>_conversion (first to last), analysed like any ratio (docs/analyzers.md).",
    )
    title: str | None = Field(None, description="Human title for alerts and charts.")
    format: Literal["number", "percent"] = Field(
        "number",
        description="How values are written in alerts and the dashboard: `percent` shows a"
        " ratio such as CTR 0.0608 as 6.08%.",
    )
    description: str = Field("", description="What the metric means.")
    owners: list[str] | None = Field(None, description="Handles to @mention (default: dataset's).")
    links: dict[str, str] | None = Field(None, description="URL templates (default: dataset's).")
    fill: Fill | None = Field(None, description="Missing-bucket policy (default: dataset's).")
    ratio_of: list[Name] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="[numerator, denominator]: the metrics of the same dataset this one is the"
        " ratio of, for the count-aware tests of ratios (min_significance). Found from the"
        " formula when it is `A / B` or `A / nullif(B, 0)` with A and B the formulas of two"
        " other metrics.",
    )
    rollup: Literal["sum", "mean", "min", "max", "last"] | None = Field(
        None,
        description=(
            "How coarser buckets derive from this metric's stored values, for analyzers with a"
            " coarser granularity. Only for aggregates that roll up (counts, sums, min, max)."
            " Without it, a SQL or files source recomputes the metric at the coarser granularity"
            " (right for distinct counts, ratios and medians); a Python or Prometheus source"
            " needs it."
        ),
    )
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Analyzer id → parameters that differ for this metric, e.g. {threshold: 0.5}.",
    )
    skip_analyzers: list[str] = Field(
        default_factory=list, description="Analyzer ids that must not run on this metric."
    )


class DatasetConfig(Base):
    """A group of metrics read from one table in one query per window."""

    name: Name = Field(description="Unique dataset name.")
    source: str = Field(description="Name of a source defined in vigil.yaml.")
    table: str | None = Field(None, description="Table (or schema.table) to read.")
    query: str | None = Field(None, description="A SELECT to read instead of a table.")
    time_column: str | None = Field(
        None, description="Event time column (required for SQL, unless `snapshot`)."
    )
    snapshot: bool = Field(
        False,
        description="The query tells the present state (`SELECT count(*) FROM users`, no time"
        " column): it runs at check time and its values are stamped with the bucket checked."
        " Snapshots have no history: backfill and replay skip them.",
    )
    granularity: GranularityName | None = Field(None, description="Bucket width.")
    delay: Duration | None = Field(None, description="Wait after a bucket ends for late data.")
    lookback: int | None = Field(None, ge=0, description="Buckets re-read each cycle.")
    fill: Fill | None = Field(None, description="Missing-bucket policy for its metrics.")
    schedule: Cron | None = Field(
        None,
        description=(
            "Cron (project time zone) of when to run; default: as each bucket completes."
            " A run analyses every bucket completed since the last."
        ),
    )
    allow_partial: bool | None = Field(None, description="Overrides defaults.allow_partial.")
    rollups: list[GranularityName] | None = Field(
        None, description="Overrides defaults.rollups (coarser buckets also stored)."
    )
    batch_cooldown: Duration | None = Field(None, description="Overrides defaults.batch_cooldown.")
    filters: list[str] = Field(
        default_factory=list, description="SQL predicates ANDed into the WHERE clause."
    )
    slices: Annotated[list[Slice], AfterValidator(_distinct_slices)] = Field(
        default_factory=list,
        description="Slices computed besides the total: `os`, `[os, country]`, {os: [iOS]}.",
    )
    include_total: bool = Field(True, description="Also compute the unsliced total.")
    owners: list[str] | None = Field(None, description="Handles to @mention.")
    segment_owners: list[SegmentOwners] = Field(
        default_factory=list, description="Extra owners per slice value."
    )
    links: dict[str, str] | None = Field(None, description="URL templates.")
    metrics: list[MetricConfig] = Field(default_factory=list, description="The metrics.")
    profile: list[ProfileColumn] = Field(
        default_factory=list,
        description="Columns to profile per bucket (metrics named `<column>.<stat>`).",
    )
    records: str | None = Field(
        None,
        description="For an HTTP source: the JMESPath of the list of records in the answer"
        " (default: the answer itself). Each record's `time_column` field is its time (none:"
        " the present), its slice fields its segment, and each metric's formula the JMESPath"
        " of its value.",
    )
    ingest_fn: str | None = Field(
        None,
        description="For a Python source: the code of a function `ingest` (Anomstack's"
        ' ingest_fn), inline or as `{% include "./file.py" %}` (relative to this file, or to'
        " the project). It may take (start, end) or tell the present (then its values are"
        " stamped with the bucket checked).",
    )
    ingest_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for the ingest function (`{top_n: 10}`; ${ENV} allowed).",
    )
    dataset_stats: list[DatasetStat] = Field(
        default_factory=list,
        description="Dataset-level metrics: missing_datapoint (1 when a bucket has no rows),"
        " seconds_since_last_upload (age of the newest row at the bucket's end).",
    )

    @field_validator("table")
    @classmethod
    def _valid_table(cls, value: str | None) -> str | None:
        if value is not None and not QUALIFIED_NAME.match(value):
            raise ValueError(f"'{value}' is not a table name; expected name or schema.name")
        return value

    @field_validator("time_column")
    @classmethod
    def _valid_time_column(cls, value: str | None) -> str | None:
        if value is not None and not QUALIFIED_NAME.match(value):
            raise ValueError(f"'{value}' is not a column name")
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> DatasetConfig:
        if self.table and self.query:
            raise ValueError("give either table or query, not both")
        if self.snapshot and self.time_column:
            raise ValueError(
                "a snapshot has no time column (its query tells the present); give either"
                " snapshot: true or time_column"
            )
        if self.snapshot and self.dataset_stats:
            raise ValueError("dataset_stats need event times; a snapshot has none")
        return self
