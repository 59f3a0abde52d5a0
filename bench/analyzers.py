"""Benchmark: analyzers over 10,000 series × 5 weeks of 15-minute buckets, latest bucket.

Run with `make bench` (or `python bench/analyzers.py --series 10000`). Prints one line per
analyzer with the time to evaluate the latest bucket of every series, and the peak memory of
the matrix. No thresholds are asserted here; the numbers are reported in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
from pydantic import TypeAdapter

from vigil.analysis import build_analyzer
from vigil.analysis.auto import REPLAYS
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import (
    AnalyzerConfig,
    AutoConfig,
    SameTimeComparisonConfig,
    SeasonalConfig,
    StddevConfig,
)
from vigil.model import Segment
from vigil.timeutil import Granularity


def build_matrix(series: int, weeks: int, seed: int = 1, granularity: str = "15m") -> SeriesMatrix:
    """Cyclic noisy series (one cycle per day), as a store would hand them to the analyzers."""
    g = Granularity.parse(granularity)
    per_day = max(1, 86400 // g.seconds)
    buckets = weeks * 7 * per_day
    rng = np.random.default_rng(seed)
    cycle = per_day if per_day > 1 else 7
    phase = np.sin(2 * np.pi * np.arange(buckets) / cycle)
    level = rng.uniform(100, 10_000, size=(series, 1))
    values = level * (1 + 0.5 * phase) * rng.normal(1, 0.05, size=(series, buckets))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    times = g.range(start, g.shift(start, buckets))
    segments = [Segment.of({"id": str(i)}) for i in range(series)]
    return SeriesMatrix("bench", g, segments, times, values)


def time_analyzer(name: str, config: object, matrix: SeriesMatrix, repeat: int) -> None:
    analyzer = build_analyzer(config)  # type: ignore[arg-type]
    target = len(matrix.times) - 1
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        evaluation = analyzer.evaluate(matrix, target)
        best = min(best, time.perf_counter() - began)
    report(name, matrix, best, f"  ({int((evaluation.status == 1).sum())} flagged)")


def report(name: str, matrix: SeriesMatrix, seconds: float, note: str = "") -> None:
    per_series = seconds / len(matrix.segments) * 1e6
    print(
        f"{name:<34} {len(matrix.segments):>7} series  {seconds * 1000:8.1f} ms"
        f"  {per_series:7.1f} µs/series{note}"
    )


def time_resumed(name: str, config: object, matrix: SeriesMatrix) -> None:
    """The cost of evaluating the last bucket after the one before it was evaluated."""
    analyzer = build_analyzer(config)  # type: ignore[arg-type]
    target = len(matrix.times) - 1
    REPLAYS.clear()
    analyzer.evaluate(matrix, target - 1)
    began = time.perf_counter()
    analyzer.evaluate(matrix, target)
    report(name, matrix, time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--weeks", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    began = time.perf_counter()
    matrix = build_matrix(args.series, args.weeks)
    print(
        f"matrix {matrix.values.shape[0]} × {matrix.values.shape[1]} buckets,"
        f" {matrix.values.nbytes / 2**20:.0f} MiB, built in {time.perf_counter() - began:.1f} s"
    )
    same_time = SameTimeComparisonConfig(id="st", type="same_time_comparison")
    stddev = StddevConfig(id="sd", type="stddev", window=96)
    time_analyzer("same_time_comparison", same_time, matrix, args.repeat)
    time_analyzer("stddev (window 96)", stddev, matrix, args.repeat)
    stddev_week = StddevConfig(id="sd", type="stddev", window=7 * 96)
    time_analyzer("stddev (window 1w)", stddev_week, matrix, args.repeat)
    diff = TypeAdapter(AnalyzerConfig).validate_python(
        {"id": "d", "type": "diff", "threshold": 30, "baseline": {"type": "lagged"}}
    )
    time_analyzer("diff (lagged 1d, 1w)", diff, matrix, args.repeat)
    del matrix
    # SARIMA fits every series: its cost is per series and grows with the window.
    daily = build_matrix(args.series, 13, granularity="1d")
    seasonal = SeasonalConfig(id="se", type="seasonal")
    time_analyzer("seasonal (1,0,0)(2,1,0,7), 90 d", seasonal, daily, 1)
    # auto replays its window (14 days) every evaluation; each step compares with the history.
    auto = AutoConfig(id="au", type="auto")
    fifteen = build_matrix(args.series // 10, 3)
    REPLAYS.clear()
    time_analyzer("auto, 14 d of 15 min", auto, fifteen, 1)
    # The next cycle's evaluation resumes that replay (same day, same window start).
    time_resumed("auto, the next bucket (resumed)", auto, fifteen)
    del fifteen
    hourly = build_matrix(args.series // 10, 3, granularity="1h")
    seasonal_hourly = SeasonalConfig.model_validate(
        {
            "id": "sh",
            "type": "seasonal",
            "seasonal_order": [1, 1, 0, 24],
            "baseline": {"type": "trailing_window", "size": 14 * 24},
        }
    )
    time_analyzer("seasonal (1,0,0)(1,1,0,24), 14 d", seasonal_hourly, hourly, 1)


if __name__ == "__main__":
    main()
