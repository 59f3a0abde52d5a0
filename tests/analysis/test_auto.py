"""`type: auto`: daily seasons, level shifts and spikes without tuning; a score in [0, 1]."""

from __future__ import annotations

import numpy as np

from tests.analysis.helpers import build, matrix
from vigil.analysis.base import ANOMALY, OK
from vigil.analysis.streaming import StreamingDetector, seasons_for


def daily(days: int, noise: float = 0.02, seed: int = 3) -> np.ndarray:
    """Hourly values with a strong daily cycle and a little noise."""
    hours = np.arange(days * 24)
    rng = np.random.default_rng(seed)
    return 1000 + 600 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 1000 * noise, len(hours))


def test_a_daily_cycle_is_expected_and_a_drop_at_its_peak_is_not() -> None:
    values = daily(15)
    peak = 14 * 24 + 6  # 06:00 on day 15, the top of the cycle
    dropped = values.copy()
    dropped[peak] = 400.0
    m = matrix([values[: peak + 1].tolist(), dropped[: peak + 1].tolist()])
    result = build("auto").evaluate(m, peak)
    assert result.status.tolist() == [OK, ANOMALY]
    scores = result.baselines["score"]
    assert scores[0] < 0.5 <= scores[1] <= 1.0
    low, high = result.lower[1], result.upper[1]
    assert low < values[peak] < high  # the usual value is in the expected range
    assert not low <= 400 <= high
    text = result.describe(1)
    assert text.startswith("score ")
    assert "expected " in text
    assert text.endswith("got 400")


def test_the_score_is_calibrated_between_zero_and_one_and_quiet_on_noise() -> None:
    rng = np.random.default_rng(7)
    detector = StreamingDetector(3, seasons_for(3600))
    scores = np.array([detector.step(rng.normal(100, 5, 3)) for _ in range(2000)])
    assert scores.min() >= 0.0
    assert scores.max() <= 1.0
    assert (scores[100:] >= 0.5).mean() < 0.01  # under 1 % of pure noise crosses the default


def test_a_level_shift_alerts_once_then_becomes_the_new_normal() -> None:
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.normal(100, 2, 400), rng.normal(160, 2, 400)])
    detector = StreamingDetector(1, [])
    scores = np.array([detector.step(np.array([v]))[0] for v in values])
    assert scores[400] >= 0.5  # the step is news at once
    assert (scores[420:] >= 0.5).sum() <= 2  # and soon the new level is normal
    assert (scores[50:400] >= 0.5).sum() <= 2


def test_missing_values_score_zero_and_are_skipped() -> None:
    detector = StreamingDetector(2, [])
    for _ in range(50):
        detector.step(np.array([10.0, 10.0]))
    scores = detector.step(np.array([np.nan, 10.0]))
    assert scores[0] == 0.0
