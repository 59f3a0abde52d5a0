"""Drift distances, frequent-item comparisons and the other value comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from tests.analysis.helpers import build, matrix, with_payloads
from vigil.analysis.base import ANOMALY, INSUFFICIENT, NO_DATA, OK
from vigil.sketches import distance, distributions, histogram_payload, items_payload

BASE = np.array([0.5, 0.5])
MOVED = np.array([0.9, 0.1])


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        # √(1 − (√0.45 + √0.05))
        ("hellinger", 0.324920),
        # m = (0.7, 0.3): √(½·(0.125769 + 0.167817)) with base-2 logarithms
        ("jensenshannon", 0.383137),
        # 0.9·ln 1.8 + 0.1·ln 0.2
        ("kl_divergence", 0.368064),
        # 0.4·ln 1.8 + 0.4·ln 5
        ("psi", 0.878890),
    ],
)
def test_distances_by_hand(algorithm: str, expected: float) -> None:
    assert distance(algorithm, BASE, MOVED) == pytest.approx(expected, abs=1e-4)
    assert distance(algorithm, BASE, BASE) == pytest.approx(0.0, abs=1e-6)


def items(*pairs: tuple[str, int]) -> dict[str, object]:
    payload = items_payload(pairs)
    assert payload is not None
    return payload


def uniform(low: float, high: float, n: int = 1000) -> dict[str, object]:
    payload = histogram_payload(n, np.linspace(low, high, 101).tolist())
    assert payload is not None
    return payload


def test_item_distributions_add_an_other_bin() -> None:
    base, target, labels = distributions([items(("a", 5), ("b", 5))], items(("a", 9), ("c", 1)), 10)
    assert labels == ["a", "b", "c", "(other)"]
    assert base.tolist() == [0.5, 0.5, 0.0, 0.0]
    assert target.tolist() == [0.9, 0.0, 0.1, 0.0]


def test_quantile_histograms_compare_on_the_baselines_bins() -> None:
    same, moved, _ = distributions([uniform(0, 10), uniform(0, 10)], uniform(0, 10), 10)
    assert np.allclose(same, moved)
    base, target, _ = distributions([uniform(0, 10)], uniform(5, 15), 10)
    # Half of the target lies above the baseline's range, in the last (open) bin, where the
    # baseline has nothing; a tenth of each lies in the baseline's top decile (9, 10].
    assert target[-1] == pytest.approx(0.5, abs=0.01)
    assert base[-1] == 0
    assert (base[-2], target[-2]) == pytest.approx((0.1, 0.1), abs=0.01)
    assert base[:-1].sum() == pytest.approx(1.0)


def test_drift_analyzer_flags_a_moved_distribution_and_explains_it() -> None:
    m = with_payloads(
        matrix([[1000.0] * 4, [1000.0] * 4, [1000.0] * 4, [1000.0] * 4]),
        [
            [uniform(0, 10)] * 3 + [uniform(0, 10)],
            [uniform(0, 10)] * 3 + [uniform(20, 30)],
            [None, None, None, uniform(0, 10)],
            [uniform(0, 10)] * 3 + [None],
        ],
    )
    result = build(
        "drift", metrics=["x.histogram"], baseline={"type": "trailing_window", "size": 3}
    ).evaluate(m, 3)
    assert result.status.tolist() == [OK, ANOMALY, INSUFFICIENT, NO_DATA]
    assert result.deviation[0] == pytest.approx(0.0, abs=1e-6)
    assert result.deviation[1] == pytest.approx(1.0)
    assert "hellinger distance 1.000 (threshold 0.7)" in result.describe(1)


def test_frequent_string_operators() -> None:
    before = items(("ios", 5), ("android", 5))
    after = items(("ios", 5), ("web", 5))
    m = with_payloads(matrix([[10.0, 10]]), [[before, after]])
    base = {"baseline": {"type": "trailing_window", "size": 1}}
    eq = build("frequent_string_comparison", operator="eq", metrics=["os.frequent_items"], **base)
    result = eq.evaluate(m, 1)
    assert result.status.tolist() == [ANOMALY]
    assert result.describe(0) == "new: 'web'; missing: 'android'"
    grown = with_payloads(
        matrix([[10.0, 10]]), [[before, items(("ios", 1), ("android", 1), ("web", 1))]]
    )
    keeps = build(
        "frequent_string_comparison",
        operator="target_includes_all_baseline",
        metrics=["os.frequent_items"],
        **base,
    )
    assert keeps.evaluate(grown, 1).status.tolist() == [OK]
    closed = build(
        "frequent_string_comparison",
        operator="baseline_includes_all_target",
        metrics=["os.frequent_items"],
        **base,
    )
    assert closed.evaluate(grown, 1).status.tolist() == [ANOMALY]


def test_items_are_cut_to_128_characters() -> None:
    payload = items(("x" * 300, 1))
    assert len(payload["items"][0][0]) == 128  # type: ignore[index]


def test_list_comparison_in_and_not_in() -> None:
    m = matrix([[0.0, 1.0], [0.0, 2.0], [0.0, np.nan]])
    allowed = build("list_comparison", operator="in", expected=[0, 1]).evaluate(m, 1)
    assert allowed.status.tolist() == [OK, ANOMALY, NO_DATA]
    assert allowed.describe(1) == "2 is not in [0, 1]"
    banned = build("list_comparison", operator="not_in", expected=[2.0]).evaluate(m, 1)
    assert banned.status.tolist() == [OK, ANOMALY, NO_DATA]


def test_list_comparison_against_baseline_values_and_inferred_types() -> None:
    m = matrix([[3.0, 4.0, 3.0], [3.0, 4.0, 5.0]])
    from_baseline = build(
        "list_comparison", operator="in", baseline={"type": "trailing_window", "size": 2}
    )
    assert from_baseline.evaluate(m, 2).status.tolist() == [OK, ANOMALY]
    typed = with_payloads(
        matrix([[10.0], [10.0]]),
        [[{"kind": "type", "value": "integral"}], [{"kind": "type", "value": "string"}]],
    )
    numeric = build("list_comparison", operator="in", expected=["integral", "fractional"])
    assert numeric.evaluate(typed, 0).status.tolist() == [OK, ANOMALY]


@pytest.mark.parametrize(
    ("op", "statuses"),
    [
        ("eq", [ANOMALY, OK, ANOMALY]),
        ("gt", [ANOMALY, ANOMALY, OK]),
        ("lt", [OK, ANOMALY, ANOMALY]),
        ("ge", [ANOMALY, OK, OK]),
        ("le", [OK, OK, ANOMALY]),
    ],
)
def test_comparison_operator_states_the_healthy_relation(op: str, statuses: list[int]) -> None:
    m = matrix([[4.0], [5.0], [6.0]])
    assert build("comparison", operator=op, expected=5).evaluate(m, 0).status.tolist() == statuses


def test_comparison_without_expected_uses_the_baseline_mean() -> None:
    m = matrix([[2.0, 4.0, 3.0], [2.0, 4.0, 7.0]])
    result = build(
        "comparison", operator="le", baseline={"type": "trailing_window", "size": 2}
    ).evaluate(m, 2)
    assert result.status.tolist() == [OK, ANOMALY]
    assert result.describe(1) == "7 ≤ 3 fails"


def test_monotonic_counts_steps_in_the_direction() -> None:
    m = matrix([[1.0, 2, 3, 4], [1.0, 2, 2, 4], [4.0, 3, 2, 1], [1.0, np.nan, 3, 4]])
    rising = build("monotonic", direction="INCREASING", num_buckets=3)
    result = rising.evaluate(m, 3)
    assert result.status.tolist() == [ANOMALY, OK, OK, OK]
    assert result.describe(0) == "3 rising steps over the last 4 buckets (anomaly at 3)"
    # A gap is skipped: 1 → 3 → 4 is two rising steps.
    assert result.baselines["steps"][3] == 2
    falling = build("monotonic", direction="decreasing", num_buckets=3)
    assert falling.evaluate(m, 3).status.tolist() == [OK, OK, ANOMALY, OK]


def test_monotonic_with_a_wider_window_counts_all_steps() -> None:
    # 5 steps (6 values): 4 rising, 1 falling; num_buckets 4 → anomaly.
    m = matrix([[1.0, 2, 3, 2, 4, 5]])
    wide = build("monotonic", direction="increasing", num_buckets=4, window=4, target_size=2)
    assert wide.evaluate(m, 5).status.tolist() == [ANOMALY]
