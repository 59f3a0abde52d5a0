"""The resolved project: datasets and metrics with inherited settings filled in."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

from vigil.calendar import Calendar
from vigil.config.schema import (
    AnalyzerConfig,
    DatasetConfig,
    MonitorConfig,
    ProjectFile,
    QuietHours,
    ReportConfig,
    SegmentOwners,
    SliceConfig,
)
from vigil.model import Segment
from vigil.numbers import format_value
from vigil.timeutil import Granularity

# Source types that aggregate in their own engine, and so can recompute a metric at a coarser
# granularity (distinct counts, ratios, medians) instead of rolling up stored values.
RECOMPUTING_SOURCES = frozenset(
    {"duckdb", "postgres", "mysql", "mariadb", "clickhouse", "sqlite", "files"}
)


@dataclass(frozen=True)
class Metric:
    """A metric with every inherited setting resolved."""

    name: str
    title: str
    dataset: str
    formula: str | None
    owners: tuple[str, ...]
    links: dict[str, str]
    fill: str
    granularity: Granularity
    analyzers: tuple[AnalyzerConfig, ...]
    where: str = ""
    rollup: str | None = None
    column: str | None = None
    stat: str | None = None
    kind: str = "formula"
    format: str = "number"
    # (numerator, denominator) metrics of the same dataset when this one is their ratio.
    ratio_of: tuple[str, str] | None = None

    def show(self, value: float | None) -> str:
        """A value as people read it: `6.08%` for a percent metric, else `1,234`."""
        return format_value(value, self.format)

    @property
    def is_profile(self) -> bool:
        """Whether the metric profiles a column (`<column>.<stat>`)."""
        return self.column is not None


@dataclass(frozen=True)
class Dataset:
    """A dataset with resolved granularity, timing and metrics."""

    config: DatasetConfig
    granularity: Granularity
    delay: timedelta
    lookback: int
    metrics: tuple[Metric, ...]
    segment_owners: tuple[SegmentOwners, ...]
    where: str = ""
    formula_where: dict[str, str] = field(default_factory=dict)
    allow_partial: bool = False
    batch_cooldown: timedelta | None = None
    grace_period: timedelta = timedelta(days=30)
    # Whether the source can aggregate metrics without a rollup at coarser granularities.
    recompute_at_source: bool = False
    holidays: Calendar | None = None
    # A Python source's `ingest_fn`, with its `{% include %}`s done; and the file it is in.
    ingest_code: str = ""
    ingest_file: str = ""
    # Coarser buckets stored for every metric (`rollups`), analysed or not.
    stored_rollups: tuple[Granularity, ...] = ()

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.config.name

    def granularity_of(self, analyzer: AnalyzerConfig) -> Granularity:
        """The buckets an analyzer works on: its own granularity, or the dataset's."""
        if analyzer.granularity is None:
            return self.granularity
        return Granularity.parse(analyzer.granularity, self.granularity.tz)

    @property
    def rollups(self) -> list[Granularity]:
        """Coarser granularities that some analyzer of this dataset needs, and those the
        configuration asks to store (`rollups`)."""
        found = {self.granularity_of(a) for m in self.metrics for a in m.analyzers}
        found |= set(self.stored_rollups)
        return sorted(g for g in found if g.seconds > self.granularity.seconds)

    @property
    def slices(self) -> list[SliceConfig]:
        """Its slices."""
        return self.config.slices

    def owners_for(self, metric: Metric, segment: Segment) -> list[str]:
        """The metric's owners plus the owners of any slice the segment matches, deduplicated."""
        owners = list(metric.owners)
        for rule in self.segment_owners:
            if not segment.is_total and segment.matches(rule.segment):
                owners.extend(rule.owners)
        return list(dict.fromkeys(owners))


