"""Thin a long series for a chart without losing its peaks: per bin keep the min and the max."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def extreme_indices(values: Floats, bins: int) -> npt.NDArray[np.int64]:
    """Indices of the smallest and largest value in each of `bins` equal runs of `values`.

    All indices when the series is already short (at most two points a bin). Empty (NaN)
    stretches keep their first point, so a gap still shows as a gap.
    """
    n = len(values)
    if bins <= 0 or n <= 2 * bins:
        return np.arange(n, dtype=np.int64)
    edges = np.linspace(0, n, bins + 1).astype(np.int64)
    starts = edges[:-1][np.diff(edges) > 0]
    counts = np.diff(np.append(starts, n))
    bin_of = np.repeat(np.arange(len(starts)), counts)
    missing = np.isnan(values)
    low = np.where(missing, np.inf, values)
    high = np.where(missing, -np.inf, values)
    lows = np.minimum.reduceat(low, starts)
    highs = np.maximum.reduceat(high, starts)
    picked = [
        _first_per_bin(low == lows[bin_of], bin_of),
        _first_per_bin(high == highs[bin_of], bin_of),
        starts[np.isinf(lows)],  # bins with no value at all
    ]
    return np.unique(np.concatenate(picked)).astype(np.int64)


def _first_per_bin(
    hit: npt.NDArray[np.bool_], bin_of: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    positions = np.flatnonzero(hit)
    _, first = np.unique(bin_of[positions], return_index=True)
    return positions[first].astype(np.int64)


def band_envelope(
    lower: Floats, upper: Floats, keep: npt.NDArray[np.int64]
) -> tuple[Floats, Floats]:
    """The expected band at the kept points, widened to the band's extremes up to the next
    kept point, so thinning never narrows it (NaN where there is no band)."""
    if len(keep) == len(lower) or not len(keep):
        return lower[keep], upper[keep]
    return np.fmin.reduceat(lower, keep), np.fmax.reduceat(upper, keep)
