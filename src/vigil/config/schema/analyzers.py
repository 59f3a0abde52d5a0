"""Analyzers: baselines, targets and one model per analyzer type."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from vigil.config.schema.types import Base, Cron, Duration, GranularityName, Name
from vigil.model import Direction


class TimeRange(Base):
    """A fixed span of time, ISO 8601 (naive = project time zone)."""

    start: datetime = Field(description="Start (inclusive).")
    end: datetime = Field(description="End (exclusive).")


# --- baselines ----------------------------------------------------------------------------


class TrailingWindowBaseline(Base):
    """The `size` buckets before the target (skipping `offset` buckets right before it)."""

    type: Literal["trailing_window"] = Field(description="Baseline type.")
    size: int = Field(ge=1, description="Buckets in the window.")
    offset: int = Field(
        0, ge=0, description="Buckets left out between the window and the target (0: adjacent)."
    )
    exclusion_ranges: list[TimeRange] = Field(
        default_factory=list, description="Buckets starting in these ranges are left out."
    )
    exclusion_cron: list[Cron] = Field(
        default_factory=list,
        description="Buckets whose start matches a cron (project zone) are left out (weekends).",
    )


class TimeRangeBaseline(Base):
    """A fixed span of history, e.g. a known-good launch week."""

    type: Literal["time_range"] = Field(description="Baseline type.")
    start: datetime = Field(description="Start (inclusive), ISO 8601; naive = project zone.")
    end: datetime = Field(description="End (exclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRangeBaseline:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ReferenceBaseline(Base):
    """A named snapshot saved with `vigil reference create` (values and distributions)."""

    type: Literal["reference"] = Field(description="Baseline type.")
    name: Name = Field(description="Name of the stored reference.")


class LaggedBaseline(Base):
    """The same bucket N periods ago, one baseline value per lag (seasonal same-time)."""

    type: Literal["lagged"] = Field(description="Baseline type.")
    lags: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=1), timedelta(days=7)],
        min_length=1,
        description="How long ago each baseline bucket is.",
    )


BaselineConfig = Annotated[
    TrailingWindowBaseline | TimeRangeBaseline | ReferenceBaseline | LaggedBaseline,
    Field(discriminator="type"),
]


def _trailing(size: int) -> Any:
    return Field(
        default_factory=lambda: TrailingWindowBaseline(type="trailing_window", size=size),
        description=f"Baseline (default: trailing_window of {size} buckets).",
    )


# --- targets ------------------------------------------------------------------------------

SegmentSelector = dict[str, str]


class TargetMatrix(Base):
    """Which columns or dataset metrics, and which segments, an analyzer checks."""

    type: Literal["column", "dataset"] = Field(
        "dataset",
        description="`column`: profiled columns (with the analyzer's `metric` stat);"
        " `dataset`: dataset-level metrics (formulas, missing_datapoint, …).",
    )
    include: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Column or metric names, globs (`*`), or groups: group:continuous,"
        " group:discrete.",
    )
    exclude: list[str] = Field(default_factory=list, description="Names, globs or groups to skip.")
    segments: list[SegmentSelector] | None = Field(
        None,
        description="Segments: {} = overall, {os: iOS} exact, {os: '*'} every value as its own"
        " series (default: the analyzer's `segments`).",
    )
    exclude_segments: list[SegmentSelector] = Field(
        default_factory=list, description="Segments to skip (same forms)."
    )


class AnalyzerBase(Base):
    """Fields every analyzer has: its id and which series it checks."""

    id: Name = Field(description="Unique analyzer id, referenced by monitors.")
    metrics: list[str] = Field(
        default_factory=lambda: ["*"], description="Metric names or globs (`likes*`) to check."
    )
    segments: Literal["all", "total", "slices"] | list[SegmentSelector] = Field(
        "all",
        description="`all`, `total`, `slices`, or a list of selectors ({os: iOS}, {os: '*'}).",
    )
    target_matrix: TargetMatrix | None = Field(
        None, description="WhyLabs-style target (replaces `metrics` when given)."
    )
    metric: str | None = Field(
        None,
        description="With a column target: the profile stat checked on each column (mean,"
        " histogram, frequent_items, …).",
    )
    granularity: GranularityName | None = Field(
        None,
        description=(
            "Analyse coarser buckets than the dataset's (e.g. 1h over 15m data), rolled up with"
            " each metric's `rollup`; default: the dataset's granularity."
        ),
    )
    exclusion_ranges: list[TimeRange] = Field(
        default_factory=list,
        description="Target buckets starting in these ranges are not analysed (holidays).",
    )
    exclusion_cron: list[Cron] = Field(
        default_factory=list,
        description="Target buckets whose start matches a cron (project zone) are not analysed.",
    )

    @model_validator(mode="after")
    def _column_target_has_metric(self) -> AnalyzerBase:
        matrix = self.target_matrix
        if matrix is not None and matrix.type == "column" and self.metric is None:
            raise ValueError(
                "a column target_matrix needs `metric`: the profile stat to check (e.g. mean)"
            )
        return self


class SameTimeComparisonConfig(AnalyzerBase):
    """Now vs the same buckets k days earlier: mean of the last N buckets against each lag."""

    type: Literal["same_time_comparison"] = Field(description="Analysis type.")
    buckets: int = Field(3, ge=1, description="Average the last N buckets (smooths noise).")
    lags: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=1), timedelta(days=7)],
        description="Compare with the same buckets this long ago (each lag).",
        min_length=1,
    )
    threshold: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="Symmetric relative deviation (x−b)/max(|x|,|b|) needed against every lag.",
    )
    direction: Direction = Field(Direction.BOTH, description="up, down or both.")
    min_value: float = Field(
        0.0,
        ge=0,
        description="Ignore the series while both now and every baseline are below this.",
    )
    min_significance: float | None = Field(
        0.001,
        gt=0,
        lt=0.5,
        description="For counts (whole, non-negative values) and ratios of two counts"
        " (ratio_of): a change must also be this unlikely under the series' own noise (a"
        " one-sided p-value of an overdispersed Poisson test; see docs/analyzers.md). null:"
        " size alone decides.",
    )
    level_window: Duration | None = Field(
        None,
        description="Scale each lag's baseline by how the day runs: the ratio of the values"
        " in this window before the compared buckets to the same window at the lag (e.g. 4h),"
        " so that a uniformly quieter day (a holiday, a slow Sunday) is not an anomaly while a"
        " sudden change within the day is. null: no scaling.",
    )


class FixedConfig(AnalyzerBase):
    """Static bounds: anomaly when the value is above `upper` or below `lower`."""

    type: Literal["fixed"] = Field(description="Analysis type.")
    upper: float | None = Field(None, description="Upper bound (inclusive is fine).")
    lower: float | None = Field(None, description="Lower bound.")
    n_consecutive: int = Field(
        1, ge=1, description="Anomaly only when this many buckets in a row (ending now) breach."
    )

    @model_validator(mode="after")
    def _has_bound(self) -> FixedConfig:
        if self.upper is None and self.lower is None:
            raise ValueError("a fixed analyzer needs upper, lower or both")
        if self.upper is not None and self.lower is not None and self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) is above upper ({self.upper})")
        return self


class AutoConfig(AnalyzerBase):
    """A detector that needs no tuning: daily and weekly seasons, level shifts, trends,
    spikes and dips, from a few days of history; a score in [0, 1]."""

    type: Literal["auto"] = Field(description="Analysis type.")
    threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Anomaly when the score is at least this (0–1). The score is −log10 of how"
        " rare the surprise is in the series' own history, over 4.4: 0.5 is rarer than 1 in"
        " about 160, 0.6 than 1 in 440, 0.7 than 1 in 1,200. Past 500 buckets of history the"
        " bar rises slowly (twice as rare at 5,000, three times at 20,000).",
    )
    window: int | None = Field(
        None,
        ge=10,
        description="Buckets of history the detector learns from before each target"
        " (default: 14 days' worth, at least 60).",
    )


class StaticLimits(Base):
    """Static thresholds that bound a computed band."""

    max_upper_threshold: float | None = Field(
        None, description="Static ceiling for the computed upper bound (see limit_type)."
    )
    min_lower_threshold: float | None = Field(
        None, description="Static floor for the computed lower bound (see limit_type)."
    )
    limit_type: Literal["or", "and"] = Field(
        "or",
        description="`or`: the static thresholds cap the computed bounds; `and`: an anomaly"
        " must be beyond both the computed and the static bound.",
    )


class StddevConfig(AnalyzerBase, StaticLimits):
    """Band: baseline mean ± factor · sample stddev."""

    type: Literal["stddev"] = Field(description="Analysis type.")
    factor: float = Field(3.0, gt=0, description="Width of the band in standard deviations.")
    window: int | None = Field(
        None, ge=2, description="Shorthand for baseline: {type: trailing_window, size: N}."
    )
    baseline: BaselineConfig = _trailing(96)
    min_batch_size: int = Field(
        8, ge=2, description="Fewer non-missing baseline values gives insufficient_baseline."
    )
    direction: Direction = Field(Direction.BOTH, description="up, down or both.")
    min_significance: float | None = Field(
        0.001,
        gt=0,
        lt=0.5,
        description="For ratios of two counts (ratio_of, e.g. CTR = likes / views): a value"
        " outside the band must also be this unlikely given the counts behind it (a"
        " one-sided p-value of an overdispersed Poisson test of the numerator against the"
        " baseline's rate; see docs/analyzers.md). null: the band alone decides.",
    )

    @model_validator(mode="before")
    @classmethod
    def _window_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("window") is not None:
            if data.get("baseline") is not None:
                raise ValueError("give either window or baseline, not both")
            data = {**data, "baseline": {"type": "trailing_window", "size": data["window"]}}
        return data


class DiffConfig(AnalyzerBase):
    """Difference from the baseline aggregate, in percent (pct) or absolute units (abs)."""

    type: Literal["diff"] = Field(description="Analysis type.")
    mode: Literal["pct", "abs"] = Field("pct", description="pct: |B−T|/|B|·100; abs: |B−T|.")
    threshold: float = Field(gt=0, description="Anomaly when the difference is above this.")
    direction: Direction = Field(
        Direction.BOTH, description="up (target above baseline), down, or both."
    )
    aggregate: Literal["mean", "sum", "median", "min", "max"] = Field(
        "mean",
        description="How the baseline values become B: the mean per bucket (default) or the sum"
        " over the window (a merged count).",
    )
    baseline: BaselineConfig = _trailing(7)
    min_batch_size: int = Field(1, ge=1, description="Fewer baseline values: insufficient.")
    min_significance: float | None = Field(
        None,
        gt=0,
        lt=0.5,
        description="With `aggregate: mean`, for counts (whole, non-negative values) and ratios"
        " of two counts (ratio_of): a difference must also be this unlikely under the series'"
        " own noise (the overdispersed Poisson test of docs/analyzers.md, with φ from the"
        " baseline), e.g. 0.001. Off by default: `diff` keeps WhyLabs' meaning, the threshold"
        " alone decides.",
    )


class SeasonalConfig(AnalyzerBase, StaticLimits):
    """SARIMA one-step forecast with a (1 − alpha) interval from a trailing window."""

    type: Literal["seasonal"] = Field(description="Analysis type.")
    algorithm: Literal["arima"] = Field("arima", description="Forecasting algorithm.")
    order: tuple[int, int, int] = Field(
        (1, 0, 0), description="Non-seasonal (p, d, q); q must be 0 (autoregressive terms only)."
    )
    seasonal_order: tuple[int, int, int, int] = Field(
        (2, 1, 0, 7),
        description="Seasonal (P, D, Q, s); Q must be 0. s = 7 is weekly for daily data,"
        " 24 daily for hourly data.",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="The band is the (1 − alpha) interval.")
    stddev_factor: float | None = Field(
        None,
        gt=0,
        description="Caps the band's half-width at this many stddevs of the last"
        " `stddev_max_batch_size` baseline values.",
    )
    stddev_max_batch_size: int = Field(30, ge=2, description="Values used for stddev_factor.")
    stddev_time_ranges: list[TimeRange] = Field(
        default_factory=list,
        description="Known event periods: their values are left out of the baseline fit.",
    )
    baseline: TrailingWindowBaseline = Field(
        default_factory=lambda: TrailingWindowBaseline(type="trailing_window", size=90),
        description="Trailing window to fit on (default 90 buckets).",
    )
    min_batch_size: int = Field(
        30,
        ge=3,
        description="Fewer observed values: a fallback band mean ± z·stddev instead of SARIMA.",
    )
    direction: Direction = Field(Direction.BOTH, description="up, down or both.")

    @model_validator(mode="after")
    def _autoregressive(self) -> SeasonalConfig:
        if self.order[2] or self.seasonal_order[2]:
            raise ValueError(
                "moving-average orders are not supported; expected q = 0 and Q = 0"
                " (use more autoregressive terms instead)"
            )
        if self.seasonal_order[3] < 2 and (self.seasonal_order[0] or self.seasonal_order[1]):
            raise ValueError("seasonal period s must be at least 2")
        if min(*self.order, *self.seasonal_order) < 0:
            raise ValueError("orders must not be negative")
        if self.baseline.offset:
            raise ValueError("a seasonal baseline forecasts the next bucket; expected offset 0")
        return self


DRIFT_THRESHOLDS = {"hellinger": 0.7, "jensenshannon": 0.1, "kl_divergence": 0.1, "psi": 0.2}


class DriftConfig(AnalyzerBase):
    """Distance between the target bucket's distribution and the baseline's."""

    type: Literal["drift"] = Field(description="Analysis type.")
    algorithm: Literal["hellinger", "jensenshannon", "kl_divergence", "psi"] = Field(
        "hellinger", description="Distance: hellinger, jensenshannon, kl_divergence or psi."
    )
    threshold: float | None = Field(
        None,
        gt=0,
        description="Anomaly above this distance (default: hellinger 0.7, jensenshannon 0.1,"
        " kl_divergence 0.1, psi 0.2).",
    )
    bins: int = Field(20, ge=2, description="Histogram bins for numeric columns.")
    baseline: BaselineConfig = _trailing(7)
    min_batch_size: int = Field(1, ge=1, description="Fewer baseline buckets: insufficient.")

    @property
    def effective_threshold(self) -> float:
        """The threshold, or the algorithm's default."""
        return self.threshold if self.threshold is not None else DRIFT_THRESHOLDS[self.algorithm]