@dataclass(frozen=True)
class Project:
    """Everything a run needs from the configuration."""

    root: Path
    settings: ProjectFile
    datasets: tuple[Dataset, ...]
    analyzers: dict[str, AnalyzerConfig]
    monitors: dict[str, MonitorConfig]
    secrets: frozenset[str] = frozenset()
    reports: dict[str, ReportConfig] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    @property
    def timezone(self) -> str:
        """The project's IANA time zone."""
        return self.settings.timezone

    @cached_property
    def _by_metric(self) -> dict[str, tuple[Metric, Dataset]]:
        """Every metric by name, with its dataset (the first one, as names are unique)."""
        found: dict[str, tuple[Metric, Dataset]] = {}
        for dataset in self.datasets:
            for metric in dataset.metrics:
                found.setdefault(metric.name, (metric, dataset))
        return found

    def metric(self, name: str) -> Metric:
        """Look a metric up by name (KeyError if unknown)."""
        return self._by_metric[name][0]

    def dataset_of(self, metric_name: str) -> Dataset:
        """The dataset that defines `metric_name`."""
        return self._by_metric[metric_name][1]

    def monitors_for(self, analyzer_id: str) -> list[MonitorConfig]:
        """Monitors that route the given analyzer's anomalies."""
        return [
            m for m in self.monitors.values() if "*" in m.analyzers or analyzer_id in m.analyzers
        ]

    def cooldown_for(self, monitor: MonitorConfig) -> timedelta:
        """The monitor's cooldown, or the project default."""
        return monitor.cooldown if monitor.cooldown is not None else self.settings.defaults.cooldown

    def timestamp_offset_for(self, monitor: MonitorConfig) -> timedelta | None:
        """How old a bucket may be and still be notified (None: any age)."""
        if monitor.dataset_timestamp_offset is not None:
            return monitor.dataset_timestamp_offset
        return self.settings.defaults.dataset_timestamp_offset

    def quiet_hours_for(self, monitor: MonitorConfig) -> QuietHours | None:
        """The monitor's quiet hours, the project default, or None when switched off."""
        if monitor.quiet_hours == "off":
            return None
        return monitor.quiet_hours or self.settings.defaults.quiet_hours

    def resolve_path(self, relative: str) -> Path:
        """A path from the config, relative to the project directory."""
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.root / path


def matches_any(name: str, patterns: list[str]) -> bool:
    """Whether a metric name matches one of the names or globs."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def targets(analyzer: AnalyzerConfig, metric: Metric) -> bool:
    """Whether the analyzer checks the metric: by `metrics` globs or by its target_matrix."""
    return targets_name(analyzer, metric.name, metric.column, metric.stat, metric.kind)


def targets_name(
    analyzer: AnalyzerConfig,
    name: str,
    column: str | None = None,
    stat: str | None = None,
    kind: str = "formula",
) -> bool:
    """`targets` for a metric known by its name (and, for a profile metric, column and stat)."""
    needs = PAYLOAD_NEEDS.get(analyzer.type)
    if needs is not None and stat not in needs:
        return False
    matrix = analyzer.target_matrix
    if matrix is None:
        # `*` means the formula metrics; profile and dataset stats (`price.mean`) are named
        # with a dot, and only patterns with a dot select them.
        patterns = [p for p in analyzer.metrics if "." in p] if "." in name else analyzer.metrics
        return matches_any(name, patterns)
    if matrix.type == "column":
        if column is None or stat != analyzer.metric:
            return False
        name = column
    elif column is not None:
        return False
    return _in_group(name, kind, matrix.include) and not _in_group(name, kind, matrix.exclude)


# Analysis types that read distributions, and the profile stats that carry them.
PAYLOAD_NEEDS = {
    "drift": frozenset({"histogram", "frequent_items"}),
    "frequent_string_comparison": frozenset({"frequent_items"}),
}
TARGET_GROUPS = ("group:continuous", "group:discrete")


def _in_group(name: str, kind: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        if pattern.startswith("group:"):
            if pattern == f"group:{kind}":
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def analyzer_selects(analyzer: AnalyzerConfig, segment: Segment) -> bool:
    """Whether the analyzer checks this segment (`segments`, or the target_matrix's)."""
    matrix = analyzer.target_matrix
    if matrix is None or matrix.segments is None:
        chosen = segment_selected(analyzer.segments, segment)
    else:
        chosen = any(_exactly(s, segment) for s in matrix.segments)
    if matrix is not None and any(_exactly(s, segment) for s in matrix.exclude_segments):
        return False
    return chosen


def selects_all(analyzer: AnalyzerConfig) -> bool:
    """Whether the analyzer checks every segment, so no per-segment test is needed."""
    return analyzer.target_matrix is None and analyzer.segments == "all"


def _exactly(selector: dict[str, str], segment: Segment) -> bool:
    """The segment has exactly the selector's keys, with its values (`*` = any value)."""
    return set(selector) == {k for k, _ in segment.tags} and segment.matches(selector)


# Configurations are frozen, so one object's hash never changes: computed once per object.
_HASHES: dict[int, tuple[AnalyzerConfig, str]] = {}


def config_hash(config: AnalyzerConfig) -> str:
    """A short stable hash of an effective analyzer configuration."""
    known = _HASHES.get(id(config))
    if known is not None and known[0] is config:
        return known[1]
    payload: dict[str, Any] = config.model_dump(
        mode="json", exclude={"metrics", "segments", "target_matrix"}
    )
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    if len(_HASHES) > 10_000:  # configurations reloaded many times: start over
        _HASHES.clear()
    _HASHES[id(config)] = (config, digest)
    return digest


def segment_selected(selection: str | list[dict[str, str]], segment: Segment) -> bool:
    """Whether a segment is in `all`, `total`, `slices` or a list of selectors ({} = total)."""
    if isinstance(selection, str):
        return {"all": True, "total": segment.is_total}.get(selection, not segment.is_total)
    return any(segment.is_total if not s else segment.matches(s) for s in selection)
