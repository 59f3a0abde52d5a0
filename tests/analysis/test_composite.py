from __future__ import annotations

import numpy as np
from pydantic import TypeAdapter

from tests.analysis.helpers import matrix
from vigil.analysis import build_analyzer
from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK
from vigil.config.schema import AnalyzerConfig

ADAPTER: TypeAdapter[AnalyzerConfig] = TypeAdapter(AnalyzerConfig)
HIGH = ADAPTER.validate_python({"id": "high", "type": "fixed", "upper": 10})
JUMP = ADAPTER.validate_python(
    {
        "id": "jump",
        "type": "diff",
        "mode": "abs",
        "threshold": 5,
        "min_batch_size": 1,
        "baseline": {"type": "trailing_window", "size": 1},
    }
)


def combine(kind: str) -> list[int]:
    config = ADAPTER.validate_python({"id": "c", "type": kind, "analyzers": ["high", "jump"]})
    analyzer = build_analyzer(config, [HIGH, JUMP, config])
    # rows: both flag; only high; only jump; jump undecided (no baseline) and high flags;
    # neither; no value
    m = matrix([[1.0, 20], [9.0, 11], [0.0, 8], [np.nan, 30], [5.0, 6], [5.0, np.nan]])
    result = analyzer.evaluate(m, 1)
    assert result.describe(0).startswith("conjunction of high: anomaly") or kind != "conjunction"
    assert "; jump: anomaly" in result.describe(0)
    return result.status.tolist()


def test_conjunction_needs_every_member() -> None:
    assert combine("conjunction") == [ANOMALY, OK, OK, INSUFFICIENT, OK, NO_DATA]


def test_disjunction_needs_any_member() -> None:
    assert combine("disjunction") == [ANOMALY, ANOMALY, ANOMALY, ANOMALY, OK, NO_DATA]
