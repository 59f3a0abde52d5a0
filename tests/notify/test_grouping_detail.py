"""A member line of an incident message: the value the deviation is computed from."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import ProjectFactory
from vigil.config import load_project
from vigil.model import (
    Alert,
    AlertStatus,
    AnalysisResult,
    Bucket,
    Segment,
    SeriesKey,
    Severity,
    Status,
)
from vigil.notify.grouping import _detail
from vigil.timeutil import Granularity

T = datetime(2024, 5, 9, 12, tzinfo=UTC)


def _alert(value: float, mean: float) -> Alert:
    result = AnalysisResult(
        analyzer="day_week",
        analyzer_type="same_time_comparison",
        series=SeriesKey("actions", Segment.of({"os": "iOS"})),
        bucket=Bucket(T, Granularity.parse("15m")),
        status=Status.ANOMALY,
        value=value,
        expected_lower=435.2,
        expected_upper=980.0,
        deviation=-0.364,
        baselines={"current_mean": mean, "lag_1d": 440.0},
        reason="",
    )
    return Alert("main", Severity.HIGH, result, AlertStatus.NOTIFY, T)


def test_a_member_shows_the_compared_mean_first_and_the_bucket_value_beside_it(
    project_dir: ProjectFactory,
) -> None:
    project = load_project(project_dir.root, env={})
    line = _detail(project, [_alert(32, 280.33)])
    assert line == (
        "Actions · os=iOS: 280.3 (mean of the compared buckets; last bucket 32)"
        " (expected 435.2 – 980), -36.4% [day_week]"
    )
    same = _detail(project, [_alert(280.3, 280.3)])
    assert same.startswith("Actions · os=iOS: 280.3 (expected")
