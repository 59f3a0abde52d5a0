"""The change analyzer: a level shift is reported once, at the bucket that first shows it."""

from __future__ import annotations

import numpy as np

from tests.analysis.helpers import build, matrix
from vigil.analysis.base import ANOMALY, INSUFFICIENT, OK


def _flags(rows: list[list[float]], columns: range, **params: object) -> list[list[int]]:
    """Per row, the columns evaluated as anomalies."""
    analyzer = build("change", window=48, **params)
    m = matrix(rows)
    out: list[list[int]] = [[] for _ in rows]
    for col in columns:
        status = analyzer.evaluate(m, col).status
        for i in np.flatnonzero(status == ANOMALY):
            out[i].append(col)
    return out


def _noisy(n: int, level: float, seed: int) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0, level * 0.03, n)


def test_a_drop_is_reported_once_when_the_recent_median_shows_it() -> None:
    series = _noisy(120, 100.0, 1)
    series[60:] -= 30  # from 100 to 70 and staying there
    spike = _noisy(120, 100.0, 2)
    spike[60] = 300  # one bucket: the median of three ignores it
    steady = _noisy(120, 100.0, 3)
    flags = _flags([series.tolist(), spike.tolist(), steady.tolist()], range(50, 120))
    assert flags == [[61], [], []]  # 2 of the last 3 buckets are at the new level at 61


def test_the_reason_names_both_levels_and_says_when_the_shift_was_already_reported() -> None:
    series = _noisy(100, 100.0, 4)
    series[60:] -= 30
    analyzer = build("change", window=48)
    m = matrix([series.tolist()])
    first = analyzer.evaluate(m, 61)
    assert first.status.tolist() == [ANOMALY]
    assert "in the 48 before" in first.describe(0)
    assert first.describe(0).endswith("a new level")
    assert first.deviation[0] < -0.25
    later = analyzer.evaluate(m, 64)
    assert later.status.tolist() == [OK]
    assert later.describe(0).endswith("the shift was reported when it began")


def test_direction_and_min_change_and_a_constant_series() -> None:
    up = _noisy(100, 50.0, 5)
    up[70:] += 20
    down = _noisy(100, 50.0, 6)
    down[70:] -= 20
    zeros = np.zeros(100)
    zeros[70:] = 5  # MAD 0: any move of a constant series is a new level
    rows = [up.tolist(), down.tolist(), zeros.tolist()]
    assert _flags(rows, range(60, 100), direction="up") == [[71], [], [71]]
    assert _flags(rows, range(60, 100)) == [[71], [71], [71]]
    tiny = np.full(100, 1000.0)
    tiny[70:] = 1001  # a steady series moving 0.1%
    assert _flags([tiny.tolist()], range(60, 100)) == [[71]]
    assert _flags([tiny.tolist()], range(60, 100), min_change=0.05) == [[]]


def test_too_little_history_is_insufficient() -> None:
    analyzer = build("change", window=48)
    m = matrix([list(range(30))])
    assert analyzer.evaluate(m, 10).status.tolist() == [INSUFFICIENT]


def test_many_series_at_once_each_shift_once_and_noise_rarely() -> None:
    rng = np.random.default_rng(7)
    n, width = 2000, 160
    values = 200 + rng.normal(0, 6, (n, width))
    shifted = np.arange(n) % 2 == 0
    starts = rng.integers(80, 130, n)
    for i in np.flatnonzero(shifted):
        values[i, starts[i] :] += rng.choice([-1, 1]) * 60
    analyzer = build("change", window=48)
    m = matrix(values.tolist())
    hits = np.zeros((n, width), dtype=bool)
    for col in range(60, width):
        hits[:, col] = analyzer.evaluate(m, col).status == ANOMALY
    found = hits.sum(axis=1)
    assert (found[shifted] >= 1).all()
    first = hits[shifted].argmax(axis=1)
    assert (np.abs(first - starts[shifted] - 1) <= 1).all()
    # Once per shift: a second report would need the level to move again.
    assert (found[shifted] == 1).mean() > 0.99
    assert found[~shifted].mean() < 0.01
