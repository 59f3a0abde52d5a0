"""Seasonal: a SARIMA one-step forecast with a (1 − alpha) interval, fitted for all series at once.

The model is ARIMA(p, d, 0)(P, D, 0, s) — by default (1, 0, 0)(2, 1, 0, 7). Without moving-
average terms it is autoregressive after differencing, so its conditional-sum-of-squares fit
is a small non-linear least-squares problem per series: Gauss–Newton steps on a
series × equations × parameters array solve every series together. The one-step forecast
error has the innovation variance σ², so the band is forecast ± z(1 − alpha/2) · σ.

Anomaly replacement: after a first fit, baseline points whose one-step residual is beyond
max(z, 3) σ are replaced by their one-step prediction and the model is refitted (three
passes at most), so a past incident does not widen or bend the band for the weeks after it.
Missing values and the `stddev_time_ranges` (known events) are filled (same bucket one
season back, else the previous value) only to keep the lags aligned; no equation is fitted
on them.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from vigil.analysis import baseline as baselines
from vigil.analysis.base import (
    Evaluation,
    apply_limits,
    band_evaluation,
    format_number,
    nan_stats,
    statuses,
)
from vigil.analysis.matrix import SeriesMatrix
from vigil.config.schema import SeasonalConfig
from vigil.timeutil import Granularity

ITERATIONS = 12
RIDGE = 1e-9
REPLACE_SIGMAS = 3.0
CLEANING_PASSES = 3


class SeasonalAnalyzer:
    """SARIMA forecast band; below `min_batch_size` observed values, mean ± z · stddev."""

    def __init__(self, config: SeasonalConfig) -> None:
        self.config = config
        self.z = NormalDist().inv_cdf(1 - config.alpha / 2)

    def history(self, granularity: Granularity) -> int:
        """The trailing window."""
        return self.config.baseline.size

    def evaluate(self, matrix: SeriesMatrix, target: int) -> Evaluation:
        """Fit on the window before `target`, forecast `target`, test the value."""
        cfg = self.config
        value = matrix.values[:, target]
        start = max(0, target - cfg.baseline.size)
        window = matrix.values[:, start:target]
        observed = ~np.isnan(window) & self._kept(matrix, start, target)[None, :]
        count = observed.sum(axis=1)
        p, d, _ = cfg.order
        big_p, big_d, _, s = cfg.seasonal_order
        forecast, sigma, fitted = fit_forecast(window, observed, p, d, big_p, big_d, s, self.z)
        sarima = fitted & (count >= cfg.min_batch_size)
        # Fallback band from the observed values' mean and stddev.
        known = np.where(observed, window, np.nan)
        fb_count, fb_mean, fb_std = nan_stats(known)
        center = np.where(sarima, forecast, fb_mean)
        spread = np.where(sarima, sigma, fb_std)
        half = self.z * spread
        if cfg.stddev_factor is not None:
            recent = known[:, -cfg.stddev_max_batch_size :]
            _, _, recent_std = nan_stats(recent)
            half = np.fmin(half, cfg.stddev_factor * recent_std)
        enough = sarima | (fb_count >= 2)
        lower, upper, above, below = apply_limits(
            value, center - half, center + half, cfg, cfg.direction
        )
        status = statuses(above | below, enough, value)
        level = f"{(1 - cfg.alpha) * 100:g}%"

        def describe(i: int) -> str:
            if not enough[i]:
                return f"only {count[i]} baseline values; need 2 (SARIMA: {cfg.min_batch_size})"
            how = (
                f"SARIMA forecast {format_number(center[i])}, {level} interval"
                if sarima[i]
                else f"fallback: mean {format_number(center[i])} ± z·σ of {count[i]} values"
                f" (SARIMA needs {cfg.min_batch_size})"
            )
            return (
                f"{format_number(value[i])} vs {how}"
                f" [{format_number(lower[i])}, {format_number(upper[i])}]"
            )

        return band_evaluation(
            value,
            status,
            lower,
            upper,
            center,
            enough,
            {
                "forecast": center,
                "sigma": spread,
                "count": count.astype(float),
                "sarima": sarima.astype(float),
            },
            describe,
        )

    def _kept(self, matrix: SeriesMatrix, start: int, target: int) -> np.ndarray:
        """Columns of the window that may be fitted on (not in event ranges or exclusions)."""
        cfg = self.config
        ranges = [*cfg.stddev_time_ranges, *cfg.baseline.exclusion_ranges]
        crons = cfg.baseline.exclusion_cron
        if not ranges and not crons:
            return np.ones(target - start, dtype=bool)
        tz = matrix.granularity.tz
        return np.array(
            [
                not baselines.excluded(matrix.times[c], ranges, crons, tz)
                for c in range(start, target)
            ],
            dtype=bool,
        )


def fit_forecast(
    window: np.ndarray,
    observed: np.ndarray,
    p: int,
    d: int,
    big_p: int,
    big_d: int,
    s: int,
    z: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-step forecast after `window` (series × time), innovation σ, and which series fitted.

    Refits (up to three times) with the outliers of the previous fit replaced by predictions.
    """
    x = _fill(window, observed, s)
    theta, sigma, fitted, rows = _fit(x, observed, p, d, big_p, big_d, s)
    if not fitted.any():
        return np.full(len(x), np.nan), sigma, fitted
    # Walk forward through the fitted equations with the first fit's model: a value far
    # outside its prediction — both from the cleaned history and from the raw one — is
    # replaced by the cleaned prediction. Requiring both keeps the echo of an earlier spike
    # from being "cleaned", and lets a lasting level shift back in after one season.
    orders = (p, d, big_p, big_d, s)
    cleaned = x
    for _ in range(CLEANING_PASSES):
        cleaned = _clean(theta, sigma, fitted, x, observed, rows, orders, z)
        if cleaned is x:
            break
        theta, sigma, fitted, _ = _fit(cleaned, observed, p, d, big_p, big_d, s)
    forecast = _one_step(theta, cleaned, x.shape[1], orders)
    return forecast, sigma, fitted


