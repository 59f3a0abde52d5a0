"""The alert chart: today (bold) against yesterday and a week ago, the anomaly marked."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.numbers import format_value
from vigil.timeutil import get_zone

if TYPE_CHECKING:
    from matplotlib.axes import Axes


@dataclass(frozen=True)
class ChartData:
    """Aligned series for one chart; overlays are already shifted onto today's times."""

    title: str
    subtitle: str
    times: list[datetime]
    current: np.ndarray
    overlays: dict[str, np.ndarray]
    anomaly_at: datetime
    lower: float | None = None
    upper: float | None = None
    current_label: str = "today"
    deviation: float | None = None  # shown in the title
    number_format: str = "number"  # the metric's: a CTR's axis in %


MULTIPLES = 4  # other members drawn as small charts under the lead's, at most


def render_chart(data: ChartData, tz: str, others: Sequence[ChartData] = ()) -> bytes:
    """A PNG of the chart, y axis from 0, times in the project's zone; with `others` (an
    incident's other members, up to four), small charts of them below, in one image that
    stays readable at a phone's width."""
    plt, mdates = pyplot()
    zone = get_zone(tz)
    small = list(others)[:MULTIPLES]
    rows = 0 if not small else (1 if len(small) <= 2 else 2)
    fig = plt.figure(figsize=(7.6, 4.4 + 2.3 * rows), dpi=110)
    try:
        grid = fig.add_gridspec(1 + rows, 2, height_ratios=[2.2] + [1.0] * rows, hspace=0.6)
        ax = fig.add_subplot(grid[0, :])
        times = mdates.date2num([t.astimezone(zone) for t in data.times])
        styles = [("#8c8c8c", "--"), ("#5b9bd5", ":")]
        for (label, values), (color, dash) in zip(data.overlays.items(), styles, strict=False):
            ax.plot(times, values, color=color, linestyle=dash, linewidth=1.4, label=label)
        ax.plot(times, data.current, color="#1f3a93", linewidth=2.6, label=data.current_label)
        _mark_anomaly(ax, data, times)
        _style(ax, data, zone, tz)
        for i, other in enumerate(small):
            _small(fig.add_subplot(grid[1 + i // 2, i % 2]), other, zone)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _small(ax: Axes, data: ChartData, zone: Any) -> None:
    """One other member: today against yesterday, its anomaly marked, its change in the title."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    _, mdates = pyplot()
    times = mdates.date2num([t.astimezone(zone) for t in data.times])
    for values in list(data.overlays.values())[:1]:
        ax.plot(times, values, color="#8c8c8c", linestyle="--", linewidth=1.0)
    ax.plot(times, data.current, color="#1f3a93", linewidth=1.8)
    if data.anomaly_at in data.times:
        i = data.times.index(data.anomaly_at)
        ax.scatter([times[i]], [data.current[i]], s=30, color="#d62728", zorder=5)
    ax.set_title(_titled(data.subtitle, data.deviation), fontsize=10, loc="left")
    peaks = [float(np.nanmax(v)) for v in _all(data) if np.isfinite(v).any()]
    ax.set_ylim(0, (max(peaks) if peaks and max(peaks) > 0 else 1.0) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(3))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, data.number_format)))
    ax.xaxis.set_major_locator(mdates.HourLocator(byhour=[0, 8, 16], tz=zone))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))
    ax.tick_params(labelsize=9)
    ax.grid(True, alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _titled(text: str, deviation: float | None) -> str:
    if deviation is None or deviation != deviation:
        return text
    return f"{text}  {deviation * 100:+.0f}%"


def pyplot() -> tuple[Any, Any]:
    """matplotlib, imported on the first chart: it costs about half a second of start-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    return plt, mdates


def _mark_anomaly(ax: Axes, data: ChartData, times: np.ndarray) -> None:
    if data.anomaly_at not in data.times:
        return
    index = data.times.index(data.anomaly_at)
    x, value = float(times[index]), float(data.current[index])
    ax.axvline(x, color="#d62728", alpha=0.15, linewidth=6)
    if data.lower is not None and data.upper is not None:
        ax.vlines(
            [x], data.lower, data.upper, color="#2ca02c", linewidth=3, alpha=0.7, label="expected"
        )
    if value == value:
        ax.scatter([x], [value], s=90, color="#d62728", zorder=5, label="anomaly")
        ax.annotate(
            format_value(value, data.number_format),
            (x, value),
            textcoords="offset points",
            xytext=(6, 8),
            color="#d62728",
            fontsize=10,
            fontweight="bold",
        )


def _style(ax: Axes, data: ChartData, zone: Any, tz: str) -> None:
    from matplotlib.ticker import FuncFormatter

    _, mdates = pyplot()
    title = _titled(data.title, data.deviation)
    ax.set_title(f"{title}\n{data.subtitle}", fontsize=13, loc="left")
    peaks = [float(np.nanmax(v)) for v in _all(data) if np.isfinite(v).any()]
    top = max(peaks) if peaks and max(peaks) > 0 else 1.0
    ax.set_ylim(0, top * 1.15)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_value(v, data.number_format)))
    span = data.times[-1] - data.times[0] if data.times else None
    if span is None or span.days < 2:  # a day: round hours, the date and zone below
        ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 4), tz=zone))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=zone))
        ax.set_xlabel(f"{data.anomaly_at.astimezone(zone):%a %d %b %Y} · {tz}", fontsize=10)
    else:
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d", tz=zone))
        ax.set_xlabel(tz, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", ncol=3, fontsize=9, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=10)


def _all(data: ChartData) -> list[np.ndarray]:
    return [data.current, *data.overlays.values()]
