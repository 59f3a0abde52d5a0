"""What differs between SQL engines for the queries Vigil generates.

Each dialect writes time conversion, bucketing and profile stats in its engine's own SQL, and
turns the builder's neutral parameter markers into the driver's. User formulas are written in
the source's dialect and pass through unchanged.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Protocol

from vigil.clickhouse import bind
from vigil.sketches import MAX_ITEMS, QUANTILE_LEVELS, TYPE_NAMES
from vigil.timeutil import Granularity

# The builder writes this where a bound parameter goes; `finalize` turns it into the driver's.
PARAM = "\ufffc"

SCALAR_STATS = (
    "count",
    "null_count",
    "null_ratio",
    "mean",
    "median",
    "min",
    "max",
    "stddev",
    "unique_est",
    "unique_est_ratio",
)
TYPE_STATS = ("count_integral", "count_fractional", "count_bool", "count_string", "inferred_type")
_TYPE_OF_STAT = {
    "count_integral": "integral",
    "count_fractional": "fractional",
    "count_bool": "boolean",
    "count_string": "string",
}
WEEK_SECONDS = 7 * 86400
_LEVELS = ", ".join(f"{q:.2f}" for q in QUANTILE_LEVELS)


class UnsupportedStatError(ValueError):
    """A profile stat this engine cannot compute in one aggregate pass."""

    def __init__(self, stat: str, dialect: str, supported: tuple[str, ...]) -> None:
        super().__init__(
            f"profile stat '{stat}' is not available on {dialect} sources;"
            f" expected one of {', '.join(supported)}"
        )


class Dialect(Protocol):
    """What differs between SQL engines for the queries Vigil generates."""

    name: str
    # GROUP BY GROUPING SETS with GROUPING(); otherwise one UNION ALL branch per slice.
    grouping_sets: bool

    def quote(self, identifier: str) -> str:
        """Quote a (validated) identifier, dotted names part by part."""
        ...

    def to_utc(self, column: str, source_tz: str) -> str:
        """Expression turning the time column into a naive UTC timestamp."""
        ...

    def time_filter(self, column: str) -> str:
        """The time column as compared with the window's bounds."""
        ...

    def bucket(self, utc_expr: str, granularity: Granularity) -> str:
        """Expression giving the naive UTC start of the bucket of a naive UTC timestamp."""
        ...

    def profile(self, stat: str, column: str) -> str:
        """Aggregate expression computing a profile stat of a (quoted) column."""
        ...

    def finalize(self, sql: str, params: list[Any]) -> tuple[str, Any]:
        """Replace the neutral markers with the driver's and adapt the parameters."""
        ...


def sql_string(value: str) -> str:
    """A SQL string literal (only for validated names such as time zones)."""
    return "'" + value.replace("'", "''") + "'"


def _quote_with(identifier: str, mark: str) -> str:
    return ".".join(mark + part.replace(mark, mark * 2) + mark for part in identifier.split("."))


def _qmark(sql: str, params: list[Any]) -> tuple[str, Any]:
    return sql.replace(PARAM, "?"), params


def _pyformat(sql: str, params: list[Any]) -> tuple[str, Any]:
    """psycopg and PyMySQL interpolate `%s`: literal percent signs must be doubled."""
    return sql.replace("%", "%%").replace(PARAM, "%s"), params


def _common_stats(c: str, stat: str) -> str | None:
    """Stats written the same way in every engine."""
    return {
        "count": f"count({c})",
        "null_count": f"count(*) - count({c})",
        "min": f"min({c})",
        "max": f"max({c})",
        "mean": f"avg({c})",
    }.get(stat)


