"""Analyzers: declarative checks evaluated over all series of a metric at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vigil.analysis.auto import AutoAnalyzer
from vigil.analysis.base import Analyzer, Evaluation
from vigil.analysis.change import ChangeAnalyzer
from vigil.analysis.comparison import (
    ComparisonAnalyzer,
    FrequentStringComparisonAnalyzer,
    ListComparisonAnalyzer,
)
from vigil.analysis.composite import CompositeAnalyzer
from vigil.analysis.diff import DiffAnalyzer
from vigil.analysis.drift import DriftAnalyzer
from vigil.analysis.fixed import FixedAnalyzer
from vigil.analysis.matrix import SeriesMatrix
from vigil.analysis.monotonic import MonotonicAnalyzer
from vigil.analysis.same_time import SameTimeComparisonAnalyzer
from vigil.analysis.seasonal import SeasonalAnalyzer
from vigil.analysis.stddev import StddevAnalyzer
from vigil.config.schema import AnalyzerConfig, CompositeConfig

BACKENDS: dict[str, Callable[[Any], Analyzer]] = {
    "same_time_comparison": SameTimeComparisonAnalyzer,
    "auto": AutoAnalyzer,
    "fixed": FixedAnalyzer,
    "stddev": StddevAnalyzer,
    "diff": DiffAnalyzer,
    "seasonal": SeasonalAnalyzer,
    "drift": DriftAnalyzer,
    "list_comparison": ListComparisonAnalyzer,
    "frequent_string_comparison": FrequentStringComparisonAnalyzer,
    "monotonic": MonotonicAnalyzer,
    "change": ChangeAnalyzer,
    "comparison": ComparisonAnalyzer,
}


def build_analyzer(config: AnalyzerConfig, peers: Sequence[AnalyzerConfig] = ()) -> Analyzer:
    """The analyzer registered for the config's `type`.

    A conjunction or disjunction is built from those of `peers` (the analyzers of the same
    metric) that it names.
    """
    if isinstance(config, CompositeConfig):
        members = [
            (peer.id, BACKENDS[peer.type](peer))
            for member in config.analyzers
            for peer in peers
            if peer.id == member and not isinstance(peer, CompositeConfig)
        ]
        return CompositeAnalyzer(config, members)
    return BACKENDS[config.type](config)


__all__ = ["Analyzer", "Evaluation", "SeriesMatrix", "build_analyzer"]
