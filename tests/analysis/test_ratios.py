"""Ratios of two counts (CTR = likes / views) are judged with the counts behind them."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import vigil.analysis.counts as counts_module
from tests.analysis.helpers import build, matrix
from tests.conftest import ProjectFactory
from vigil.analysis.base import ANOMALY, OK
from vigil.analysis.counts import ratio_z
from vigil.analysis.matrix import SeriesMatrix
from vigil.config import load_project
from vigil.config.ratios import ratio_parts
from vigil.errors import ConfigError
from vigil.numbers import written_as

DAY, WEEK = 24, 168  # hourly buckets

LIKES = "count(*) FILTER (WHERE action = 'like')"
VIEWS = "count(*) FILTER (WHERE action = 'view')"
FORMULAS = {"likes": LIKES, "views": VIEWS, "users": "count(DISTINCT user_id)"}


@pytest.mark.parametrize(
    ("formula", "parts"),
    [
        (f"{LIKES}\n / nullif({VIEWS}, 0)", ("likes", "views")),
        (f"CAST({VIEWS} AS DOUBLE) / COUNT(DISTINCT user_id)", ("views", "users")),
        (f"({LIKES}) / (NULLIF(count(distinct user_id), 0))", ("likes", "users")),
        (f"{LIKES} / 2", None),  # not a metric
        (f"{LIKES} * 100 / {VIEWS}", None),  # a percentage of parts, not their ratio
        ("avg(price)", None),
        ("count(*) / ((", None),  # does not parse: no ratio, no crash
    ],
)
def test_a_formula_dividing_two_metrics_is_their_ratio(
    formula: str, parts: tuple[str, str] | None
) -> None:
    assert ratio_parts(formula, FORMULAS) == parts


def _ratio(x: list[float], n: list[float]) -> SeriesMatrix:
    """One row: the ratio x/n, with its parts."""
    values = np.array(x) / np.array(n)
    base = matrix([values.tolist()])
    return replace(base, parts=(np.array([x], dtype=float), np.array([n], dtype=float)))


def test_the_documented_examples_follow_from_the_formula() -> None:
    # counts.py: a CTR falling from 10% to 5% on 20 views is z ≈ −0.7; on 2,000 views z ≈ −7.
    doc = counts_module.__doc__ or ""
    small_doc, large_doc = (float(v.replace("−", "-")) for v in re.findall(r"z ≈ (−?[\d.]+)", doc))
    for views, documented in ((20, small_doc), (2000, large_doc)):
        x = [views * 0.1] * 24 + [views * 0.05]
        n = [float(views)] * 25
        z = ratio_z(np.array([x]), np.array([n]), np.arange(24), np.array([24]))
        assert round(float(z[0]), 1 if abs(documented) < 1 else 0) == documented


def test_a_small_ratio_change_is_noise_a_large_one_is_not_in_the_band() -> None:
    band = build("stddev", window=24, factor=3)
    rng = np.random.default_rng(1)
    for views, expected in ((20, OK), (2000, ANOMALY)):
        n = [float(views)] * 25
        x = [float(rng.binomial(views, 0.1)) for _ in range(24)] + [views * 0.05]
        # The band of a small series is tight by chance; pin it so only the test decides.
        m = _ratio(x, n)
        m = replace(m, values=np.array([[0.1 + 0.001 * (i % 2) for i in range(24)] + [0.05]]))
        assert band.evaluate(m, 24).status.tolist() == [expected], views
        unguarded = build("stddev", window=24, factor=3, min_significance=None)
        assert unguarded.evaluate(m, 24).status.tolist() == [ANOMALY]


def test_a_small_ratio_change_is_noise_a_large_one_is_not_against_the_same_time() -> None:
    same_time = build("same_time_comparison", buckets=1, threshold=0.3)
    for views, expected in ((20, OK), (2000, ANOMALY)):
        n = [float(views)] * (WEEK + 1)
        x = [views * 0.1] * WEEK + [views * 0.05]
        result = same_time.evaluate(_ratio(x, n), WEEK)
        assert result.status.tolist() == [expected], views
        assert "against the counts behind the ratio" in result.describe(0)


def test_ratio_metrics_find_their_parts_and_a_wrong_ratio_of_is_named(tmp_path: Path) -> None:
    metrics = f"""\
datasets:
  - name: events
    source: app
    table: events
    time_column: time
    metrics:
      - name: likes
        formula: "{LIKES}"
      - name: views
        formula: "{VIEWS}"
      - name: ctr
        formula: "{LIKES} / nullif({VIEWS}, 0)"
        fill: missing
      - name: odd
        formula: "sum(weight) / 3"
        ratio_of: [likes, views]
        fill: missing
"""
    monitors = "analyzers:\n  - {id: band, type: stddev, metrics: [ctr]}\nmonitors: []\n"
    root = ProjectFactory(tmp_path).write(
        {"metrics/events.yaml": metrics, "monitors/main.yaml": monitors}
    )
    project = load_project(root, env={})
    assert project.metric("ctr").ratio_of == ("likes", "views")
    assert project.metric("odd").ratio_of == ("likes", "views")
    assert project.metric("likes").ratio_of is None
    (root / "metrics/events.yaml").write_text(metrics.replace("[likes, views]", "[likes, clicks]"))
    with pytest.raises(ConfigError) as error:
        load_project(root, env={})
    text = str(error.value)
    assert "events.yaml" in text
    assert "ratio_of names 'clicks'" in text
    assert "likes, views" in text  # what would do


def test_reasons_are_written_in_the_metrics_format() -> None:
    floor = build("fixed", lower=0.1)
    result = floor.evaluate(matrix([[0.2, 0.06063]]), 1)
    with written_as("percent"):
        assert result.describe(0) == "6.063% is below the lower bound 10%"
    assert result.describe(0) == "0.06063 is below the lower bound 0.1"  # a plain number
