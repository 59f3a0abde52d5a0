"""The store's hourly and daily views: `(metric, segment, date, hour) → value` for BI tools.

`hourly_values` and `daily_values` read the values stored at 1-hour and 1-day buckets — a
dataset's own, or the coarser ones `rollups: [1h, 1d]` keeps current each cycle — with the
bucket's date (and hour) in the project's zone, like a reporting model's HourlyValue and
DailyValue tables. They are views, so they are always current; they are (re)made each time
the store's schema is brought up to date, in the project's zone then.
"""

from __future__ import annotations

HOUR, DAY = 3600, 86400


def rollup_views(dialect: str, tz: str) -> list[str]:
    """CREATE OR REPLACE VIEW statements for the backend (`sql`: DuckDB and PostgreSQL)."""
    zone = tz.replace("'", "''")
    if dialect == "clickhouse":
        local = f"toTimeZone(toDateTime64(bucket, 6, 'UTC'), '{zone}')"
        hour, date, final = f"toHour({local})", f"toDate({local})", " FINAL"
    else:
        local = f"((bucket AT TIME ZONE 'UTC') AT TIME ZONE '{zone}')"
        hour = f"CAST(EXTRACT(HOUR FROM {local}) AS INTEGER)"
        date, final = f"CAST({local} AS DATE)", ""
    return [
        "CREATE OR REPLACE VIEW hourly_values AS"
        f" SELECT metric, segment, bucket AS bucket_utc, {date} AS date, {hour} AS hour, value"
        f" FROM metric_values{final} WHERE granularity = {HOUR}",
        "CREATE OR REPLACE VIEW daily_values AS"
        f" SELECT metric, segment, bucket AS bucket_utc, {date} AS date, value"
        f" FROM metric_values{final} WHERE granularity = {DAY}",
    ]
