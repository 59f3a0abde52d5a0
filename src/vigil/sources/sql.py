"""Generate one GROUP BY GROUPING SETS query per dataset and window, per SQL dialect."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from vigil.config.profiles import PAYLOAD_STATS
from vigil.config.project import Dataset, Metric
from vigil.config.schema import QUALIFIED_NAME
from vigil.sketches import TYPE_NAMES, histogram_payload, items_payload, type_payload
from vigil.sources.base import empty_frame
from vigil.sources.dialects import PARAM, Dialect
from vigil.timeutil import Granularity, as_utc, to_naive_utc

NULL_VALUE = "(null)"


@dataclass(frozen=True)
class DatasetQuery:
    """A generated query with its parameters and how to read its columns."""

    sql: str
    params: list[Any]
    dimensions: list[str]
    metrics: list[str]
    stats: tuple[str | None, ...] = ()
    granularity: Granularity | None = None
    # A snapshot's rows have no bucket column: they are all of this bucket.
    stamp: datetime | None = None


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
    """The query for buckets starting in [start, end): all metrics, slices and the total.

    Engines with GROUPING SETS get one GROUP BY GROUPING SETS query; the others one UNION ALL
    branch per slice, each reading only its slice's values.
    """
    config = dataset.config
    names = metrics if metrics is not None else [m.name for m in dataset.metrics]
    by_name = {m.name: m for m in dataset.metrics}
    dims = dimensions_of(dataset)
    for name in [*([] if config.snapshot else [config.time_column or ""]), *dims]:
        if not QUALIFIED_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid column name")
    snapshot = config.snapshot
    time_col = dialect.quote(config.time_column or "")
    utc_time = "" if snapshot else dialect.to_utc(time_col, source_tz)
    # A snapshot tells the present: no bucket column, no time filter, one row per segment.
    bucket = None if snapshot else dialect.bucket(utc_time, dataset.granularity)
    stamped = [] if bucket is None else [f"{bucket} AS {dialect.quote('__bucket')}"]
    expressions = [_expression(by_name[name], dialect, utc_time) for name in names]
    source = (
        dialect.quote(config.table)
        if config.table
        else f"({config.query}) AS {dialect.quote('__src')}"
    )
    window = [] if snapshot else [_local_naive(start, source_tz), _local_naive(end, source_tz)]
    compared = dialect.time_filter(time_col)
    where = [] if snapshot else [f"{compared} >= {PARAM}", f"{compared} < {PARAM}"]
    where += [f"({f})" for f in config.filters]
    params: list[Any] = []
    if dialect.grouping_sets or not dims:
        select = list(stamped)
        for i, dim in enumerate(dims):
            select.append(f"{dialect.quote(dim)} AS {dialect.quote(f'__d{i}')}")
            select.append(f"GROUPING({dialect.quote(dim)}) AS {dialect.quote(f'__g{i}')}")
        select += _metric_columns(expressions, dialect)
        params += window
        sql = f"SELECT {', '.join(select)}\nFROM {source}\n{_where(where)}"
        sql += _group_by(dataset, dialect, bucket, dims, params)
    else:
        branches = []
        sets: list[dict[str, Any]] = [{}] if config.include_total else []
        sets += [s.dimensions for s in dataset.slices]
        for wanted in sets:
            select = list(stamped)
            branch_where = list(where)
            params += window
            for i, dim in enumerate(dims):
                grouped = dim in wanted
                value = dialect.quote(dim) if grouped else "NULL"
                select.append(f"{value} AS {dialect.quote(f'__d{i}')}")
                select.append(f"{0 if grouped else 1} AS {dialect.quote(f'__g{i}')}")
                values = wanted.get(dim)
                if isinstance(values, list):
                    marks = ", ".join(PARAM for _ in values)
                    branch_where.append(f"{dialect.quote(dim)} IN ({marks})")
                    params.extend(values)
            select += _metric_columns(expressions, dialect)
            grouped_by = [
                *([bucket] if bucket else []),
                *(dialect.quote(d) for d in dims if d in wanted),
            ]
            group = f"GROUP BY {', '.join(grouped_by)}" if grouped_by else ""
            branches.append(
                f"SELECT {', '.join(select)}\nFROM {source}\n{_where(branch_where)}{group}"
            )
        sql = "\nUNION ALL\n".join(branches) + "\n"
    final_sql, final_params = dialect.finalize(sql, params)
    return DatasetQuery(
        sql=final_sql,
        params=final_params,
        dimensions=dims,
        metrics=names,
        stats=tuple(by_name[n].stat for n in names),
        granularity=dataset.granularity,
        stamp=start if snapshot else None,
    )


def _where(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}\n" if conditions else ""


def _metric_columns(expressions: list[str], dialect: Dialect) -> list[str]:
    return [f"({e}) AS {dialect.quote(f'__m{i}')}" for i, e in enumerate(expressions)]


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
    dataset: Dataset, dialect: Dialect, bucket: str | None, dims: list[str], params: list[Any]
) -> str:
    first = [bucket] if bucket else []  # a snapshot groups by its slices alone
    if not dims:
        return f"GROUP BY {bucket}" if bucket else ""
    sets: list[str] = [f"({', '.join(first)})"] if dataset.config.include_total else []
    having: list[str] = []
    start = len(params)
    for slice_ in dataset.slices:
        columns = [dialect.quote(d) for d in slice_.dimensions]
        sets.append(f"({', '.join([*first, *columns])})")
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
            parts.append(f"{column} IN ({', '.join(PARAM for _ in values)})")
            params.extend(values)
    return " AND ".join(parts)


def _local_naive(instant: datetime, zone: str) -> datetime:
    return as_utc(instant).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def frame_from_rows(result: pd.DataFrame, query: DatasetQuery) -> pd.DataFrame:
    """Turn the wide query result into the long (metric, segment, bucket, value) frame."""
    if result.empty:
        return empty_frame()
    segments = _segment_keys(result, query.dimensions)
    buckets: np.ndarray
    if query.stamp is not None:
        buckets = np.full(len(result), np.datetime64(to_naive_utc(query.stamp), "us"))
    else:
        buckets = pd.to_datetime(result["__bucket"]).astype("datetime64[us]").to_numpy()
    stats = query.stats or (None,) * len(query.metrics)
    payloads: dict[str, list[Any]] = {}
    # Columns keyed by position, never by metric name: a metric may be called `value`,
    # `segment`, `bucket` or `metric` without meeting the frame's own columns.
    columns: list[np.ndarray] = []
    for i, (name, stat) in enumerate(zip(query.metrics, stats, strict=True)):
        column = result[f"__m{i}"]
        if stat in PAYLOAD_STATS:
            found = [_payload(stat, cell) for cell in column]
            payloads[name] = found
            columns.append(np.array([_payload_count(p) for p in found], dtype=float))
        elif stat == "missing_datapoint":
            columns.append(np.zeros(len(result)))
        elif stat == "seconds_since_last_upload" and query.granularity is not None:
            ends = [query.granularity.next(as_utc(b)) for b in pd.DatetimeIndex(buckets)]
            newest = pd.to_datetime(column).dt.tz_localize(None).dt.to_pydatetime()
            columns.append(
                np.array(
                    [
                        (to_naive_utc(e) - n).total_seconds()
                        for e, n in zip(ends, newest, strict=True)
                    ],
                    dtype=float,
                )
            )
        else:
            columns.append(pd.to_numeric(column, errors="coerce").astype("float64").to_numpy())
    k, n = len(query.metrics), len(result)
    long = pd.DataFrame(
        {
            "metric": np.repeat(np.array(list(query.metrics), dtype=object), n),
            "segment": np.tile(np.array(segments, dtype=object), k),
            "bucket": np.tile(buckets, k),
            "value": np.concatenate(columns) if columns else np.array([], dtype=float),
        }
    )
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
    if isinstance(cell, str | bytes):
        cell = json.loads(cell)  # engines without structs return JSON text
    if stat == "histogram":
        return histogram_payload(cell["n"], cell["q"])
    if stat == "frequent_items":
        items = cell["items"]
        pairs = items.items() if isinstance(items, dict) else ((p["k"], p["c"]) for p in items)
        return items_payload(pairs)
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
