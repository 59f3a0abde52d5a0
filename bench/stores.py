"""Benchmark: the metric store backends on many series — write a day of 15-minute values for
N series, read one metric's day back, list every series.

Run with `make bench` (or `python bench/stores.py --series 10000`). DuckDB always runs;
PostgreSQL runs when $VIGIL_TEST_PG_URL (default postgresql://postgres@127.0.0.1:5432/test)
answers; ClickHouse runs embedded (chDB) when it is installed. Numbers in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.model import Segment
from vigil.store.duckdb import DuckDBStore
from vigil.store.sql import SQLStore
from vigil.timeutil import Granularity

START = datetime(2024, 1, 1, tzinfo=UTC)
G = Granularity(900)


def frame(series: int, metrics: int) -> pd.DataFrame:
    """A day of values for `series` series spread over `metrics` metrics."""
    buckets = pd.date_range(START, periods=96, freq="15min").tz_localize(None)
    per_metric = series // metrics
    rng = np.random.default_rng(1)
    keys = [Segment.of({"shard": str(i)}).key for i in range(per_metric)]
    return pd.DataFrame(
        {
            "metric": np.repeat([f"m{m}" for m in range(metrics)], per_metric * 96),
            "segment": np.tile(np.repeat(keys, 96), metrics),
            "bucket": np.tile(buckets, series // 1),
            "value": rng.uniform(0, 1000, series * 96),
        }
    ).astype({"bucket": "datetime64[us]"})


def timed(label: str, action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    seconds = time.perf_counter() - began
    print(f"  {label:<40} {seconds * 1000:9.0f} ms")
    return seconds


def run(name: str, store: SQLStore, data: pd.DataFrame) -> None:
    series = len(data) // 96
    print(f"{name}: {data['metric'].nunique()} metrics, {series:,} series, {len(data):,} values")
    store.migrate()
    timed("write (upsert, new)", lambda: store.upsert_values(data, G))
    changed = data.assign(value=data["value"] + 1)
    timed("write again (upsert, every value changed)", lambda: store.upsert_values(changed, G))
    end = START + timedelta(days=1)
    timed("read one metric's day", lambda: store.load_values(["m0"], G, START, end))
    timed("list every series", store.list_series)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--only", choices=["duckdb", "postgres", "clickhouse"], help="One backend.")
    args = parser.parse_args()
    data = frame(args.series, args.metrics)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        if args.only in (None, "duckdb"):
            run("duckdb", DuckDBStore(root / "vigil.duckdb"), data)
        try:
            if args.only not in (None, "postgres"):
                raise ImportError("not chosen")
            import psycopg

            from vigil.store.postgres import PostgresStore

            url = os.environ.get("VIGIL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
            schema = f"vigil_bench_{uuid.uuid4().hex[:8]}"
            psycopg.connect(url, connect_timeout=3).close()
            try:
                run("postgres", PostgresStore(url, schema), data)
            finally:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        except (ImportError, OSError, Exception) as e:
            print(f"postgres: skipped ({type(e).__name__})")
        try:
            if args.only not in (None, "clickhouse"):
                raise ImportError("not chosen")
            from vigil.store.clickhouse import ClickHouseStore

            store = ClickHouseStore(path=root / "chdb", database="vigil")
            try:
                run("clickhouse (embedded)", store, data)
            finally:
                store.close()
        except ImportError as e:
            print(f"clickhouse: skipped ({e})")


if __name__ == "__main__":
    main()
