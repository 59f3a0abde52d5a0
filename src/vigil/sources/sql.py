"""Generate one GROUP BY GROUPING SETS query per dataset and window, per SQL dialect."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import pandas as pd

from vigil.config.project import Dataset
from vigil.config.schema import QUALIFIED_NAME
from vigil.sources.base import empty_frame
from vigil.timeutil import Granularity, as_utc

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
    formulas = {m.name: m.formula for m in dataset.metrics}
    dims = dimensions_of(dataset)
    for name in [config.time_column or "", *dims]:
        if not QUALIFIED_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid column name")
    time_col = dialect.quote(config.time_column or "")
    bucket = dialect.bucket(dialect.to_utc(time_col, source_tz), dataset.granularity)
    select = [f"{bucket} AS {dialect.quote('__bucket')}"]
    for i, dim in enumerate(dims):
        select.append(f"{dialect.quote(dim)} AS {dialect.quote(f'__d{i}')}")
        select.append(f"GROUPING({dialect.quote(dim)}) AS {dialect.quote(f'__g{i}')}")
    for i, name in enumerate(names):
        select.append(f"({formulas[name]}) AS {dialect.quote(f'__m{i}')}")
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
    return DatasetQuery(sql=sql, params=params, dimensions=dims, metrics=names)


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
    for i, name in enumerate(query.metrics):
        wide[name] = pd.to_numeric(result[f"__m{i}"], errors="coerce").astype("float64")
    long = wide.melt(id_vars=["segment", "bucket"], var_name="metric", value_name="value")
    return long[["metric", "segment", "bucket", "value"]].reset_index(drop=True)


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
