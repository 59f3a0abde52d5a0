"""The analyzers a project gets by writing none: the recommended default.

One same-time comparison of every metric and slice against the same time a day and a week
ago, chosen on simulated apps (`vigil bench scenarios`, docs/detection-quality.md) to catch
level drops, spikes and broken ratios of 30% or more within 30 minutes, and to stay quiet on
small slices at night (the count test) and on uniformly quieter days (the level window):

- the mean of the last 2 buckets (a change shows in full after 30 minutes);
- `threshold: 0.2` — a drop to 80% or a rise to 125% against both lags;
- `level_window: 4h` — each lag's baseline scaled by how the 4 hours before ran against the
  same hours at the lag (within ±25%), so a holiday running 15% low all day is its own normal;
- `min_significance: 0.001` (its default) — for counts and ratios of counts, the change must
  also be unlikely under the series' own noise.

A stalled source is told by the pipeline's "No data" message, which needs no analyzer.
"""

from __future__ import annotations

from datetime import timedelta

from vigil.config.schema import AnalyzerConfig, MonitorConfig, ProjectFile, SameTimeComparisonConfig

RECOMMENDED_ID = "recommended"
DEFAULT_MONITOR = "default"


def recommended_analyzers() -> dict[str, AnalyzerConfig]:
    """The recommended analyzer set, by id."""
    return {
        RECOMMENDED_ID: SameTimeComparisonConfig(
            id=RECOMMENDED_ID,
            type="same_time_comparison",
            metrics=["*"],
            buckets=2,
            threshold=0.2,
            lags=[timedelta(days=1), timedelta(days=7)],
            level_window=timedelta(hours=4),
            min_significance=0.0001,
        )
    }


def default_monitor(settings: ProjectFile) -> dict[str, MonitorConfig]:
    """The monitor of the recommended set: to `defaults.channels`, or every channel."""
    channels = list(settings.defaults.channels) or sorted(settings.channels)
    return {
        DEFAULT_MONITOR: MonitorConfig(
            id=DEFAULT_MONITOR, analyzers=[RECOMMENDED_ID], channels=channels
        )
    }
