"""Significance of a change in a ratio of two counts (CTR = likes / views).

Under "nothing changed", the numerator x of a bucket with denominator n is an overdispersed
Poisson count with mean p·n and variance φ·p·n, where p is the baseline's pooled rate
(Σx / Σn over the baseline buckets) and φ ≥ 1 the series' own dispersion, estimated from the
baseline buckets: φ = Σ (xⱼ − p·nⱼ)² / Σ p·nⱼ. A target x_t, n_t then has

    z = (x_t − p·n_t) / √(φ · p · n_t · (1 + n_t / Σn))

(the last factor counts the uncertainty of p itself). A CTR falling from 10% to 5% on 20
views is z ≈ −0.7 (noise); on 2,000 views z ≈ −7.
"""

from __future__ import annotations

import numpy as np

MAX_DISPERSION = 1000.0


def ratio_z(
    numerator: np.ndarray,
    denominator: np.ndarray,
    base_cols: np.ndarray,
    target_cols: np.ndarray,
    noise_cols: np.ndarray | None = None,
) -> np.ndarray:
    """Per row, z of the target columns' pooled numerator against the baseline columns' rate,
    with φ read from `noise_cols` (default: the baseline's); NaN where a row has no usable
    counts (missing, negative or zero denominators)."""
    rows = numerator.shape[0]
    if not len(base_cols) or not len(target_cols):
        return np.full(rows, np.nan)
    rate, total_n = _pooled(numerator[:, base_cols], denominator[:, base_cols])
    phi = dispersion(numerator, denominator, base_cols if noise_cols is None else noise_cols)
    tx, tn = numerator[:, target_cols], denominator[:, target_cols]
    known = _usable(tx, tn)
    x = np.where(known, tx, 0.0).sum(axis=1)
    n = np.where(known, tn, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = rate * n
        variance = phi * mean * (1 + n / np.where(total_n > 0, total_n, np.nan))
        z = np.where(variance > 0, (x - mean) / np.sqrt(variance), np.nan)
    return np.where(known.any(axis=1) & (total_n > 0), z, np.nan)


def dispersion(numerator: np.ndarray, denominator: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """φ = Σ (xⱼ − p·nⱼ)² / Σ p·nⱼ over the columns (p their pooled rate), at least 1."""
    bx, bn = numerator[:, cols], denominator[:, cols]
    usable = _usable(bx, bn)
    rate, _ = _pooled(bx, bn)
    with np.errstate(invalid="ignore"):
        expected = rate[:, None] * bn
        ok = usable & (expected > 0)
        spread = np.where(ok, (bx - expected) ** 2, 0.0).sum(axis=1)
        scale = np.where(ok, expected, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(scale > 0, spread / scale, 1.0)
    return np.asarray(np.clip(phi, 1.0, MAX_DISPERSION), dtype=float)


def _usable(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        ok: np.ndarray = ~np.isnan(x) & ~np.isnan(n) & (n > 0) & (x >= 0)
    return ok


def _pooled(x: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    usable = _usable(x, n)
    total_x = np.where(usable, x, 0.0).sum(axis=1)
    total_n = np.where(usable, n, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total_n > 0, total_x / total_n, np.nan), total_n
