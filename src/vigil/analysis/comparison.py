"""Comparisons with expected values: comparison, list_comparison, frequent_string_comparison."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from vigil.analysis import baseline as baselines
from vigil.analysis.base import (
    ANOMALY,
    INSUFFICIENT,
    NO_DATA,
    OK,
    Evaluation,
    Verdict,
    format_number,
    judge_rows,
)
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
        window = baselines.values(cfg.baseline, matrix, target) if cfg.expected is None else None

        def judge(i: int) -> Verdict:
            value = observed(matrix, i, target)
            want: Any = cfg.expected
            if want is None and window is not None:
                known = window[i][~np.isnan(window[i])]
                want = float(known.mean()) if len(known) else None
            if value is None:
                return Verdict(NO_DATA, "no value")
            if want is None:
                return Verdict(INSUFFICIENT, "no baseline value to compare with")
            holds = _OPERATORS[cfg.operator](value, want)
            reason = f"{_show(value)} {_SYMBOLS[cfg.operator]} {_show(want)}"
            number = float("nan") if isinstance(want, str) else float(want)
            return Verdict(
                OK if holds else ANOMALY, f"{reason} {'holds' if holds else 'fails'}", number
            )

        status, describe, expected = judge_rows(len(matrix.segments), judge)
        value = matrix.values[:, target]
        deviation = np.where(np.isnan(expected), np.nan, value - expected)
        return Evaluation(
            value, status, expected, expected, deviation, {"expected": expected}, describe
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
        cols: list[int] = (
            baselines.columns(cfg.baseline, matrix, target).tolist() if cfg.expected is None else []
        )

        def judge(i: int) -> Verdict:
            value = observed(matrix, i, target)
            if cfg.expected is not None:
                listed: list[Any] = list(cfg.expected)
            else:
                found = [observed(matrix, i, c) for c in cols]
                listed = [v for v in found if v is not None]
            if value is None:
                return Verdict(NO_DATA, "no value")
            if not listed:
                return Verdict(INSUFFICIENT, "no baseline values to compare with")
            member = any(_same(value, e) for e in listed)
            bad = not member if cfg.operator == "in" else member
            shown = ", ".join(_show(v) for v in list(dict.fromkeys(listed))[:10])
            relation = "is" if member else "is not"
            return Verdict(ANOMALY if bad else OK, f"{_show(value)} {relation} in [{shown}]")

        status, describe, _ = judge_rows(len(matrix.segments), judge)
        nan = np.full(len(status), np.nan)
        return Evaluation(matrix.values[:, target], status, nan, nan, nan, {}, describe)


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
        history = baselines.payloads(cfg.baseline, matrix, target)

        def judge(i: int) -> Verdict:
            now = matrix.payload_at(i, target)
            past = [p for p in history[i] if p.get("kind") == "items"]
            if now is None or now.get("kind") != "items":
                return Verdict(NO_DATA, "no frequent items in the target bucket")
            if len(past) < cfg.min_batch_size:
                need = cfg.min_batch_size
                return Verdict(INSUFFICIENT, f"only {len(past)} baseline buckets; need {need}")
            current = {item for item, _ in now["items"]}
            before = {item for p in past for item, _ in p["items"]}
            gone, new = sorted(before - current), sorted(current - before)
            if cfg.operator == "target_includes_all_baseline":
                new = []
            elif cfg.operator == "baseline_includes_all_target":
                gone = []
            parts = [f"new: {_sample(new, cfg.sample_size)}"] if new else []
            parts += [f"missing: {_sample(gone, cfg.sample_size)}"] if gone else []
            reason = "; ".join(parts) if parts else "same frequent items as the baseline"
            return Verdict(ANOMALY if parts else OK, reason, len(gone) + len(new))

        status, describe, differing = judge_rows(len(matrix.segments), judge)
        nan = np.full(len(status), np.nan)
        return Evaluation(
            matrix.values[:, target],
            status,
            nan,
            nan,
            nan,
            {"differing_items": differing},
            describe,
        )


def _sample(items: list[str], size: int) -> str:
    shown = ", ".join(repr(i) for i in items[:size])
    return shown + (f" and {len(items) - size} more" if len(items) > size else "")
