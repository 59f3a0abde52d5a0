"""Run every analyzer of a dataset's metrics on one bucket, skipping what is already analysed."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import numpy as np
from croniter import croniter

from vigil.analysis import baseline as baselines
from vigil.analysis import build_analyzer
from vigil.analysis.base import STATUS_CODES, Evaluation, reads
from vigil.analysis.matrix import Reference, SeriesMatrix
from vigil.calendar import Calendar
from vigil.config.profiles import PAYLOAD_STATS
from vigil.config.project import (
    Dataset,
    Metric,
    analyzer_selects,
    config_hash,
    selects_all,
)
from vigil.config.schema import AnalyzerConfig, ReferenceBaseline
from vigil.model import AnalysisResult, Bucket, SeriesKey
from vigil.numbers import written_as
from vigil.store.base import Store
from vigil.timeutil import Granularity, get_zone


def analyze_dataset(
    dataset: Dataset,
    store: Store,
    bucket_start: datetime,
    *,
    reanalyze: bool = False,
    partial: bool = False,
    metrics: set[str] | None = None,
    granularity: Granularity | None = None,
) -> list[AnalysisResult]:
    """Results of every (analyzer, series) of the dataset at the bucket that needs one.

    A series already analysed by the same analyzer configuration is skipped (exactly once);
    a changed configuration, a partial earlier result, or `reanalyze` redoes it.
    """
    granularity = granularity or dataset.granularity
    calendar = dataset.holidays
    if calendar is not None and calendar.mute and calendar.covers(bucket_start, granularity.tz):
        return []  # a muted holiday is not checked
    chosen = [m for m in dataset.metrics if metrics is None or m.name in metrics]
    jobs = [
        (m, a)
        for m in chosen
        for a in m.analyzers
        if dataset.granularity_of(a) == granularity
        and not is_excluded(a, bucket_start, granularity.tz)
    ]
    if not jobs:
        return []
    history = max(build_analyzer(a, m.analyzers).history(granularity) for m, a in jobs)
    start = granularity.shift(bucket_start, -history)
    fixed = [e for _, a in jobs if (e := _earliest(a, granularity)) is not None]
    if fixed:
        start = min(start, granularity.floor(min(fixed)))
    end = granularity.next(bucket_start)
    windows = None if fixed else _windows(jobs, granularity, bucket_start)
    names_read = sorted({m.name for m, _ in jobs} | _parts_needed(jobs))
    cells = store.load_cells(names_read, granularity, start, end, windows=windows)
    payload_metrics = [m.name for m in chosen if m.stat in PAYLOAD_STATS]
    payloads = (
        store.load_payloads(payload_metrics, granularity, start, end) if payload_metrics else None
    )
    references = _references(store, jobs, granularity)
    bucket = Bucket(bucket_start, granularity)
    names = [m.name for m in chosen]
    done = {} if reanalyze else store.analyzed_keys(names, granularity, bucket_start)
    results: list[AnalysisResult] = []
    matrices: dict[str, SeriesMatrix] = {}

    def matrix_of(name: str) -> SeriesMatrix:
        if name not in matrices:
            matrices[name] = SeriesMatrix.from_cells(cells[name], name, granularity, start, end)
        return matrices[name]

    ready: dict[str, SeriesMatrix] = {}
    for metric, config in jobs:
        if metric.name not in ready:
            built = matrix_of(metric.name)
            if payloads is not None and metric.name in payload_metrics:
                built = built.with_payloads(payloads[payloads["metric"] == metric.name])
            built = replace(built, references=references.get(metric.name, {}))
            if metric.ratio_of is not None and metric.ratio_of[0] in cells:
                numerator, denominator = (matrix_of(n) for n in metric.ratio_of)
                built = replace(built, parts=(built.aligned(numerator), built.aligned(denominator)))
            if calendar is not None:
                built = without_holidays(built, calendar, bucket_start)
            ready[metric.name] = built
        matrix = ready[metric.name]
        if not matrix.segments:
            continue
        digest = config_hash(config)
        skip = {
            seg
            for (a, m, seg), h in done.items()
            if a == config.id and m == metric.name and h == digest
        }
        results.extend(_run_one(config, metric, matrix, bucket, skip, partial))
    return results


def without_holidays(matrix: SeriesMatrix, calendar: Calendar, target: datetime) -> SeriesMatrix:
    """The matrix with the buckets of holidays other than the target's own day missing, so no
    baseline compares a normal day with a holiday (or a holiday with another one)."""
    if not matrix.times:
        return matrix
    tz = matrix.granularity.tz
    mask = calendar.mask(matrix.times, tz)
    if not mask.any():
        return matrix
    zone = get_zone(tz)
    today = target.astimezone(zone).date()
    mask &= np.array([t.astimezone(zone).date() != today for t in matrix.times], dtype=bool)
    if not mask.any():
        return matrix
    values = matrix.values.copy()
    values[:, mask] = np.nan
    parts = None
    if matrix.parts is not None:
        parts = (matrix.parts[0].copy(), matrix.parts[1].copy())
        parts[0][:, mask] = np.nan
        parts[1][:, mask] = np.nan
    return replace(matrix, values=values, parts=parts)


def _parts_needed(jobs: list[tuple[Metric, AnalyzerConfig]]) -> set[str]:
    """The numerators and denominators of the ratio metrics whose analyzers test significance."""
    return {
        name
        for metric, config in jobs
        if metric.ratio_of is not None and getattr(config, "min_significance", None) is not None
        for name in metric.ratio_of
    }


def _windows(
    jobs: list[tuple[Metric, AnalyzerConfig]], granularity: Granularity, bucket_start: datetime
) -> list[tuple[datetime, datetime]] | None:
    """The bucket ranges the jobs' analyzers read, or None when one of them reads its whole
    history (then the store loads everything from the start)."""
    wanted: set[int] = set()
    for metric, config in jobs:
        found = reads(build_analyzer(config, metric.analyzers), granularity)
        if found is None:
            return None
        wanted |= found
    out: list[tuple[datetime, datetime]] = []
    for offset in sorted(wanted, reverse=True):
        begin = granularity.shift(bucket_start, -offset)
        if out and out[-1][1] == begin:
            out[-1] = (out[-1][0], granularity.next(begin))
        else:
            out.append((begin, granularity.next(begin)))
    return out


def _earliest(config: AnalyzerConfig, granularity: Granularity) -> datetime | None:
    found = getattr(config, "baseline", None)
    return None if found is None else baselines.earliest(found, granularity.tz)


def _references(
    store: Store, jobs: list[tuple[Metric, AnalyzerConfig]], granularity: Granularity
) -> dict[str, dict[str, dict[str, Reference]]]:
    """metric → reference name → segment key → snapshot, for the references the jobs use."""
    names = {
        b.name for _, a in jobs if isinstance(b := getattr(a, "baseline", None), ReferenceBaseline)
    }
    out: dict[str, dict[str, dict[str, Reference]]] = {}
    for name in sorted(names):
        rows = store.load_reference(name, [m.name for m, _ in jobs])
        for (metric, segment), group in rows.groupby(["metric", "segment"], sort=False):
            snapshot = Reference(
                tuple(float(v) for v in group["value"] if v == v),
                tuple(p for p in group["payload"] if isinstance(p, dict)),
            )
            out.setdefault(str(metric), {}).setdefault(name, {})[str(segment)] = snapshot
    return out


def is_excluded(config: AnalyzerConfig, bucket_start: datetime, tz: str) -> bool:
    """Whether the analyzer's exclusion ranges or crons (in zone `tz`) cover this bucket."""
    zone = get_zone(tz)
    local = bucket_start.astimezone(zone)
    for span in config.exclusion_ranges:
        start = span.start if span.start.tzinfo else span.start.replace(tzinfo=zone)
        end = span.end if span.end.tzinfo else span.end.replace(tzinfo=zone)
        if start <= bucket_start < end:
            return True
    return any(croniter.match(expr, local.replace(tzinfo=None)) for expr in config.exclusion_cron)


