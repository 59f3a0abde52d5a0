"""The alert chart: one image, the lead member large and up to four others small below it."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
from matplotlib import image

from vigil.notify.chart import ChartData, render_chart

T0 = datetime(2024, 5, 9, tzinfo=UTC)
TIMES = [T0 + i * timedelta(minutes=15) for i in range(96)]


def _data(name: str, fmt: str = "number") -> ChartData:
    level = np.full(96, 0.2 if fmt == "percent" else 400.0)
    today = level.copy()
    today[80:] *= 0.3
    today[85:] = np.nan
    return ChartData(
        title=name,
        subtitle=f"{name} · os=Android",
        times=TIMES,
        current=today,
        overlays={"yesterday": level, "week ago": level},
        anomaly_at=TIMES[84],
        lower=level[0] * 0.7,
        upper=level[0] * 1.3,
        deviation=-0.7,
        number_format=fmt,
    )


def _size(png: bytes) -> tuple[int, int]:
    height, width = image.imread(io.BytesIO(png)).shape[:2]
    return width, height


def test_other_members_are_small_multiples_in_the_same_image() -> None:
    alone = _size(render_chart(_data("Likes"), "UTC"))
    two = _size(render_chart(_data("Likes"), "UTC", [_data("Views"), _data("CTR", "percent")]))
    four = _size(render_chart(_data("Likes"), "UTC", [_data(n) for n in "ABCD"]))
    six = _size(render_chart(_data("Likes"), "UTC", [_data(n) for n in "ABCDEF"]))
    assert alone[1] < two[1] < four[1]
    assert six == four  # at most four small charts
    # Wide enough to read when a phone shows it 390 px wide (about half size), not wider.
    assert all(700 <= width <= 900 for width, _ in (alone, two, four))
