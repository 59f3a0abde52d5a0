"""Durations, granularities and time parsing; every instant is a UTC-aware datetime."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
DAY = timedelta(days=1)


def parse_duration(text: str) -> timedelta:
    """Parse `15m`, `3h`, `1d`, `2w`, `90s` or ISO 8601 `PT15M`; raise ValueError otherwise."""
    match = _DURATION.match(text)
    if match:
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        return _bounded(seconds, text)
    iso = _ISO_DURATION.match(text.strip().upper())
    if iso and any(iso.groupdict().values()):
        parts = {k: int(v or 0) for k, v in iso.groupdict().items()}
        seconds = float(
            parts["w"] * 604800
            + parts["d"] * 86400
            + parts["h"] * 3600
            + parts["m"] * 60
            + parts["s"]
        )
        return _bounded(seconds, text)
    raise ValueError(f"'{text}' is not a duration; expected a number and a unit like 15m, 3h, 1d")


# Longer durations are typing mistakes; they would also overflow date arithmetic.
MAX_DURATION = timedelta(days=100 * 366)


def _bounded(seconds: float, text: str) -> timedelta:
    if not seconds <= MAX_DURATION.total_seconds():
        raise ValueError(f"'{text}' is longer than 100 years; expected a duration like 15m, 1d")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """Shortest `15m` / `3h` / `1d` form of a duration."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def get_zone(name: str) -> ZoneInfo:
    """Look up an IANA time zone; raise ValueError with the expectation if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise ValueError(f"'{name}' is not a known time zone; expected an IANA name") from e


MONTH_SECONDS = 30 * 86400  # the code a month is stored under; months are calendar months
_GRANULARITY_NAMES = {
    "hourly": "1h",
    "daily": "1d",
    "weekly": "1w",
    "monthly": "1mo",
    "month": "1mo",
    "1month": "1mo",
    "p1m": "1mo",
}


@dataclass(frozen=True, order=True)
class Granularity:
    """A bucket width: sub-daily widths align to UTC epoch; days, weeks (from Monday) and
    months start at local midnight in the project's zone."""

    seconds: int
    tz: str = "UTC"

    @classmethod
    def parse(cls, text: str, tz: str = "UTC") -> Granularity:
        """Parse `15m`, `1h`, `1d`, `1w`, `1mo` (or hourly, daily, weekly, monthly, PT1H…)."""
        name = _GRANULARITY_NAMES.get(text.strip().lower(), text.strip())
        if name.lower() == "1mo":
            return cls(MONTH_SECONDS, tz)
        seconds = int(parse_duration(name).total_seconds())
        day = 86400
        if not ((0 < seconds < day and day % seconds == 0) or seconds in (day, 7 * day)):
            raise ValueError(
                f"'{text}' is not a supported granularity; expected a width that divides a day"
                " (5m, 15m, 1h, ...) or 1d, 1w or 1mo"
            )
        return cls(seconds, tz)

    @property
    def is_month(self) -> bool:
        """Whether buckets are calendar months."""
        return self.seconds == MONTH_SECONDS

    @property
    def step(self) -> timedelta:
        """The nominal width of one bucket."""
        return timedelta(seconds=self.seconds)

    @property
    def name(self) -> str:
        """Short name such as `15m`, `1d` or `1mo`."""
        return "1mo" if self.is_month else format_duration(self.step)

    @property
    def is_calendar(self) -> bool:
        """Whether buckets follow local midnights (days, weeks) rather than fixed UTC steps."""
        return self.seconds >= 86400

    def floor(self, instant: datetime) -> datetime:
        """Start of the bucket that contains `instant`."""
        instant = as_utc(instant)
        if not self.is_calendar:
            epoch = int(instant.timestamp())
            return datetime.fromtimestamp(epoch - epoch % self.seconds, UTC)
        zone = get_zone(self.tz)
        local_day = instant.astimezone(zone).date()
        if self.is_month:
            local_day = local_day.replace(day=1)
        elif self.seconds == 7 * 86400:
            local_day -= timedelta(days=local_day.weekday())
        return _local_midnight(local_day, zone)

    def next(self, start: datetime) -> datetime:
        """Start of the bucket after the one starting at `start`."""
        return self.shift(start, 1)

    def shift(self, start: datetime, count: int) -> datetime:
        """Start of the bucket `count` buckets after (negative: before) `start`."""
        if not self.is_calendar:
            return as_utc(start) + count * self.step
        zone = get_zone(self.tz)
        local_day = as_utc(start).astimezone(zone).date()
        if self.is_month:
            months = local_day.year * 12 + local_day.month - 1 + count
            return _local_midnight(date(months // 12, months % 12 + 1, 1), zone)
        return _local_midnight(local_day + timedelta(days=count * self.seconds // 86400), zone)

    def range(self, start: datetime, end: datetime) -> list[datetime]:
        """Starts of every bucket that begins in [start, end)."""
        current = self.floor(start)
        if current < as_utc(start):
            current = self.next(current)
        end = as_utc(end)
        if not self.is_calendar:
            count = max(0, -(-int((end - current).total_seconds()) // self.seconds))
            return list(_fixed_range(current, self.step, count))
        out: list[datetime] = []
        while current < end:
            out.append(current)
            current = self.next(current)
        return out

    def last_complete(self, at: datetime) -> datetime:
        """Start of the latest bucket that has fully ended at `at`."""
        current = self.floor(at)
        return self.shift(current, -1)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def as_utc(instant: datetime) -> datetime:
    """The same instant as a UTC-aware datetime; naive values are taken as UTC."""
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    return instant.astimezone(UTC)


def to_naive_utc(instant: datetime) -> datetime:
    """The instant as a naive UTC datetime, the form the stores and SQL sources use."""
    return as_utc(instant).replace(tzinfo=None)


def parse_instant(text: str, tz: str = "UTC", now: datetime | None = None) -> datetime:
    """Parse ISO 8601 (`2024-05-01T12:00`, with or without offset), `now` or `now-2h`."""
    raw = text.strip()
    lowered = raw.lower()
    if lowered.startswith("now"):
        base = as_utc(now or datetime.now(UTC))
        rest = lowered[3:].strip()
        if not rest:
            return base
        sign = -1 if rest[0] == "-" else 1
        if rest[0] not in "+-":
            raise ValueError(f"'{text}' is not a time; expected ISO 8601 or now-2h")
        try:
            return base + sign * parse_duration(rest[1:])
        except OverflowError:
            raise ValueError(f"'{text}' is out of the range of dates") from None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(
            f"'{text}' is not a time; expected ISO 8601 like 2024-05-01T12:00 or now-2h"
        ) from e
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=get_zone(tz))
    return parsed.astimezone(UTC)


def parse_clock(text: str) -> time:
    """Parse a time of day `HH:MM`."""
    try:
        return time.fromisoformat(text.strip())
    except ValueError as e:
        raise ValueError(f"'{text}' is not a time of day; expected HH:MM like 00:30") from e


def in_daily_window(instant: datetime, start: time, end: time, tz: str) -> bool:
    """Whether the local time of `instant` lies in [start, end), wrapping past midnight."""
    local = as_utc(instant).astimezone(get_zone(tz)).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end


@lru_cache(maxsize=256)
def _fixed_range(first: datetime, step: timedelta, count: int) -> tuple[datetime, ...]:
    """`count` bucket starts `step` apart (cached: every analysis of a cycle asks the same)."""
    return tuple(first + i * step for i in range(count))