class DuckDBDialect:
    """DuckDB SQL (also used for CSV and Parquet files read through DuckDB)."""

    name = "duckdb"
    grouping_sets = True

    def quote(self, identifier: str) -> str:
        """Quote with double quotes, part by part."""
        return _quote_with(identifier, '"')

    def to_utc(self, column: str, source_tz: str) -> str:
        """Naive timestamps are local to `source_tz`; the session zone is UTC."""
        if source_tz == "UTC":
            return f"CAST({column} AS TIMESTAMP)"
        return f"CAST(timezone({sql_string(source_tz)}, CAST({column} AS TIMESTAMP)) AS TIMESTAMP)"

    def time_filter(self, column: str) -> str:
        """Compared as stored."""
        return column

    def bucket(self, utc_expr: str, granularity: Granularity) -> str:
        """time_bucket; days and weeks follow local midnight in the project's zone."""
        if not granularity.is_calendar:
            return f"time_bucket(INTERVAL '{granularity.seconds} seconds', {utc_expr})"
        width = "1 month" if granularity.is_month else f"{granularity.seconds // 86400} days"
        zone = sql_string(granularity.tz)
        return (
            f"CAST(time_bucket(INTERVAL '{width}', timezone('UTC', {utc_expr}), {zone})"
            " AS TIMESTAMP)"
        )

    def profile(self, stat: str, column: str) -> str:
        """DuckDB aggregates; distributions come back as structs and lists."""
        c = column
        if stat in _TYPE_OF_STAT:
            return f"count(*) FILTER (WHERE {self._type_of(c)} = '{_TYPE_OF_STAT[stat]}')"
        if stat == "inferred_type":
            parts = ", ".join(
                f"'{k}': count(*) FILTER (WHERE {self._type_of(c)} = '{k}')" for k in TYPE_NAMES
            )
            return "{" + parts + "}"
        if stat == "histogram":
            return f"{{'n': count({c}), 'q': quantile_cont(CAST({c} AS DOUBLE), [{_LEVELS}])}}"
        if stat == "frequent_items":
            text = f"CAST({c} AS VARCHAR)"
            pairs = (
                f"list_transform(map_entries(histogram({text})),"
                " lambda x: {'c': x.value, 'k': x.key})"
            )
            top = f"list_slice(list_sort({pairs}, 'DESC'), 1, {MAX_ITEMS})"
            return f"{{'n': count({c}), 'items': {top}}}"
        return (
            _common_stats(c, stat)
            or {
                "null_ratio": f"(count(*) - count({c})) / nullif(count(*), 0)",
                "median": f"median({c})",
                "stddev": f"stddev_samp({c})",
                "unique_est": f"approx_count_distinct({c})",
                "unique_est_ratio": f"approx_count_distinct({c}) / nullif(count({c}), 0)",
            }[stat]
        )

    @staticmethod
    def _type_of(c: str) -> str:
        text = f"CAST({c} AS VARCHAR)"
        return (
            f"CASE WHEN {c} IS NULL THEN NULL"
            f" WHEN typeof({c}) = 'BOOLEAN' THEN 'boolean'"
            f" WHEN regexp_full_match(typeof({c}), 'U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?')"
            " THEN 'integral'"
            f" WHEN typeof({c}) IN ('DOUBLE', 'FLOAT', 'REAL') OR typeof({c}) LIKE 'DECIMAL%'"
            " THEN 'fractional'"
            f" WHEN regexp_full_match({text}, '\\s*[-+]?[0-9]+\\s*') THEN 'integral'"
            f" WHEN TRY_CAST({text} AS DOUBLE) IS NOT NULL THEN 'fractional'"
            f" WHEN lower(trim({text})) IN ('true', 'false') THEN 'boolean'"
            " ELSE 'string' END"
        )

    def finalize(self, sql: str, params: list[Any]) -> tuple[str, Any]:
        """DuckDB binds `?`."""
        return _qmark(sql, params)


