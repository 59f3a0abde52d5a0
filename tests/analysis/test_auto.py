"""`type: auto`: daily seasons, level shifts and spikes without tuning; a score in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.analysis.helpers import build, matrix
from vigil.analysis.auto import REPLAYS, AutoAnalyzer
from vigil.analysis.base import ANOMALY, OK
from vigil.analysis.streaming import (
    LEVEL,
    VALUE,
    AutoParams,
    StreamingDetector,
    seasons_for,
    threshold_rarity,
)


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


def test_a_value_unlike_any_before_scores_even_where_the_forecast_allows_it() -> None:
    rng = np.random.default_rng(5)
    # Two levels visited in turn; 150 sits between them and was never seen.
    values = np.where((np.arange(600) // 50) % 2 == 0, 100.0, 200.0) + rng.normal(0, 1, 600)
    values[550] = 150.0
    detector = StreamingDetector(1, [])
    scores, reasons = [], []
    for v in values:
        scores.append(detector.step(np.array([v]))[0])
        reasons.append(int(detector.reason[0]))
    assert scores[550] >= 0.5
    assert reasons[550] == VALUE
    assert (np.array(scores[100:550]) >= 0.5).sum() <= 3


def test_a_slow_drift_to_a_new_level_is_caught_by_the_level_novelty() -> None:
    rng = np.random.default_rng(13)
    steady = rng.normal(100, 5, 800)
    drift = rng.normal(100, 5, 200) + np.linspace(0, 12, 200)  # under 3 sd per value
    detector = StreamingDetector(1, [])
    scores = [detector.step(np.array([v]))[0] for v in np.concatenate([steady, drift])]
    reasons = []
    for v in rng.normal(112, 5, 100):
        scores.append(detector.step(np.array([v]))[0])
        reasons.append(int(detector.reason[0]))
    late = np.array(scores[800:])
    assert (late >= 0.5).any()
    first = int(np.argmax(late >= 0.5))
    assert ([0] * 200 + reasons)[first] == LEVEL or first < 200
    assert (np.array(scores[100:800]) >= 0.5).sum() <= 3


def test_after_an_anomaly_the_next_steps_are_held_below_the_threshold() -> None:
    rng = np.random.default_rng(17)
    values = rng.normal(50, 1, 500)
    values[400:405] = [90, 95, 100, 105, 110]  # one burst, rising
    detector = StreamingDetector(1, [])
    scores = np.array([detector.step(np.array([v]))[0] for v in values])
    assert scores[400] >= 0.5
    assert (scores[401:500] >= 0.5).sum() <= 1  # the rest of the burst is not news again


def test_on_noise_the_threshold_means_about_one_in_160() -> None:
    rng = np.random.default_rng(19)
    detector = StreamingDetector(20, [])
    scores, rare = [], []
    for _ in range(3000):
        scores.append(detector.step(rng.normal(0, 1, 20)))
        rare.append(detector.rarity() >= threshold_rarity(0.5))
    # The deciding surprise is that rare no more often than its p-value says (the least of
    # four p-values, so at most about three times 1 in 160); on a stationary series less
    # often, as a growing history makes each new value's nearest neighbour closer ...
    share = np.array(rare[200:]).mean()
    assert 0 < share < 3.5 / 160
    # ... and the news rules keep alerts on pure noise rarer still.
    assert (np.array(scores[200:]) >= 0.5).mean() <= share


def test_the_explanation_names_the_surprise_and_how_rare_it_is() -> None:
    values = daily(15)
    peak = 14 * 24 + 6
    dropped = values.copy()
    dropped[peak] = 5000.0
    m = matrix([dropped[: peak + 1].tolist()])
    text = build("auto").evaluate(m, peak).describe(0)
    assert "unlike its history (1 in " in text
    assert text.endswith("got 5,000")


def test_a_night_time_value_at_the_peak_hour_is_news() -> None:
    values = daily(15, noise=0.01)
    peak = 14 * 24 + 6
    values[peak] = values[peak - 12]  # the trough's value, twelve hours early
    detector = StreamingDetector(1, seasons_for(3600))
    scores, reasons = [], []
    for v in values[: peak + 1]:
        scores.append(detector.step(np.array([v]))[0])
        reasons.append(int(detector.reason[0]))
    assert scores[peak] >= 0.5
    assert reasons[peak] != VALUE  # the value itself is common: it is the hour that is not
    assert (np.array(scores[48:peak]) >= 0.5).sum() <= 3


def test_the_bar_rises_slowly_with_the_length_of_the_history() -> None:
    # Without the news rules, a value-novelty score is −log10(p · bar) / scale, where p is
    # the rarity among n earlier surprises and bar = (max(n, base) / base) ** growth.
    params = AutoParams(quiet=0, hold=0)
    detector = StreamingDetector(1, [], params)
    values = np.random.default_rng(23).standard_t(3, 6000)
    checked = {"short": 0, "long": 0}
    for step, value in enumerate(values):
        score = detector.step(np.array([value]))[0]
        if detector.reason[0] != VALUE or not 0 < score < 1:
            continue
        surprises = step - 1  # the first value has nothing to be compared with
        bar = (max(surprises, params.base) / params.base) ** params.growth
        expected = -np.log10(bar / detector.rarity()[0]) / params.scale
        assert score == pytest.approx(expected)
        checked["short" if surprises <= params.base else "long"] += 1
    assert checked["short"] > 10
    assert checked["long"] > 100


def test_consecutive_evaluations_resume_the_replay_with_the_same_results() -> None:
    # 15-minute buckets: a window starts on a day boundary, so one day's evaluations share
    # it and each resumes the last replay. The results must be those of a fresh replay.
    rng = np.random.default_rng(29)
    days, per_day = 16, 96
    t = np.arange(days * per_day)
    rows = 100 + 30 * np.sin(2 * np.pi * t / per_day) + rng.normal(0, 3, (3, len(t)))
    rows[1, -40:] += 60  # a level shift in one series during the evaluated stretch
    m = matrix(rows.tolist(), "15m")
    analyzer = build("auto")
    targets = range(len(t) - 120, len(t))

    def outcome(target: int) -> tuple[list[float], list[str], list[str]]:
        evaluation = analyzer.evaluate(m, target)
        score = evaluation.baselines["score"]
        return (
            score.tolist(),
            evaluation.status.tolist(),
            [evaluation.describe(i) for i in range(3)],
        )

    REPLAYS.clear()
    resumed = {target: outcome(target) for target in targets}
    # A fresh replay costs O(window²): compare at every 10th target, the shift's first buckets
    # and the last one, rather than at all 120.
    shift = len(t) - 40
    sampled = sorted({*targets[::10], shift - 1, shift, shift + 1, targets[-1]})
    for target in sampled:
        REPLAYS.clear()
        assert outcome(target) == resumed[target], target
    assert any(ANOMALY in statuses for _, statuses, _ in resumed.values())
    # A revised value inside the window forces a fresh replay rather than a stale resume.
    revised = matrix(rows.tolist(), "15m")
    revised.values[0, len(t) - 200] += 500
    REPLAYS.clear()
    analyzer.evaluate(m, len(t) - 2)
    again = analyzer.evaluate(revised, len(t) - 1).baselines["score"]
    REPLAYS.clear()
    assert np.array_equal(again, analyzer.evaluate(revised, len(t) - 1).baselines["score"])


def test_a_window_starts_on_a_day_boundary_and_holds_at_least_the_learning_window() -> None:
    m = matrix(np.ones((1, 20 * 96)).tolist(), "15m")
    analyzer = build("auto")
    assert isinstance(analyzer, AutoAnalyzer)
    learning = analyzer.learning(m.granularity)
    for target in (15 * 96, 15 * 96 + 1, 16 * 96 - 1, 16 * 96):
        start = analyzer._start(m, target)
        assert learning <= target - start < learning + 96
        assert int(m.times[start].timestamp()) % 86_400 == 0


def test_kept_replays_stay_within_their_byte_budget_oldest_out_first() -> None:
    from vigil.analysis.auto import _Replay, _Replays

    def replay() -> _Replay:
        return _Replay(StreamingDetector(2, [24]), np.zeros((2, 10)), np.zeros(2))

    size = replay().nbytes
    kept = _Replays(budget=2 * size)
    for key in ("a", "b", "c"):
        kept.put((key,), replay())
    assert kept.total == 2 * size
    assert kept.take(("a",)) is None
    assert kept.take(("b",)) is not None
    assert kept.total == size
    small = _Replays(budget=size - 1)
    small.put(("x",), replay())  # larger than the whole budget: not kept
    assert small.total == 0
    assert small.take(("x",)) is None


def test_the_explanation_and_the_score_agree_and_the_docs_state_the_mapping() -> None:
    params = AutoParams()
    # The score is min(1, log10(N) / scale) of the weighted "1 in N", then the news rules.
    detector = StreamingDetector(1, seasons_for(3600), params)
    values = daily(15, noise=0.05)
    values[200], values[300] = 4000.0, -2000.0
    checked = 0
    for value in values:
        score = float(detector.step(np.array([value]))[0])
        plain = min(1.0, float(np.log10(detector.weighted_rarity()[0])) / params.scale)
        if detector.held[0]:
            assert score == pytest.approx(0.9 * params.threshold)
        elif detector.damped[0]:
            assert score == pytest.approx(plain * params.damping)
        else:
            assert score == pytest.approx(plain)
            checked += 1
    assert checked > 20
    # The explanation prints that N, and never a score that reads as reaching the threshold.
    spiked = daily(15, noise=0.05)
    spiked[-1] = 5000.0
    REPLAYS.clear()
    evaluation = build("auto").evaluate(matrix([spiked.tolist()]), len(spiked) - 1)
    text = evaluation.describe(0)
    score = float(evaluation.baselines["score"][0])
    shown = float(text.split()[1])
    n = float(text.split("(1 in ")[1].split(")")[0].split(";")[0].replace(",", ""))
    assert evaluation.status[0] == ANOMALY
    assert shown <= score
    assert score == pytest.approx(min(1.0, np.log10(n) / params.scale), abs=0.01)
    quiet = daily(15, noise=0.05)
    REPLAYS.clear()
    for target in range(len(quiet) - 24, len(quiet)):
        evaluation = build("auto").evaluate(matrix([quiet.tolist()]), target)
        if evaluation.status[0] != ANOMALY:
            assert float(evaluation.describe(0).split()[1]) < params.threshold
    # The docs' numbers come from the parameters.
    docs = (Path(__file__).parents[2] / "docs" / "analyzers.md").read_text()
    assert f"1 in {round(threshold_rarity(params.threshold), -1):,.0f};" in docs
    assert f"1 is 1 in {round(10**params.scale, -3):,.0f}" in docs
    assert f"`min(1, log10(N) / {params.scale:g})`" in docs
    assert f"multiplied by {params.forecast_factor:g}" in docs
    assert params.forecast_factor == params.season_factor
    assert f"level novelty's by {params.level_factor:g}" in docs
    assert f"`(n / {params.base}) ** {params.growth:g}`" in docs
    assert f"(× {params.damping:g})" in docs
    assert f"last {params.quiet} buckets' peak" in docs
    assert f"next {params.hold} buckets stay below the threshold" in docs