ExpectedValue = float | int | str


class ListComparisonConfig(AnalyzerBase):
    """The value must (in) or must not (not_in) be one of the expected values."""

    type: Literal["list_comparison"] = Field(description="Analysis type.")
    operator: Literal["in", "not_in"] = Field(
        description="in: anomaly when the value is not listed; not_in: anomaly when it is."
    )
    expected: list[ExpectedValue] | None = Field(
        None, description="Expected values; absent: the baseline's values."
    )
    baseline: BaselineConfig = _trailing(7)


class FrequentStringComparisonConfig(AnalyzerBase):
    """Compare the frequent items of a discrete column with the baseline's."""

    type: Literal["frequent_string_comparison"] = Field(description="Analysis type.")
    operator: Literal["eq", "target_includes_all_baseline", "baseline_includes_all_target"] = Field(
        description="What must hold between the target's and the baseline's items."
    )
    sample_size: int = Field(5, ge=1, description="Differing items quoted in the result.")
    baseline: BaselineConfig = _trailing(7)
    min_batch_size: int = Field(1, ge=1, description="Fewer baseline buckets: insufficient.")


class MonotonicConfig(AnalyzerBase):
    """Steady growth or decline: counts the steps in `direction` over the recent buckets."""

    type: Literal["monotonic"] = Field(description="Analysis type.")
    direction: Annotated[
        Literal["increasing", "decreasing"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = Field(description="increasing or decreasing (INCREASING / DECREASING accepted).")
    num_buckets: int = Field(
        ge=1, description="Anomaly when at least this many steps go in `direction`."
    )
    target_size: int = Field(1, ge=1, description="Buckets ending at the target that are checked.")
    window: int | None = Field(
        None,
        ge=1,
        description="Buckets before the target buckets (default: num_buckets − target_size + 1,"
        " so that default settings mean num_buckets steps in a row).",
    )


class ChangeConfig(AnalyzerBase):
    """A level shift: the recent buckets' median moved from the level before, reported once."""

    type: Literal["change"] = Field(description="Analysis type.")
    recent: int = Field(
        3,
        ge=1,
        description="Buckets ending at the target whose median is the new level (Anomstack's"
        " change_detect_last_n; a median of 3 ignores a one-bucket spike).",
    )
    window: int = Field(
        96, ge=4, description="Buckets before those whose median and MAD are the old level."
    )
    threshold: float = Field(
        3.5,
        gt=0,
        description="Robust z: |new − old median| / (1.4826 · MAD) needed (Anomstack's"
        " change_threshold).",
    )
    snooze: int = Field(
        3,
        ge=0,
        description="A change is reported once: not again while it was also seen in any of the"
        " previous `snooze` buckets (Anomstack's change_snooze_n), so one shift alerts once.",
    )
    direction: Direction = Field(Direction.BOTH, description="up, down or both.")
    min_change: float = Field(
        0.0,
        ge=0,
        description="Also require |new − old| / |old| ≥ this (0.1 = 10%): ignores tiny shifts"
        " of a very steady series.",
    )


class ComparisonConfig(AnalyzerBase):
    """The value must satisfy `value <operator> expected`, else an anomaly."""

    type: Literal["comparison"] = Field(description="Analysis type.")
    operator: Literal["eq", "gt", "lt", "ge", "le"] = Field(
        description="The healthy relation of the value to `expected`."
    )
    expected: ExpectedValue | None = Field(
        None, description="Expected value; absent: the baseline's mean."
    )
    baseline: BaselineConfig = _trailing(1)


class CompositeConfig(AnalyzerBase):
    """Combine other analyzers' results for the same series and bucket."""

    type: Literal["conjunction", "disjunction"] = Field(
        description="conjunction: anomaly when all are; disjunction: when any is."
    )
    analyzers: list[Name] = Field(min_length=2, description="Ids of the combined analyzers.")


AnalyzerConfig = Annotated[
    SameTimeComparisonConfig
    | AutoConfig
    | FixedConfig
    | StddevConfig
    | DiffConfig
    | SeasonalConfig
    | DriftConfig
    | ListComparisonConfig
    | FrequentStringComparisonConfig
    | MonotonicConfig
    | ChangeConfig
    | ComparisonConfig
    | CompositeConfig,
    Field(discriminator="type"),
]