def _run_one(
    config: AnalyzerConfig,
    metric: Metric,
    matrix: SeriesMatrix,
    bucket: Bucket,
    done: set[str],
    partial: bool,
) -> list[AnalysisResult]:
    if selects_all(config) and not done:
        subset = matrix
    else:
        mask = np.array(
            [analyzer_selects(config, s) and s.key not in done for s in matrix.segments],
            dtype=bool,
        )
        if not mask.any():
            return []
        subset = matrix if mask.all() else matrix.select(mask)
    analyzer = build_analyzer(config, metric.analyzers)
    evaluation = analyzer.evaluate(subset, subset.index_of(bucket.start))
    return to_results(config, metric, subset, bucket, evaluation, partial)


def to_results(
    config: AnalyzerConfig,
    metric: Metric,
    matrix: SeriesMatrix,
    bucket: Bucket,
    evaluation: Evaluation,
    partial: bool = False,
) -> list[AnalysisResult]:
    """Turn the evaluation arrays into one record per series."""
    digest = config_hash(config)
    statuses = [STATUS_CODES[int(c)] for c in evaluation.status.tolist()]
    e = evaluation
    values, lowers, uppers, deviations = map(_nums, (e.value, e.lower, e.upper, e.deviation))
    names = list(evaluation.baselines)
    columns = [_nums(evaluation.baselines[k]) for k in names]
    name = metric.name
    with written_as(metric.format):  # a CTR's reason in %, like its message
        reasons = [evaluation.describe(i) for i in range(len(matrix.segments))]
    return [
        AnalysisResult(
            analyzer=config.id,
            analyzer_type=config.type,
            series=SeriesKey(name, segment),
            bucket=bucket,
            value=values[i],
            status=statuses[i],
            expected_lower=lowers[i],
            expected_upper=uppers[i],
            deviation=deviations[i],
            baselines={k: c[i] for k, c in zip(names, columns, strict=True)},
            reason=reasons[i],
            config_hash=digest,
            is_partial=partial,
        )
        for i, segment in enumerate(matrix.segments)
    ]


def _nums(values: np.ndarray) -> list[float | None]:
    """Finite numbers as floats, NaN and ±inf as None, in one pass."""
    array = np.asarray(values, dtype=float)
    out: list[float | None] = array.tolist()
    for i in np.flatnonzero(~np.isfinite(array)).tolist():
        out[i] = None
    return out
