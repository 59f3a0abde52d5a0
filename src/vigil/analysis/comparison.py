"""Comparisons with expected values: comparison, list_comparison, frequent_string_comparison."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from vigil.analysis import baseline as baselines
from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK, Evaluation, format_number
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import (
    ComparisonConfig,
    FrequentStringComparisonConfig,
    ListComparisonConfig,
)
from vigil.timeutil import Granularity

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: _same(a, b),
    "gt": operator.gt,
    "lt": operator.lt,
    "ge": lambda a, b: a > b or _same(a, b),
    "le": lambda a, b: a < b or _same(a, b),
}
_SYMBOLS = {"eq": "=", "gt": ">", "lt": "<", "ge": "≥", "le": "≤"}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return bool(abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)))


def observed(matrix: SeriesMatrix, row: int, col: int) -> Any:
    """The cell's value: a string for string stats (inferred_type), else the number."""
    payload = matrix.payload_at(row, col)
    if payload is not None and payload.get("kind") == "type":
        return payload["value"]
    number = matrix.values[row, col]
    return None if np.isnan(number) else float(number)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else format_number(value)


class _Base:
    config: Any

    def history(self, granularity: Granularity) -> int:
        """The baseline's reach."""
        return baselines.history(self.config.baseline, granularity)


class ComparisonAnalyzer(_Base):
    """Healthy when `value <operator> expected`; expected defaults to the baseline's mean."""

    def __init__(self, config: ComparisonConfig) -> None:
        self.config = config

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Test the relation per series."""
        cfg = self.config
        n = len(matrix.segments)
        status = np.full(n, OK)
        expected = np.full(n, np.nan)
        reasons = [""] * n
        window = baselines.values(cfg.baseline, matrix, target) if cfg.expected is None else None
        for i in range(n):
            value = observed(matrix, i, target)
            want: Any = cfg.expected
            if want is None and window is not None:
                known = window[i][~np.isnan(window[i])]
                want = float(known.mean()) if len(known) else None
            if value is None:
                status[i], reasons[i] = NO_DATA, "no value"
                continue
            if want is None:
                status[i], reasons[i] = INSUFFICIENT, "no baseline value to compare with"
                continue
            if not isinstance(want, str):
                expected[i] = want
            holds = _OPERATORS[cfg.operator](value, want)
            status[i] = OK if holds else ANOMALY
            verdict = "holds" if holds else "fails"
            reasons[i] = f"{_show(value)} {_SYMBOLS[cfg.operator]} {_show(want)} {verdict}"
        value_arr = matrix.values[:, target]
        deviation = np.where(np.isnan(expected), np.nan, value_arr - expected)
        return Evaluation(
            value_arr,
            status,
            expected,
            expected,
            deviation,
            {"expected": expected},
            lambda i: reasons[i],
        )


class ListComparisonAnalyzer(_Base):
    """`in`: anomaly when the value is not one of `expected`; `not_in`: when it is.

    Without `expected`, the baseline's values are the list.
    """

    def __init__(self, config: ListComparisonConfig) -> None:
        self.config = config

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Membership test per series."""
        cfg = self.config
        n = len(matrix.segments)
        status = np.full(n, OK)
        reasons = [""] * n
        cols = baselines.columns(cfg.baseline, matrix, target) if cfg.expected is None else None
        for i in range(n):
            value = observed(matrix, i, target)
            if cfg.expected is not None:
                listed: list[Any] = list(cfg.expected)
            else:
                found = [observed(matrix, i, int(c)) for c in (cols if cols is not None else [])]
                listed = [v for v in found if v is not None]
            if value is None:
                status[i], reasons[i] = NO_DATA, "no value"
                continue
            if not listed:
                status[i], reasons[i] = INSUFFICIENT, "no baseline values to compare with"
                continue
            member = any(_same(value, e) for e in listed)
            bad = not member if cfg.operator == "in" else member
            status[i] = ANOMALY if bad else OK
            shown = ", ".join(_show(v) for v in list(dict.fromkeys(listed))[:10])
            relation = "is" if member else "is not"
            reasons[i] = f"{_show(value)} {relation} in [{shown}]"
        value_arr = matrix.values[:, target]
        nan = np.full(n, np.nan)
        return Evaluation(value_arr, status, nan, nan, nan, {}, lambda i: reasons[i])


class FrequentStringComparisonAnalyzer(_Base):
    """Compare the target's frequent items with the items seen in the baseline.

    eq: the two sets must be equal; target_includes_all_baseline: every baseline item must
    still appear; baseline_includes_all_target: no new item may appear.
    """

    def __init__(self, config: FrequentStringComparisonConfig) -> None:
        self.config = config

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Set comparison per series, quoting a sample of the differing items."""
        cfg = self.config
        n = len(matrix.segments)
        status = np.full(n, OK)
        reasons = [""] * n
        missing_count = np.full(n, np.nan)
        history = baselines.payloads(cfg.baseline, matrix, target)
        for i in range(n):
            now = matrix.payload_at(i, target)
            past = [p for p in history[i] if p.get("kind") == "items"]
            if now is None or now.get("kind") != "items":
                status[i], reasons[i] = NO_DATA, "no frequent items in the target bucket"
                continue
            if len(past) < cfg.min_batch_size:
                status[i] = INSUFFICIENT
                reasons[i] = f"only {len(past)} baseline buckets; need {cfg.min_batch_size}"
                continue
            current = {item for item, _ in now["items"]}
            before = {item for p in past for item, _ in p["items"]}
            gone, new = sorted(before - current), sorted(current - before)
            if cfg.operator == "eq":
                bad = bool(gone or new)
            elif cfg.operator == "target_includes_all_baseline":
                bad, new = bool(gone), []
            else:
                bad, gone = bool(new), []
            status[i] = ANOMALY if bad else OK
            missing_count[i] = len(gone) + len(new)
            parts = []
            if new:
                parts.append(f"new: {_sample(new, cfg.sample_size)}")
            if gone:
                parts.append(f"missing: {_sample(gone, cfg.sample_size)}")
            reasons[i] = "; ".join(parts) if parts else "same frequent items as the baseline"
        value_arr = matrix.values[:, target]
        nan = np.full(n, np.nan)
        return Evaluation(
            value_arr,
            status,
            nan,
            nan,
            nan,
            {"differing_items": missing_count},
            lambda i: reasons[i],
        )


def _sample(items: list[str], size: int) -> str:
    shown = ", ".join(repr(i) for i in items[:size])
    return shown + (f" and {len(items) - size} more" if len(items) > size else "")
