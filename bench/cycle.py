"""Benchmark: one `vigil check` cycle at 1k / 10k / 100k series, through the CLI.

A DuckDB source holds N series × D days of 15-minute values (one metric, `sum(value)` sliced
by `series_id`); the store already holds the history (one ingest of the analysers' window, the
real ingest code). Each timed run is a fresh `vigil check` process on the next bucket (so it
ingests and analyses new data), and the peak RSS of that process is read from the kernel.

In the same run, on the same data, two reference points:
- **seed-style**: a per-series pandas loop (read the series, compare with the same time a day
  and a week ago, a rolling stddev band, a fixed floor), the way the first version worked;
- **limit**: the same three checks written by hand in DuckDB + numpy (aggregate the new
  buckets in the source, one pivoted read of the store, numpy over the series × time matrix,
  one bulk insert of the results).

Run: `python bench/cycle.py --series 1000 10000` (min of 3 each). No thresholds are asserted;
the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

STEP = timedelta(minutes=15)
END = datetime(2026, 1, 1, tzinfo=UTC)

VIGIL_YAML = """\
name: cycle bench
timezone: UTC
store: {type: duckdb, path: vigil.duckdb}
sources:
  src: {type: duckdb, path: src.duckdb}
channels:
  console: {type: console}
defaults:
  delay: 0m
  lookback: 2
  cooldown: 3h
"""

METRICS_YAML = """\
datasets:
  - name: bench
    source: src
    table: events
    time_column: time
    slices: [series_id]
    include_total: false
    metrics:
      - name: amount
        formula: sum(value)
"""

MONITORS_YAML = """\
analyzers:
  - id: day_week
    type: same_time_comparison
    metrics: ["*"]
    threshold: 0.3
  - id: band
    type: stddev
    metrics: ["*"]
  - id: floor
    type: fixed
    metrics: ["*"]
    lower: 0
monitors:
  - id: main
    analyzers: ["*"]
    channels: [console]
"""


def make_source(path: Path, series: int, days: int) -> None:
    """N series with a daily cycle, a level per series and 5% noise, `days` days to END."""
    buckets = days * 96
    start = (END - buckets * STEP).replace(tzinfo=None)
    with duckdb.connect(str(path)) as conn:
        conn.execute("SET threads = 2")
        conn.execute(
            f"""
            CREATE OR REPLACE TABLE events AS
            SELECT 's' || lpad(s::VARCHAR, 6, '0') AS series_id,
                   TIMESTAMP '{start}' + INTERVAL 15 MINUTE * b AS time,
                   (100 + (hash(s) % 1000)) * (1 + 0.5 * sin(2 * pi() * (b % 96) / 96))
                     * (1 + 0.05 * (random() - 0.5)) AS value
            FROM range({buckets}) t(b), range({series}) u(s)
            ORDER BY time
            """
        )


def make_project(root: Path, series: int, days: int) -> None:
    """Write the project, fill the source, and load the analysers' history into the store."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in {
        "vigil.yaml": VIGIL_YAML,
        "metrics/bench.yaml": METRICS_YAML,
        "monitors/main.yaml": MONITORS_YAML,
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    make_source(root / "src.duckdb", series, days)
    prime = textwrap.dedent(
        f"""
        from datetime import datetime, timedelta
        from vigil.app import build_app
        from vigil.config import load_project
        from vigil.scheduler.ingest import ingest
        app = build_app(load_project({str(root)!r}))
        dataset = app.project.datasets[0]
        end = datetime.fromisoformat({(END - 3 * STEP).isoformat()!r})
        with app.session(), app.store.transaction():
            ingest(dataset, app.sources["src"], app.store, end - timedelta(days=8), end)
        """
    )
    subprocess.run([sys.executable, "-c", prime], check=True, cwd=root)


def measured(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one process."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "w = time.perf_counter() - t\n"
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, p.returncode)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *command], cwd=cwd, capture_output=True, text=True
    )
    wall, rss, code = out.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(command)} failed: {out.stderr[-2000:]}")
    return float(wall), float(rss)


def vigil_cycles(root: Path, repeat: int) -> tuple[float, float]:
    """`vigil check` on the next `repeat` buckets: the best wall time and its peak RSS."""
    vigil = str(Path(sys.executable).parent / "vigil")
    runs = []
    for k in range(repeat):
        at = END - (2 - k) * STEP + timedelta(minutes=1)
        runs.append(measured([vigil, "check", "--at", at.isoformat()], root))
    return min(runs)


SEED_STYLE = """
import sys, duckdb, pandas as pd
conn = duckdb.connect(sys.argv[1], read_only=True)
end = pd.Timestamp(sys.argv[2])
frame = conn.execute(
    "SELECT series_id, time, value FROM events WHERE time >= ? AND time < ?",
    [end - pd.Timedelta(days=8), end]).df()
flags = 0
for key, group in frame.groupby("series_id"):
    s = group.set_index("time")["value"].sort_index()
    now = s.iloc[-3:].mean()
    day = s.shift(96).iloc[-3:].mean()
    week = s.shift(672).iloc[-3:].mean()
    band = s.rolling(96).std().iloc[-2]
    mean = s.rolling(96).mean().iloc[-2]
    flags += int(abs(now / day - 1) > 0.3 or abs(now / week - 1) > 0.3)
    flags += int(abs(s.iloc[-1] - mean) > 3 * band)
    flags += int(s.iloc[-1] < 0)
print(flags)
"""