def _clean(
    theta: np.ndarray,
    sigma: np.ndarray,
    fitted: np.ndarray,
    x: np.ndarray,
    observed: np.ndarray,
    rows: np.ndarray,
    orders: tuple[int, int, int, int, int],
    z: float,
) -> np.ndarray:
    """`x` with its outliers replaced (or `x` itself when there are none)."""
    cleaned = x.copy()
    limit = max(z, REPLACE_SIGMAS) * sigma
    changed = False
    for t in rows:
        predicted = _one_step(theta, cleaned, int(t), orders)
        raw = _one_step(theta, x, int(t), orders)
        with np.errstate(invalid="ignore"):
            outlier = (
                fitted
                & observed[:, t]
                & (np.abs(cleaned[:, t] - predicted) > limit)
                & (np.abs(x[:, t] - raw) > limit)
            )
        if outlier.any():
            cleaned[outlier, t] = predicted[outlier]
            changed = True
    return cleaned if changed else x


def _one_step(
    theta: np.ndarray, x: np.ndarray, t: int, orders: tuple[int, int, int, int, int]
) -> np.ndarray:
    """The model's prediction of x[:, t] from x[:, :t] (t may be one past the end)."""
    p, d, big_p, big_d, s = orders
    delta = _difference_polynomial(d, big_d, s)

    def w(u: int) -> np.ndarray:
        return sum((delta[k] * x[:, u - k] for k in range(len(delta))), np.zeros(len(x)))

    w_hat = theta[:, 0].copy()
    for idx in range(p):
        w_hat += theta[:, 1 + idx] * w(t - idx - 1)
    for jdx in range(big_p):
        j = (jdx + 1) * s
        w_hat += theta[:, 1 + p + jdx] * w(t - j)
        for idx in range(p):
            w_hat -= theta[:, 1 + idx] * theta[:, 1 + p + jdx] * w(t - idx - 1 - j)
    return w_hat - sum((delta[k] * x[:, t - k] for k in range(1, len(delta))), np.zeros(len(x)))