class PostgresDialect:
    """PostgreSQL: date_bin for sub-daily buckets, AT TIME ZONE for local days."""

    name = "postgres"
    grouping_sets = True
    supported = (*SCALAR_STATS, *TYPE_STATS, "histogram")

    def quote(self, identifier: str) -> str:
        """Double quotes."""
        return _quote_with(identifier, '"')

    def to_utc(self, column: str, source_tz: str) -> str:
        """`timestamp` columns are local to `source_tz`; `timestamptz` ones are instants (the
        session zone is UTC)."""
        if source_tz == "UTC":
            return f"CAST({column} AS TIMESTAMP)"
        zone = sql_string(source_tz)
        return f"((CAST({column} AS TIMESTAMP) AT TIME ZONE {zone}) AT TIME ZONE 'UTC')"

    def time_filter(self, column: str) -> str:
        """Compared as stored."""
        return column

    def bucket(self, utc_expr: str, granularity: Granularity) -> str:
        """date_bin from the epoch; calendar buckets truncate local time."""
        if not granularity.is_calendar:
            return (
                f"date_bin(INTERVAL '{granularity.seconds} seconds', {utc_expr},"
                " TIMESTAMP '1970-01-01')"
            )
        unit = "day"
        if granularity.is_month:
            unit = "month"
        elif granularity.seconds == WEEK_SECONDS:
            unit = "week"
        zone = sql_string(granularity.tz)
        local = f"(({utc_expr}) AT TIME ZONE 'UTC') AT TIME ZONE {zone}"
        return f"((date_trunc('{unit}', {local}) AT TIME ZONE {zone}) AT TIME ZONE 'UTC')"

    def profile(self, stat: str, column: str) -> str:
        """Exact aggregates; the histogram as JSON of 101 quantiles."""
        c = column
        if stat in _TYPE_OF_STAT:
            return f"count(*) FILTER (WHERE {self._type_of(c)} = '{_TYPE_OF_STAT[stat]}')"
        if stat == "inferred_type":
            parts = ", ".join(
                f"'{k}', count(*) FILTER (WHERE {self._type_of(c)} = '{k}')" for k in TYPE_NAMES
            )
            return f"json_build_object({parts})"
        if stat == "histogram":
            return (
                f"json_build_object('n', count({c}), 'q', percentile_cont(ARRAY[{_LEVELS}])"
                f" WITHIN GROUP (ORDER BY CAST({c} AS DOUBLE PRECISION)))"
            )
        found = _common_stats(c, stat) or {
            "null_ratio": f"CAST(count(*) - count({c}) AS DOUBLE PRECISION) / nullif(count(*), 0)",
            "median": f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {c})",
            "stddev": f"stddev_samp({c})",
            "unique_est": f"count(DISTINCT {c})",
            "unique_est_ratio": f"CAST(count(DISTINCT {c}) AS DOUBLE PRECISION)"
            f" / nullif(count({c}), 0)",
        }.get(stat)
        if found is None:
            raise UnsupportedStatError(stat, self.name, self.supported)
        return found

    @staticmethod
    def _type_of(c: str) -> str:
        text = f"CAST({c} AS TEXT)"
        kind = f"pg_typeof({c})::text"
        return (
            f"CASE WHEN {c} IS NULL THEN NULL"
            f" WHEN {kind} = 'boolean' THEN 'boolean'"
            f" WHEN {kind} IN ('smallint', 'integer', 'bigint') THEN 'integral'"
            f" WHEN {kind} IN ('real', 'double precision', 'numeric') THEN 'fractional'"
            f" WHEN {text} ~ '^\\s*[-+]?[0-9]+\\s*$' THEN 'integral'"
            f" WHEN {text} ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*$'"
            " THEN 'fractional'"
            f" WHEN lower(trim({text})) IN ('true', 'false') THEN 'boolean'"
            " ELSE 'string' END"
        )

    def finalize(self, sql: str, params: list[Any]) -> tuple[str, Any]:
        """psycopg binds `%s`."""
        return _pyformat(sql, params)