LIMIT = """
import sys, duckdb, numpy as np, pandas as pd
src, store, end = sys.argv[1], sys.argv[2], np.datetime64(sys.argv[3])
conn = duckdb.connect(store)
conn.execute("ATTACH '" + src + "' AS src (READ_ONLY)")
step = np.timedelta64(15, "m")
conn.execute(
    "INSERT OR REPLACE INTO vals SELECT series_id, time_bucket(INTERVAL 15 MINUTE, time), "
    "sum(value) FROM src.events WHERE time >= ? AND time < ? GROUP BY ALL",
    [str(end - 2 * step), str(end)])
start = end - 97 * 7 * step
codes = conn.execute("SELECT DISTINCT series FROM vals WHERE bucket >= ? ORDER BY series",
                     [str(start)]).fetchnumpy()["series"]
cols = conn.execute(
    "SELECT dense_rank() OVER (ORDER BY series) - 1 AS row, "
    "(epoch(bucket) - epoch(?::TIMESTAMP)) // 900 AS col, value FROM vals WHERE bucket >= ?",
    [str(start), str(start)]).fetchnumpy()
n, t = len(codes), 97 * 7
m = np.full((n, t), np.nan, dtype=np.float64)
m[cols["row"].astype(np.int64), cols["col"].astype(np.int64)] = cols["value"]
now = np.nanmean(m[:, -3:], axis=1)
day = np.nanmean(m[:, -3 - 96:-96], axis=1)
week = np.nanmean(m[:, -3 - 672:-672], axis=1)
recent = m[:, -97:-1]
mean, std = np.nanmean(recent, axis=1), np.nanstd(recent, axis=1)
flags = (np.abs(now / day - 1) > 0.3) | (np.abs(now / week - 1) > 0.3)
band = np.abs(m[:, -1] - mean) > 3 * std
out = pd.DataFrame({"series": np.repeat(codes, 3),
                    "analyzer": np.tile(["day_week", "band", "floor"], n),
                    "status": np.stack([flags, band, m[:, -1] < 0], axis=1).ravel()})
conn.execute("INSERT INTO results SELECT series, analyzer, ?, status FROM out", [str(end)])
print(int(out["status"].sum()))
"""


def limit_store(root: Path) -> Path:
    """A hand-made store for the limit: the same history in a (series, bucket) table."""
    path = root / "limit.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("ATTACH '" + str(root / "src.duckdb") + "' AS src (READ_ONLY)")
        conn.execute(
            "CREATE OR REPLACE TABLE vals (series VARCHAR, bucket TIMESTAMP, value DOUBLE,"
            " PRIMARY KEY (series, bucket))"
        )
        conn.execute(
            "INSERT INTO vals SELECT series_id, time, value FROM src.events WHERE time >= ?"
            " AND time < ?",
            [(END - timedelta(days=8)).replace(tzinfo=None), (END - 3 * STEP).replace(tzinfo=None)],
        )
        conn.execute(
            "CREATE OR REPLACE TABLE results (series VARCHAR, analyzer VARCHAR,"
            " bucket TIMESTAMP, status BOOLEAN)"
        )
    return path


def reference_runs(root: Path, repeat: int, seed_repeat: int = 1) -> dict[str, tuple[float, float]]:
    """Seed-style (best of `seed_repeat`: it is the slow reference) and limit (best of
    `repeat`), on the same buckets as Vigil."""
    store = limit_store(root)
    seed, limit = [], []
    for k in range(repeat):
        end = (END - (2 - k) * STEP).replace(tzinfo=None).isoformat()
        src = str(root / "src.duckdb")
        limit.append(measured([sys.executable, "-c", LIMIT, src, str(store), end], root))
        if k < seed_repeat:
            seed.append(measured([sys.executable, "-c", SEED_STYLE, src, end], root))
    return {"seed-style (pandas per series)": min(seed), "limit (DuckDB + numpy)": min(limit)}


def main() -> None:
    """Build each size, time Vigil and the references, print a table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--days", type=int, default=35)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="keep the projects here")
    parser.add_argument("--json", action="store_true", help="print one JSON line per size")
    parser.add_argument("--no-reference", action="store_true", help="time Vigil only")
    parser.add_argument(
        "--seed-repeat", type=int, default=1, help="runs of the slow seed-style reference"
    )
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="vigil-cycle-"))
    for n in args.series:
        root = base / f"s{n}"
        began = time.perf_counter()
        make_project(root, n, args.days)
        setup = time.perf_counter() - began
        rows = {"vigil check": vigil_cycles(root, args.repeat)}
        if not args.no_reference:
            rows.update(reference_runs(root, args.repeat, args.seed_repeat))
        if args.json:
            print(json.dumps({"series": n, **{k: list(v) for k, v in rows.items()}}))
            continue
        print(f"\n{n:,} series × {args.days} days (setup {setup:.0f} s), best of {args.repeat}:")
        limit = rows.get("limit (DuckDB + numpy)")
        for name, (wall, rss) in rows.items():
            ratio = f"  {wall / limit[0]:5.1f}× the limit" if limit else ""
            print(f"  {name:32s} {wall:7.2f} s  {rss:7.0f} MiB{ratio}")
        if limit:
            seed = rows["seed-style (pandas per series)"][0]
            print(f"  Vigil is {seed / rows['vigil check'][0]:.1f}× faster than seed-style")
    print(f"(peak RSS from getrusage; max RSS of this process {_self_rss():.0f} MiB)")


def _self_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