def _fit(
    x: np.ndarray, observed: np.ndarray, p: int, d: int, big_p: int, big_d: int, s: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Conditional-sum-of-squares fit of every row: θ, σ, which rows fitted, and the x columns
    the equations predict."""
    n_series, n = x.shape
    delta = _difference_polynomial(d, big_d, s)
    shift = len(delta) - 1
    m = p + big_p * s
    k = 1 + p + big_p
    if n - shift - m < k + 2:
        return (
            np.zeros((n_series, k)),
            np.full(n_series, np.nan),
            np.zeros(n_series, dtype=bool),
            np.empty(0, dtype=int),
        )
    # Differenced series w (aligned so that w[:, j] belongs to x column j + shift).
    w = sum(delta[i] * x[:, shift - i : n - i] for i in range(len(delta)))
    w_ok = np.ones_like(w, dtype=bool)
    for i in range(len(delta)):
        if delta[i]:
            w_ok &= observed[:, shift - i : n - i]
    big_m = w.shape[1]
    rows = np.arange(m, big_m)

    def lag(values: np.ndarray, j: int) -> np.ndarray:
        return values[:, m - j : big_m - j]

    ar = list(range(1, p + 1))
    sar = [j * s for j in range(1, big_p + 1)]
    used = {0, *ar, *sar, *(i + j for i in ar for j in sar)}
    valid = np.ones((n_series, len(rows)), dtype=bool)
    for j in used:
        valid &= lag(w_ok, j)
    lags = {j: lag(w, j) for j in used}
    theta = np.zeros((n_series, k))
    with np.errstate(invalid="ignore"):
        theta[:, 0] = np.nanmean(np.where(valid, lags[0], np.nan), axis=1)
    theta[np.isnan(theta)] = 0.0
    for _ in range(ITERATIONS):
        residual, jac = _residuals(theta, lags, ar, sar)
        residual = np.where(valid, residual, 0.0)
        jac = np.where(valid[:, :, None], jac, 0.0)
        a = np.einsum("srk,srl->skl", jac, jac) + RIDGE * np.eye(k)
        g = np.einsum("srk,sr->sk", jac, residual)
        step = np.linalg.solve(a, g[:, :, None])[:, :, 0]
        theta = theta - step
        theta[:, 1:] = np.clip(theta[:, 1:], -0.999, 0.999)
    residual, _ = _residuals(theta, lags, ar, sar)
    residual = np.where(valid, residual, np.nan)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(np.nansum(residual**2, axis=1) / (count - k))
    fitted = (count >= k + 2) & np.isfinite(sigma)
    return theta, sigma, fitted, rows + shift


def _residuals(
    theta: np.ndarray, lags: dict[int, np.ndarray], ar: list[int], sar: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """e_t = w_t − c − Σφ w_{t−i} − ΣΦ w_{t−js} + ΣΣ φΦ w_{t−i−js}, and ∂e/∂θ."""
    p = len(ar)
    e = lags[0] - theta[:, 0:1]
    jac = np.empty((*e.shape, theta.shape[1]))
    jac[:, :, 0] = -1.0
    for idx, i in enumerate(ar):
        phi = theta[:, 1 + idx : 2 + idx]
        e = e - phi * lags[i]
        jac[:, :, 1 + idx] = -lags[i]
    for jdx, j in enumerate(sar):
        big_phi = theta[:, 1 + p + jdx : 2 + p + jdx]
        e = e - big_phi * lags[j]
        jac[:, :, 1 + p + jdx] = -lags[j]
        for idx, i in enumerate(ar):
            phi = theta[:, 1 + idx : 2 + idx]
            e = e + phi * big_phi * lags[i + j]
            jac[:, :, 1 + idx] += big_phi * lags[i + j]
            jac[:, :, 1 + p + jdx] += phi * lags[i + j]
    return e, jac


def _difference_polynomial(d: int, big_d: int, s: int) -> np.ndarray:
    """Coefficients of (1 − L)^d (1 − L^s)^D, lowest power first."""
    poly = np.array([1.0])
    for _ in range(d):
        poly = np.convolve(poly, [1.0, -1.0])
    seasonal = np.zeros(s + 1)
    seasonal[0], seasonal[s] = 1.0, -1.0
    for _ in range(big_d):
        poly = np.convolve(poly, seasonal)
    return poly


def _fill(window: np.ndarray, observed: np.ndarray, s: int) -> np.ndarray:
    """Fill unobserved cells with the value one season back, else the previous value."""
    x = np.where(observed, window, np.nan)
    if observed.all():
        return x
    with np.errstate(invalid="ignore"):
        means = np.nanmean(x, axis=1)
    for t in range(x.shape[1]):
        gap = np.isnan(x[:, t])
        if not gap.any():
            continue
        back = x[:, t - s] if s and t >= s else np.full(x.shape[0], np.nan)
        prev = x[:, t - 1] if t else np.full(x.shape[0], np.nan)
        fill = np.where(np.isnan(back), prev, back)
        fill = np.where(np.isnan(fill), means, fill)
        x[gap, t] = fill[gap]
    return np.nan_to_num(x)