class MySQLDialect:
    """MySQL and MariaDB: UNION ALL per slice (no GROUPING SETS); session zone UTC."""

    name = "mysql"
    grouping_sets = False
    supported: tuple[str, ...] = ("count", "null_count", "null_ratio", "mean", "min", "max")
    supported += ("stddev", "unique_est", "unique_est_ratio")

    def quote(self, identifier: str) -> str:
        """Backticks."""
        return _quote_with(identifier, "`")

    def to_utc(self, column: str, source_tz: str) -> str:
        """DATETIME columns are local to `source_tz` (named zones need the server's zone
        tables); TIMESTAMP columns read in the session zone, UTC."""
        if source_tz == "UTC":
            return column
        return f"CONVERT_TZ({column}, {_mysql_zone(source_tz)}, '+00:00')"

    def time_filter(self, column: str) -> str:
        """Compared as stored."""
        return column

    def bucket(self, utc_expr: str, granularity: Granularity) -> str:
        """Epoch arithmetic for sub-daily buckets; local dates for calendar ones."""
        if not granularity.is_calendar:
            s = granularity.seconds
            return f"FROM_UNIXTIME(FLOOR(UNIX_TIMESTAMP({utc_expr}) / {s}) * {s})"
        zone = _mysql_zone(granularity.tz)
        local = f"CONVERT_TZ({utc_expr}, '+00:00', {zone})"
        if granularity.is_month:
            start = f"DATE_SUB(DATE({local}), INTERVAL DAYOFMONTH({local}) - 1 DAY)"
        elif granularity.seconds == WEEK_SECONDS:
            start = f"DATE_SUB(DATE({local}), INTERVAL WEEKDAY({local}) DAY)"
        else:
            start = f"DATE({local})"
        return f"CONVERT_TZ(CAST({start} AS DATETIME), {zone}, '+00:00')"

    def profile(self, stat: str, column: str) -> str:
        """Scalar stats only: MySQL has no median or quantile aggregate."""
        c = column
        # Integer division and AVG give DECIMAL with four places: cast to DOUBLE first.
        found = {
            "mean": f"avg(CAST({c} AS DOUBLE))",
            "null_ratio": f"CAST(count(*) - count({c}) AS DOUBLE) / nullif(count(*), 0)",
            "stddev": f"stddev_samp({c})",
            "unique_est": f"count(DISTINCT {c})",
            "unique_est_ratio": f"CAST(count(DISTINCT {c}) AS DOUBLE) / nullif(count({c}), 0)",
        }.get(stat) or _common_stats(c, stat)
        if found is None:
            raise UnsupportedStatError(stat, self.name, self.supported)
        return found

    def finalize(self, sql: str, params: list[Any]) -> tuple[str, Any]:
        """PyMySQL binds `%s`."""
        return _pyformat(sql, params)


def _mysql_zone(zone: str) -> str:
    """UTC as an offset (always known); other zones by name (needs the zone tables)."""
    return "'+00:00'" if zone == "UTC" else sql_string(zone)


class SQLiteDialect:
    """SQLite: ISO-8601 text (or datetime) columns in UTC; UNION ALL per slice."""

    name = "sqlite"
    grouping_sets = False
    supported: tuple[str, ...] = ("count", "null_count", "null_ratio", "mean", "min", "max")
    supported += ("unique_est", "unique_est_ratio")

    def quote(self, identifier: str) -> str:
        """Double quotes."""
        return _quote_with(identifier, '"')

    def to_utc(self, column: str, source_tz: str) -> str:
        """SQLite has no zone database: times must be UTC."""
        if source_tz != "UTC":
            raise ValueError("SQLite sources hold UTC times; expected timezone: UTC")
        return f"datetime({column})"

    def time_filter(self, column: str) -> str:
        """Normalised text, so '2024-05-01T00:00' and '2024-05-01 00:00:00' compare alike."""
        return f"datetime({column})"

    def bucket(self, utc_expr: str, granularity: Granularity) -> str:
        """Epoch arithmetic; calendar buckets only in UTC."""
        if not granularity.is_calendar:
            s = granularity.seconds
            return (
                f"datetime((CAST(strftime('%s', {utc_expr}) AS INTEGER) / {s}) * {s}, 'unixepoch')"
            )
        if granularity.tz != "UTC":
            raise ValueError(
                "SQLite has no zone database: daily, weekly and monthly buckets of a SQLite"
                " source need the project timezone UTC"
            )
        if granularity.is_month:
            return f"datetime(date({utc_expr}, 'start of month'))"
        if granularity.seconds == WEEK_SECONDS:
            return f"datetime(date({utc_expr}, '-6 days', 'weekday 1'))"
        return f"datetime(date({utc_expr}))"

    def profile(self, stat: str, column: str) -> str:
        """Scalar stats SQLite has built in."""
        c = column
        found = _common_stats(c, stat) or {
            "null_ratio": f"CAST(count(*) - count({c}) AS REAL) / nullif(count(*), 0)",
            "unique_est": f"count(DISTINCT {c})",
            "unique_est_ratio": f"CAST(count(DISTINCT {c}) AS REAL) / nullif(count({c}), 0)",
        }.get(stat)
        if found is None:
            raise UnsupportedStatError(stat, self.name, self.supported)
        return found

    def finalize(self, sql: str, params: list[Any]) -> tuple[str, Any]:
        """`?`, with times as the text SQLite's datetime() writes."""
        return _qmark(sql, [_sqlite_value(p) for p in params])


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


