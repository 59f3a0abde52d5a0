"""Generate one GROUP BY GROUPING SETS query per dataset and window, per SQL dialect."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigil.config.profiles import PAYLOAD_STATS
from vigil.config.project import Dataset, Metric
from vigil.config.schema import QUALIFIED_NAME
from vigil.sketches import (
    MAX_ITEMS,
    QUANTILE_LEVELS,
    TYPE_NAMES,
    histogram_payload,
    items_payload,
    type_payload,
)
from vigil.sources.base import empty_frame
from vigil.timeutil import Granularity, as_utc, to_naive_utc

NULL_VALUE = "(null)"


class Dialect(Protocol):
    """What differs between SQL engines for the queries Vigil generates."""

    name: str

    def quote(self, identifier: str) -> str:
        """Quote a (validated) identifier, dotted names part by part."""
        ...

    def placeholder(self) -> str:
        """The positional parameter marker."""
        ...

    def to_utc(self, column: str, source_tz: str) -> str:
        """Expression turning the time column into a naive UTC timestamp."""
        ...

    def bucket(self, utc_expr: str, granularity: Granularity) -> str:
        """Expression giving the naive UTC start of the bucket of a naive UTC timestamp."""
        ...

    def profile(self, stat: str, column: str) -> str:
        """Aggregate expression computing a profile stat of a (quoted) column."""
        ...


class DuckDBDialect:
    """DuckDB SQL (also used for files read through DuckDB)."""

    name = "duckdb"

    def quote(self, identifier: str) -> str:
        """Quote with double quotes, part by part."""
        return ".".join('"' + part.replace('"', '""') + '"' for part in identifier.split("."))

    def placeholder(self) -> str:
        """DuckDB uses `?`."""
        return "?"

    def to_utc(self, column: str, source_tz: str) -> str:
        """Naive timestamps are local to `source_tz`; the session zone is UTC."""
        if source_tz == "UTC":
            return f"CAST({column} AS TIMESTAMP)"
        return f"CAST(timezone({sql_string(source_tz)}, CAST({column} AS TIMESTAMP)) AS TIMESTAMP)"

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
        if stat.startswith("count_") and stat != "count_null":
            kind = {"count_integral": "integral", "count_fractional": "fractional"}.get(stat)
            kind = kind or {"count_bool": "boolean", "count_string": "string"}[stat]
            return f"count(*) FILTER (WHERE {self._type_of(c)} = '{kind}')"
        if stat == "inferred_type":
            parts = ", ".join(
                f"'{k}': count(*) FILTER (WHERE {self._type_of(c)} = '{k}')" for k in TYPE_NAMES
            )
            return "{" + parts + "}"
        if stat == "histogram":
            levels = ", ".join(f"{q:.2f}" for q in QUANTILE_LEVELS)
            return f"{{'n': count({c}), 'q': quantile_cont(CAST({c} AS DOUBLE), [{levels}])}}"
        if stat == "frequent_items":
            text = f"CAST({c} AS VARCHAR)"
            pairs = (
                f"list_transform(map_entries(histogram({text})),"
                " lambda x: {'c': x.value, 'k': x.key})"
            )
            top = f"list_slice(list_sort({pairs}, 'DESC'), 1, {MAX_ITEMS})"
            return f"{{'n': count({c}), 'items': {top}}}"
        return {
            "count": f"count({c})",
            "null_count": f"count(*) - count({c})",
            "null_ratio": f"(count(*) - count({c})) / nullif(count(*), 0)",
            "mean": f"avg({c})",
            "median": f"median({c})",
            "min": f"min({c})",
            "max": f"max({c})",
            "stddev": f"stddev_samp({c})",
            "unique_est": f"approx_count_distinct({c})",
            "unique_est_ratio": f"approx_count_distinct({c}) / nullif(count({c}), 0)",
        }[stat]

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


def sql_string(value: str) -> str:
    """A SQL string literal (only for validated names such as time zones)."""
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class DatasetQuery:
    """A generated query with its parameters and how to read its columns."""

    sql: str
    params: list[Any]
    dimensions: list[str]
    metrics: list[str]
    stats: tuple[str | None, ...] = ()
    granularity: Granularity | None = None


def dimensions_of(dataset: Dataset) -> list[str]:
    """Every dimension column used by the dataset's slices, in order of first use."""
    return list(dict.fromkeys(d for s in dataset.slices for d in s.dimensions))


