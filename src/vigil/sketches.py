"""Distribution payloads kept beside a profile metric's value, and distances between them.

A numeric column's histogram is stored as its quantiles (0, 1, …, 100 %) computed by the
source engine; a discrete column's frequent items as (item, count) pairs. Any set of bins
can be read off quantiles, so buckets profiled at different times compare on common bins.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

QUANTILE_LEVELS = [i / 100 for i in range(101)]
MAX_ITEMS = 128
MAX_ITEM_LENGTH = 128
EPSILON = 1e-6

Payload = dict[str, Any]


def histogram_payload(count: float, quantiles: Sequence[float] | None) -> Payload | None:
    """The payload for a numeric column's bucket (None when it had no values)."""
    if not count or quantiles is None:
        return None
    return {"kind": "quantiles", "n": int(count), "q": [float(q) for q in quantiles]}


def items_payload(pairs: Iterable[tuple[Any, float]]) -> Payload | None:
    """The payload for a discrete column's bucket: the most frequent items, cut to 128 chars."""
    counts: dict[str, int] = {}
    total = 0
    for item, count in pairs:
        if item is None:
            continue
        key = str(item)[:MAX_ITEM_LENGTH]
        counts[key] = counts.get(key, 0) + int(count)
        total += int(count)
    if not total:
        return None
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_ITEMS]
    return {"kind": "items", "n": total, "items": [[k, v] for k, v in top]}


TYPE_NAMES = ("integral", "fractional", "boolean", "string")


def type_payload(counts: Sequence[float]) -> Payload | None:
    """The inferred type of a column's bucket: the most common of integral, fractional, …."""
    named = {name: int(c or 0) for name, c in zip(TYPE_NAMES, counts, strict=True)}
    if not any(named.values()):
        return None
    # Integral values are fractional too; a column with both is fractional.
    if named["fractional"] and named["integral"] and named["fractional"] >= named["string"]:
        winner = "fractional"
    else:
        winner = max(TYPE_NAMES, key=lambda n: named[n])
    return {"kind": "type", "value": winner, "counts": named}


def distributions(
    baseline: Sequence[Payload], target: Payload, bins: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Baseline and target probabilities over common bins, with the bins' labels."""
    if target.get("kind") == "items":
        return _item_distributions(baseline, target)
    return _quantile_distributions(baseline, target, bins)


def _quantile_distributions(
    baseline: Sequence[Payload], target: Payload, bins: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    weights = np.array([b["n"] for b in baseline], dtype=float)
    points = np.concatenate([np.asarray(b["q"], dtype=float) for b in baseline])
    point_weights = np.concatenate(
        [np.full(len(b["q"]), w / len(b["q"])) for b, w in zip(baseline, weights, strict=True)]
    )
    order = np.argsort(points, kind="stable")
    cumulative = np.cumsum(point_weights[order]) / point_weights.sum()
    levels = np.arange(1, bins) / bins
    inner = points[order][np.minimum(np.searchsorted(cumulative, levels), len(points) - 1)]
    # The baseline's minimum and maximum are edges too, so that mass outside its range
    # falls in bins of its own (where the baseline has none).
    edges = np.unique(np.concatenate([[points.min()], inner, [points.max()]]))
    base_cdf = sum(w * cdf(b["q"], edges) for b, w in zip(baseline, weights, strict=True))
    base_cdf = np.asarray(base_cdf) / weights.sum()
    target_cdf = cdf(target["q"], edges)
    labels = [f"≤ {edges[0]:.4g}"] + [f"({a:.4g}, {b:.4g}]" for a, b in itertools.pairwise(edges)]
    labels.append(f"> {edges[-1]:.4g}")
    return _masses(base_cdf), _masses(target_cdf), labels


def _masses(cdf_at_edges: np.ndarray) -> np.ndarray:
    return np.diff(np.concatenate([[0.0], cdf_at_edges, [1.0]]))


def cdf(quantiles: Sequence[float], x: np.ndarray) -> np.ndarray:
    """P(X ≤ x) read off a quantile list, linear between quantiles (right-continuous)."""
    q = np.asarray(quantiles, dtype=float)
    levels = np.linspace(0.0, 1.0, len(q))
    idx = np.searchsorted(q, x, side="right")
    # Inside the range q[i − 1] ≤ x < q[i], so hi > lo; outside, the clipped values are unused.
    i = np.clip(idx, 1, len(q) - 1)
    lo, hi = q[i - 1], q[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = levels[i - 1] + (levels[i] - levels[i - 1]) * (x - lo) / (hi - lo)
    return np.where(idx == 0, 0.0, np.where(idx >= len(q), 1.0, inside))


def _item_distributions(
    baseline: Sequence[Payload], target: Payload
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    base_counts: dict[str, float] = {}
    base_total = 0.0
    for b in baseline:
        for item, count in b["items"]:
            base_counts[item] = base_counts.get(item, 0.0) + count
        base_total += b["n"]
    target_counts = {item: float(count) for item, count in target["items"]}
    labels = sorted(set(base_counts) | set(target_counts))
    base = np.array([base_counts.get(k, 0.0) for k in labels]) / base_total
    tgt = np.array([target_counts.get(k, 0.0) for k in labels]) / target["n"]
    # Whatever fell outside the kept items is one more category.
    return (
        np.append(base, max(0.0, 1 - base.sum())),
        np.append(tgt, max(0.0, 1 - tgt.sum())),
        [*labels, "(other)"],
    )


def distance(algorithm: str, baseline: np.ndarray, target: np.ndarray) -> float:
    """Distance from the baseline to the target distribution.

    hellinger: √(1 − Σ√(pq)), in [0, 1]. jensenshannon: the square root of the JS divergence
    with base-2 logarithms, in [0, 1]. kl_divergence: Σ t·ln(t/b). psi: Σ (t − b)·ln(t/b).
    The last two add 1e-6 to every bin first, so an empty bin does not give infinity.
    """
    b, t = baseline / baseline.sum(), target / target.sum()
    if algorithm == "hellinger":
        return math.sqrt(max(0.0, 1.0 - float(np.sum(np.sqrt(b * t)))))
    if algorithm == "jensenshannon":
        m = (b + t) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_b = np.where(b > 0, b * np.log2(b / m), 0.0).sum()
            kl_t = np.where(t > 0, t * np.log2(t / m), 0.0).sum()
        return math.sqrt(max(0.0, float(kl_b + kl_t) / 2))
    bs, ts = (b + EPSILON) / (1 + EPSILON * len(b)), (t + EPSILON) / (1 + EPSILON * len(t))
    if algorithm == "kl_divergence":
        return float(np.sum(ts * np.log(ts / bs)))
    if algorithm == "psi":
        return float(np.sum((ts - bs) * np.log(ts / bs)))
    raise ValueError(f"unknown distance '{algorithm}'")