class ClickHouseDialect:
    """ClickHouse: toStartOfInterval buckets, typed `{name:Type}` parameters, session zone UTC.

    DateTime columns hold instants, so no source zone applies.
    """

    name = "clickhouse"
    grouping_sets = True

    def quote(self, identifier: str) -> str:
        """Backticks."""
        return _quote_with(identifier, "`")

    def to_utc(self, column: str, source_tz: str) -> str:
        """The instant, shown in UTC."""
        return f"toTimeZone(toDateTime64({column}, 6), 'UTC')"

    def time_filter(self, column: str) -> str:
        """Compared as stored."""
        return column

    def bucket(self, utc_expr: str, granularity: Granularity) -> str:
        """toStartOfInterval from the epoch; calendar buckets in the project's zone."""
        if not granularity.is_calendar:
            return f"toStartOfInterval({utc_expr}, INTERVAL {granularity.seconds} SECOND)"
        zone = sql_string(granularity.tz)
        local = f"toTimeZone({utc_expr}, {zone})"
        if granularity.is_month:
            start = f"toStartOfMonth({local})"
        elif granularity.seconds == WEEK_SECONDS:
            start = f"toMonday({local})"
        else:
            start = f"toDate({local})"
        return f"toTimeZone(toDateTime({start}, {zone}), 'UTC')"

    def profile(self, stat: str, column: str) -> str:
        """Exact aggregates; distributions as JSON text."""
        c = column
        if stat in _TYPE_OF_STAT:
            return f"countIf({self._type_of(c)} = '{_TYPE_OF_STAT[stat]}')"
        if stat == "inferred_type":
            parts = ", ".join(f"'{k}', countIf({self._type_of(c)} = '{k}')" for k in TYPE_NAMES)
            return f"toJSONString(map({parts}))"
        if stat == "histogram":
            levels = f"quantilesExact({_LEVELS})(toFloat64({c}))"
            return (
                f"if(count({c}) = 0, NULL, concat('{{\"n\":', toString(count({c})),"
                f" ',\"q\":', toJSONString({levels}), '}}'))"
            )
        if stat == "frequent_items":
            counts = f"sumMapIf(map(toString({c}), toUInt64(1)), isNotNull({c}))"
            return (
                f"if(count({c}) = 0, NULL, concat('{{\"n\":', toString(count({c})),"
                f" ',\"items\":', toJSONString({counts}), '}}'))"
            )
        return (
            _common_stats(c, stat)
            or {
                "null_ratio": f"(count(*) - count({c})) / nullIf(count(*), 0)",
                "median": f"quantileExact(0.5)({c})",
                "stddev": f"stddevSamp({c})",
                "unique_est": f"uniq({c})",
                "unique_est_ratio": f"uniq({c}) / nullIf(count({c}), 0)",
            }[stat]
        )

    @staticmethod
    def _type_of(c: str) -> str:
        kind = f"toTypeName({c})"
        text = f"toString({c})"
        return (
            f"multiIf(isNull({c}), NULL, {kind} LIKE '%Bool%', 'boolean',"
            f" match({kind}, '^(Nullable\\\\()?U?Int'), 'integral',"
            f" match({kind}, '^(Nullable\\\\()?(Float|Decimal)'), 'fractional',"
            f" match({text}, '^\\\\s*[-+]?[0-9]+\\\\s*$'), 'integral',"
            f" isNotNull(toFloat64OrNull({text})), 'fractional',"
            f" lower(trim({text})) IN ('true', 'false'), 'boolean', 'string')"
        )

    def finalize(self, sql: str, params: list[Any]) -> tuple[str, Any]:
        """Named, typed parameters: `{p0:DateTime64(6, 'UTC')}`; values as text."""
        return bind(sql, params, PARAM)


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        DuckDBDialect(),
        PostgresDialect(),
        MySQLDialect(),
        SQLiteDialect(),
        ClickHouseDialect(),
    )
}

_PASSWORD_IN_URL = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def redact_url(text: str) -> str:
    """Hide the password of any `scheme://user:password@host` in a message."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)
