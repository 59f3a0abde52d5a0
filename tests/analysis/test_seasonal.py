from __future__ import annotations

import numpy as np
import pytest

from tests.analysis.helpers import build, matrix
from vigil.analysis.base import ANOMALY, INSUFFICIENT, OK
from vigil.analysis.seasonal import fit_forecast

WEEK = [100.0, 120, 110, 90, 150, 200, 180]


def simulate(series: int, length: int, seed: int) -> np.ndarray:
    """SARIMA(1,0,0)(2,1,0,7) paths: φ 0.5, Φ 0.3 and 0.2, unit innovations, weekly shape."""
    rng = np.random.default_rng(seed)
    total = length + 100
    w = np.zeros((series, total))
    eps = rng.normal(0, 1, size=(series, total))
    for t in range(15, total):
        w[:, t] = (
            0.5 * w[:, t - 1]
            + 0.3 * w[:, t - 7]
            + 0.2 * w[:, t - 14]
            - 0.15 * w[:, t - 8]
            - 0.1 * w[:, t - 15]
            + eps[:, t]
        )
    x = np.zeros_like(w)
    for t in range(total):
        x[:, t] = w[:, t] + (x[:, t - 7] if t >= 7 else 1000 + WEEK[t % 7])
    return x[:, -length:]


def test_a_perfectly_weekly_series_is_forecast_as_last_week() -> None:
    row = (WEEK * 13)[:91]
    analyzer = build("seasonal")
    ok = analyzer.evaluate(matrix([row], "1d"), 90)
    assert ok.baselines["forecast"][0] == pytest.approx(row[90 - 7])
    assert ok.status.tolist() == [OK]
    off = analyzer.evaluate(matrix([[*row[:90], row[90] + 5]], "1d"), 90)
    assert off.status.tolist() == [ANOMALY]
    assert "SARIMA forecast" in off.describe(0)


def test_interval_covers_about_one_minus_alpha_of_next_values() -> None:
    x = simulate(400, 91, seed=3)
    observed = np.ones((400, 90), dtype=bool)
    forecast, sigma, fitted = fit_forecast(x[:, :90], observed, 1, 0, 2, 1, 7, 1.96)
    assert fitted.all()
    assert np.median(sigma) == pytest.approx(1.0, abs=0.1)
    covered = np.abs(x[:, 90] - forecast) <= 1.96 * sigma
    assert 0.88 <= covered.mean() <= 0.99


def test_a_past_spike_is_replaced_and_does_not_poison_the_forecast() -> None:
    x = simulate(1, 91, seed=5)[0]
    spiked = x.copy()
    spiked[90 - 7] += 500  # same weekday last week
    analyzer = build("seasonal")
    clean = analyzer.evaluate(matrix([x.tolist()], "1d"), 90)
    dirty = analyzer.evaluate(matrix([spiked.tolist()], "1d"), 90)
    assert dirty.status.tolist() == clean.status.tolist() == [OK]
    assert dirty.baselines["forecast"][0] == pytest.approx(clean.baselines["forecast"][0], abs=3)
    assert dirty.upper[0] - dirty.lower[0] < 2 * (clean.upper[0] - clean.lower[0])


def test_short_history_uses_the_fallback_band() -> None:
    # 10 values: mean 10.5, sample stddev 3.0277; 95% band 10.5 ± 1.96 · 3.0277.
    row = [float(v) for v in range(6, 16)] + [30.0]
    result = build("seasonal").evaluate(matrix([row], "1d"), 10)
    assert result.baselines["sarima"][0] == 0
    assert result.lower[0] == pytest.approx(10.5 - 1.959964 * 3.02765, abs=1e-3)
    assert result.upper[0] == pytest.approx(10.5 + 1.959964 * 3.02765, abs=1e-3)
    assert result.status.tolist() == [ANOMALY]
    assert "fallback" in result.describe(0)
    assert build("seasonal").evaluate(matrix([[np.nan, 5.0, 7.0]], "1d"), 2).status == [
        INSUFFICIENT
    ]


def test_event_ranges_are_left_out_and_stddev_factor_caps_the_band() -> None:
    x = simulate(1, 91, seed=8)[0].tolist()
    events = [{"start": "2024-05-10", "end": "2024-05-20"}]
    result = build("seasonal", stddev_time_ranges=events).evaluate(matrix([x], "1d"), 90)
    assert result.baselines["count"][0] == 80
    capped = build("seasonal", stddev_factor=0.01).evaluate(matrix([x], "1d"), 90)
    plain = build("seasonal").evaluate(matrix([x], "1d"), 90)
    assert capped.upper[0] - capped.lower[0] < plain.upper[0] - plain.lower[0]


def test_moving_average_orders_are_rejected() -> None:
    with pytest.raises(ValueError, match="expected q = 0 and Q = 0"):
        build("seasonal", order=[1, 0, 1])
