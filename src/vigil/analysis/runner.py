"""Run every analyzer of a dataset's metrics on one bucket, skipping what is already analysed."""

from __future__ import annotations

from datetime import datetime

import numpy as np

from vigil.analysis import build_analyzer
from vigil.analysis.base import STATUS_CODES, Evaluation
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.project import Dataset, Metric, config_hash
from vigil.config.schema import AnalyzerConfig
from vigil.model import AnalysisResult, Bucket, Segment, SeriesKey
from vigil.store.base import Store


def analyze_dataset(
    dataset: Dataset, store: Store, bucket_start: datetime, *, reanalyze: bool = False
) -> list[AnalysisResult]:
    """Results of every (analyzer, series) of the dataset at the bucket not yet analysed."""
    granularity = dataset.granularity
    jobs = [(m, a) for m in dataset.metrics for a in m.analyzers]
    if not jobs:
        return []
    history = max(build_analyzer(a).history(granularity) for _, a in jobs)
    start = granularity.shift(bucket_start, -history)
    end = granularity.next(bucket_start)
    frame = store.load_values([m.name for m in dataset.metrics], granularity, start, end)
    frame = frame.sort_values("segment", kind="stable")
    bucket = Bucket(bucket_start, granularity)
    names = [m.name for m in dataset.metrics]
    done = set() if reanalyze else store.analyzed_keys(names, granularity, bucket_start)
    results: list[AnalysisResult] = []
    for metric in dataset.metrics:
        matrix = SeriesMatrix.from_frame(frame, metric.name, granularity, start, end)
        if not matrix.segments:
            continue
        for config in metric.analyzers:
            skip = {seg for a, m, seg in done if a == config.id and m == metric.name}
            results.extend(_run_one(config, metric, matrix, bucket, skip))
    return results


def _run_one(
    config: AnalyzerConfig, metric: Metric, matrix: SeriesMatrix, bucket: Bucket, done: set[str]
) -> list[AnalysisResult]:
    mask = np.array([_wanted(config, s) and s.key not in done for s in matrix.segments], dtype=bool)
    if not mask.any():
        return []
    subset = matrix.select(mask)
    evaluation = build_analyzer(config).evaluate(subset, subset.index_of(bucket.start))
    return to_results(config, metric, subset, bucket, evaluation)


def _wanted(config: AnalyzerConfig, segment: Segment) -> bool:
    wanted = config.segments
    if wanted == "all":
        return True
    if wanted == "total":
        return segment.is_total
    if wanted == "slices":
        return not segment.is_total
    return any(
        (segment.is_total if not selector else segment.matches(selector)) for selector in wanted
    )


def to_results(
    config: AnalyzerConfig,
    metric: Metric,
    matrix: SeriesMatrix,
    bucket: Bucket,
    evaluation: Evaluation,
) -> list[AnalysisResult]:
    """Turn the evaluation arrays into one record per series."""
    digest = config_hash(config)
    out = []
    for i, segment in enumerate(matrix.segments):
        status = STATUS_CODES[int(evaluation.status[i])]
        out.append(
            AnalysisResult(
                analyzer=config.id,
                analyzer_type=config.type,
                series=SeriesKey(metric.name, segment),
                bucket=bucket,
                value=_num(evaluation.value[i]),
                status=status,
                expected_lower=_num(evaluation.lower[i]),
                expected_upper=_num(evaluation.upper[i]),
                deviation=_num(evaluation.deviation[i]),
                baselines={k: _num(v[i]) for k, v in evaluation.baselines.items()},
                reason=evaluation.describe(i),
                config_hash=digest,
            )
        )
    return out


def _num(value: float) -> float | None:
    return None if value != value or value in (np.inf, -np.inf) else float(value)
