"""The alert chart: today (bold) against yesterday and a week ago, the anomaly marked."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.numbers import format_number
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


def render_chart(data: ChartData, tz: str) -> bytes:
    """A PNG of the chart, y axis from 0, times in the project's zone."""
    plt, mdates = _pyplot()
    zone = get_zone(tz)
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    try:
        times = mdates.date2num([t.astimezone(zone) for t in data.times])
        styles = [("#8c8c8c", "--"), ("#5b9bd5", ":")]
        for (label, values), (color, dash) in zip(data.overlays.items(), styles, strict=False):
            ax.plot(times, values, color=color, linestyle=dash, linewidth=1.4, label=label)
        ax.plot(times, data.current, color="#1f3a93", linewidth=2.6, label=data.current_label)
        _mark_anomaly(ax, data, times)
        _style(ax, data, zone)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _pyplot() -> tuple[Any, Any]:
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
            format_number(value),
            (x, value),
            textcoords="offset points",
            xytext=(6, 8),
            color="#d62728",
            fontsize=10,
            fontweight="bold",
        )


def _style(ax: Axes, data: ChartData, zone: object) -> None:
    from matplotlib.ticker import FuncFormatter

    _, mdates = _pyplot()
    ax.set_title(f"{data.title}\n{data.subtitle}", fontsize=12, loc="left")
    ax.set_ylim(bottom=0)
    peaks = [float(np.nanmax(v)) for v in _all(data) if np.isfinite(v).any()]
    top = max(peaks) if peaks and max(peaks) > 0 else 1.0
    ax.set_ylim(0, top * 1.15)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: format_number(v)))
    span = data.times[-1] - data.times[0] if data.times else None
    fmt = "%H:%M" if span is None or span.days < 2 else "%b %d"
    formatter = mdates.DateFormatter(fmt, tz=zone)
    ax.xaxis.set_major_formatter(formatter)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=5, fontsize=9, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def _all(data: ChartData) -> list[np.ndarray]:
    return [data.current, *data.overlays.values()]