def build_query(
    dataset: Dataset,
    dialect: Dialect,
    start: datetime,
    end: datetime,
    source_tz: str = "UTC",
    metrics: list[str] | None = None,
) -> DatasetQuery:
    """The query for buckets starting in [start, end): all metrics, slices and the total."""
    config = dataset.config
    names = metrics if metrics is not None else [m.name for m in dataset.metrics]
    by_name = {m.name: m for m in dataset.metrics}
    dims = dimensions_of(dataset)
    for name in [config.time_column or "", *dims]:
        if not QUALIFIED_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid column name")
    time_col = dialect.quote(config.time_column or "")
    utc_time = dialect.to_utc(time_col, source_tz)
    bucket = dialect.bucket(utc_time, dataset.granularity)
    select = [f"{bucket} AS {dialect.quote('__bucket')}"]
    for i, dim in enumerate(dims):
        select.append(f"{dialect.quote(dim)} AS {dialect.quote(f'__d{i}')}")
        select.append(f"GROUPING({dialect.quote(dim)}) AS {dialect.quote(f'__g{i}')}")
    for i, name in enumerate(names):
        expression = _expression(by_name[name], dialect, utc_time)
        select.append(f"({expression}) AS {dialect.quote(f'__m{i}')}")
    source = (
        dialect.quote(config.table)
        if config.table
        else f"({config.query}) AS {dialect.quote('__src')}"
    )
    mark = dialect.placeholder()
    where = [f"{time_col} >= {mark}", f"{time_col} < {mark}", *(f"({f})" for f in config.filters)]
    params: list[Any] = [_local_naive(start, source_tz), _local_naive(end, source_tz)]
    sql = f"SELECT {', '.join(select)}\nFROM {source}\nWHERE {' AND '.join(where)}\n"
    sql += _group_by(dataset, dialect, bucket, dims, params)
    return DatasetQuery(
        sql=sql,
        params=params,
        dimensions=dims,
        metrics=names,
        stats=tuple(by_name[n].stat for n in names),
        granularity=dataset.granularity,
    )


def _expression(metric: Metric, dialect: Dialect, utc_time: str) -> str:
    """The metric's SQL: its formula, a profile stat of its column, or a dataset stat."""
    if metric.column is not None and metric.stat is not None:
        return dialect.profile(metric.stat, dialect.quote(metric.column))
    if metric.stat == "missing_datapoint":
        return "count(*)"
    if metric.stat == "seconds_since_last_upload":
        return f"max({utc_time})"
    return metric.formula or "NULL"


def _group_by(
    dataset: Dataset, dialect: Dialect, bucket: str, dims: list[str], params: list[Any]
) -> str:
    if not dims:
        return f"GROUP BY {bucket}"
    sets: list[str] = [f"({bucket})"] if dataset.config.include_total else []
    having: list[str] = []
    start = len(params)
    for slice_ in dataset.slices:
        columns = [dialect.quote(d) for d in slice_.dimensions]
        sets.append(f"({', '.join([bucket, *columns])})")
        having.append(_slice_condition(slice_.dimensions, dims, dialect, params))
    if dataset.config.include_total:
        having.append(" AND ".join(f"GROUPING({dialect.quote(d)}) = 1" for d in dims))
    sql = f"GROUP BY GROUPING SETS ({', '.join(sets)})"
    has_limits = any(isinstance(v, list) for s in dataset.slices for v in s.dimensions.values())
    if has_limits:
        sql += "\nHAVING " + " OR ".join(f"({h})" for h in having)
    else:
        del params[start:]
    return sql


