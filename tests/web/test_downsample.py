"""Thinning a long series keeps every bin's extremes, so spikes and dips stay visible."""

from __future__ import annotations

import numpy as np

from vigil.web.downsample import band_envelope, extreme_indices


def test_short_series_are_kept_whole() -> None:
    assert extreme_indices(np.arange(10.0), 5).tolist() == list(range(10))


def test_each_bin_keeps_its_minimum_and_maximum() -> None:
    values = np.sin(np.linspace(0, 20, 35_040))
    values[12_345] = 50.0  # a spike
    values[30_000] = -50.0  # a dip
    keep = extreme_indices(values, 500)
    assert len(keep) <= 1000
    assert 12_345 in keep
    assert 30_000 in keep
    assert values[keep].max() == 50.0
    assert values[keep].min() == -50.0
    assert np.all(np.diff(keep) > 0)


def test_gaps_stay_gaps_and_the_band_only_widens() -> None:
    values = np.arange(100.0)
    values[40:60] = np.nan
    keep = extreme_indices(values, 10)
    assert np.isnan(values[keep]).any()  # the empty bins show as gaps
    lower, upper = values - 5, values + 5
    lower[keep[3] + 1] = -1000.0  # a wide point that thinning drops
    low, high = band_envelope(lower, upper, keep)
    assert np.nanmin(low) == -1000.0
    assert len(low) == len(high) == len(keep)
