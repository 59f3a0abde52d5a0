"""Benchmark: the dashboard's chart endpoint over a year of 15-minute data, and the overview
with 1,000 series, over real HTTP against a DuckDB store.

Run with `make bench` (or `python bench/web.py`). Prints the median and worst of a few calls;
the numbers are reported in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.model import AnalysisResult, Bucket, Incident, Segment, SeriesKey, Status
from vigil.store import open_store
from vigil.timeutil import Granularity
from vigil.web.server import WebServer

START = datetime(2024, 1, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
YEAR = 365 * 96


def write_project(root: Path, metrics: int) -> None:
    """A project with `metrics` metrics of one dataset (the store is filled directly)."""
    (root / "metrics").mkdir(parents=True)
    (root / "vigil.yaml").write_text(
        "name: bench\nsources:\n  app: {type: duckdb, path: ':memory:'}\n"
        "monitors:\n  - {id: product, analyzers: ['*'], channels: [console]}\n"
        "analyzers:\n  - {id: band, type: stddev, metrics: ['*'], window: 96}\n"
    )
    lines = [
        "datasets:",
        "  - name: app",
        "    source: app",
        "    table: events",
        "    time_column: time",
        "    slices: [shard]",
        "    metrics:",
    ]
    lines += [f"      - {{name: m{i}, formula: 'count(*)'}}" for i in range(metrics)]
    (root / "metrics" / "app.yaml").write_text("\n".join(lines) + "\n")


def fill_store(root: Path, metrics: int, segments: int, now: datetime) -> None:
    """A year of m0 (total) with its results; a day of every other series; open incidents."""
    project = load_project(root, env={})
    store = open_store(project, lambda: now)
    g = Granularity(900)
    rng = np.random.default_rng(1)
    buckets = pd.date_range(START, periods=YEAR, freq="15min").tz_localize(None)
    wave = 1000 + 400 * np.sin(np.arange(YEAR) * 2 * np.pi / 96) + rng.normal(0, 30, YEAR)
    year = pd.DataFrame({"metric": "m0", "segment": "{}", "bucket": buckets, "value": wave})
    store.upsert_values(year.astype({"bucket": "datetime64[us]"}), g)
    store.save_results(
        AnalysisResult(
            "band",
            "stddev",
            SeriesKey("m0"),
            Bucket(b.to_pydatetime().replace(tzinfo=UTC), g),
            float(v),
            Status.ANOMALY if i % 997 == 0 else Status.OK,
            float(v) - 90,
            float(v) + 90,
        )
        for i, (b, v) in enumerate(zip(buckets, wave, strict=True))
    )
    day = buckets[-96:]
    frames = [
        pd.DataFrame(
            {
                "metric": f"m{m}",
                "segment": Segment.of({"shard": str(s)}).key,
                "bucket": day,
                "value": rng.uniform(0, 100, 96),
            }
        )
        for m in range(metrics)
        for s in range(segments)
    ]
    store.upsert_values(pd.concat(frames).astype({"bucket": "datetime64[us]"}), g)
    for s in range(50):
        store.save_incident(
            Incident(
                "product",
                SeriesKey("m1", Segment.of({"shard": str(s)})),
                g,
                now - timedelta(hours=2),
                now - STEP,
            )
        )


def timed(client: httpx.Client, path: str, params: dict[str, object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = client.get(path, params=params)
        out.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
    return out


def report(name: str, times: list[float], extra: str) -> None:
    print(
        f"{name:<44} median {statistics.median(times):7.1f} ms  worst {max(times):7.1f} ms  {extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--segments", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    now = START + YEAR * STEP
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_project(root, args.metrics)
        began = time.perf_counter()
        fill_store(root, args.metrics, args.segments, now)
        print(f"store filled in {time.perf_counter() - began:.1f} s")
        server = WebServer(load_project(root, env={}), ManualClock(now), "127.0.0.1", 0)
        url = server.start()
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                params = {"metric": "m0", "from": "now-365d", "width": 1000}
                chart = client.get("/api/v1/chart", params=params).json()
                times = timed(client, "/api/v1/chart", params, args.repeat)
                report(
                    "chart: 1 series, 1 year of 15m (35,040 pts)",
                    times,
                    f"{len(chart['t'])} points sent, {len(chart['anomalies'])} anomalies",
                )
                overview = client.get("/api/v1/overview").json()
                times = timed(client, "/api/v1/overview", {}, args.repeat)
                report(
                    f"overview: {overview['series']:,} series",
                    times,
                    f"{len(overview['incidents'])} open incidents",
                )
                times = timed(client, "/", {}, args.repeat)
                report("overview page (HTML)", times, "")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
