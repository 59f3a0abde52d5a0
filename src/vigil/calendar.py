"""Holidays: days whose values are not a baseline for normal days (and may be muted).

Public holidays come from the `holidays` package (ISO 3166 country codes, with its own rules
for moving feasts and observed days); a project adds its own dates (a company shutdown, a
sales event). The package is imported only when a project names countries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

import numpy as np

from vigil.timeutil import get_zone


@dataclass(frozen=True)
class Calendar:
    """The holidays of a project: public ones of `countries` and its own `dates`."""

    countries: tuple[str, ...] = ()
    dates: frozenset[date] = frozenset()
    mute: bool = False

    def is_holiday(self, day: date) -> bool:
        """Whether `day` (a local date) is a holiday."""
        return day in self.dates or any(day in _country_days(c, day.year) for c in self.countries)

    def covers(self, instant: datetime, tz: str) -> bool:
        """Whether `instant` falls on a holiday in zone `tz`."""
        return self.is_holiday(instant.astimezone(get_zone(tz)).date())

    def mask(self, times: list[datetime], tz: str) -> np.ndarray:
        """Per bucket start, whether its local date is a holiday."""
        zone = get_zone(tz)
        days = [t.astimezone(zone).date() for t in times]
        found = {d: self.is_holiday(d) for d in set(days)}
        return np.array([found[d] for d in days], dtype=bool)


def supported_countries() -> list[str]:
    """The country codes the holidays package knows."""
    import holidays

    return sorted(holidays.list_supported_countries())


@lru_cache(maxsize=512)
def _country_days(country: str, year: int) -> frozenset[date]:
    import holidays

    return frozenset(holidays.country_holidays(country, years=year).keys())