def _slice_condition(
    wanted: dict[str, Any], dims: list[str], dialect: Dialect, params: list[Any]
) -> str:
    """Select the rows of one grouping set, keeping only listed values where given."""
    parts = []
    for dim in dims:
        column = dialect.quote(dim)
        parts.append(f"GROUPING({column}) = {0 if dim in wanted else 1}")
        values = wanted.get(dim)
        if isinstance(values, list):
            parts.append(f"{column} IN ({', '.join(dialect.placeholder() for _ in values)})")
            params.extend(values)
    return " AND ".join(parts)


def _local_naive(instant: datetime, zone: str) -> datetime:
    return as_utc(instant).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def frame_from_rows(result: pd.DataFrame, query: DatasetQuery) -> pd.DataFrame:
    """Turn the wide query result into the long (metric, segment, bucket, value) frame."""
    if result.empty:
        return empty_frame()
    segments = _segment_keys(result, query.dimensions)
    wide = pd.DataFrame(
        {
            "segment": segments,
            "bucket": pd.to_datetime(result["__bucket"]).astype("datetime64[us]"),
        }
    )
    stats = query.stats or (None,) * len(query.metrics)
    payloads: dict[str, list[Any]] = {}
    for i, (name, stat) in enumerate(zip(query.metrics, stats, strict=True)):
        column = result[f"__m{i}"]
        if stat in PAYLOAD_STATS:
            found = [_payload(stat, cell) for cell in column]
            payloads[name] = found
            wide[name] = [_payload_count(p) for p in found]
        elif stat == "missing_datapoint":
            wide[name] = 0.0
        elif stat == "seconds_since_last_upload" and query.granularity is not None:
            ends = [query.granularity.next(as_utc(b)) for b in wide["bucket"].dt.to_pydatetime()]
            newest = pd.to_datetime(column).dt.tz_localize(None).dt.to_pydatetime()
            wide[name] = [
                (to_naive_utc(e) - n).total_seconds() for e, n in zip(ends, newest, strict=True)
            ]
        else:
            wide[name] = pd.to_numeric(column, errors="coerce").astype("float64")
    long = wide.melt(id_vars=["segment", "bucket"], var_name="metric", value_name="value")
    long = long[["metric", "segment", "bucket", "value"]].reset_index(drop=True)
    if payloads:
        per_metric = {name: iter(values) for name, values in payloads.items()}
        long["payload"] = [next(per_metric[m]) if m in per_metric else None for m in long["metric"]]
    return long


def _payload_count(payload: dict[str, Any] | None) -> float:
    """The value kept beside a distribution: how many non-null values it describes."""
    if payload is None:
        return np.nan
    if "counts" in payload:
        return float(sum(payload["counts"].values()))
    return float(payload["n"])


def _payload(stat: str, cell: Any) -> dict[str, Any] | None:
    """Turn an engine's distribution result into the stored payload."""
    if cell is None or (isinstance(cell, float) and cell != cell):
        return None
    if stat == "histogram":
        return histogram_payload(cell["n"], cell["q"])
    if stat == "frequent_items":
        return items_payload((pair["k"], pair["c"]) for pair in cell["items"])
    return type_payload([cell[name] for name in TYPE_NAMES])


def _segment_keys(result: pd.DataFrame, dims: list[str]) -> list[str]:
    if not dims:
        return ["{}"] * len(result)
    values = [result[f"__d{i}"].tolist() for i in range(len(dims))]
    grouping = [result[f"__g{i}"].astype(int).tolist() for i in range(len(dims))]
    keys = []
    for row in range(len(result)):
        tags = {
            dim: (
                NULL_VALUE
                if values[i][row] is None or values[i][row] != values[i][row]
                else str(values[i][row])
            )
            for i, dim in enumerate(dims)
            if grouping[i][row] == 0
        }
        keys.append(json.dumps(tags, sort_keys=True, ensure_ascii=False))
    return keys
