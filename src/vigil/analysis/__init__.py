"""Analyzers: declarative checks evaluated over all series of a metric at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigil.analysis.base import Analyzer, Evaluation
from vigil.analysis.fixed import FixedAnalyzer
from vigil.analysis.matrix import SeriesMatrix
from vigil.analysis.same_time import SameTimeComparisonAnalyzer
from vigil.analysis.stddev import StddevAnalyzer
from vigil.config.schema import AnalyzerConfig

BACKENDS: dict[str, Callable[[Any], Analyzer]] = {
    "same_time_comparison": SameTimeComparisonAnalyzer,
    "fixed": FixedAnalyzer,
    "stddev": StddevAnalyzer,
}


def build_analyzer(config: AnalyzerConfig) -> Analyzer:
    """The analyzer registered for the config's `type`."""
    return BACKENDS[config.type](config)


__all__ = ["Analyzer", "Evaluation", "SeriesMatrix", "build_analyzer"]
