"""Benchmark: `vigil run --worker` processes sharing 200 datasets through a PostgreSQL store.

A PostgreSQL source table holds a day of events; 200 datasets read it, each query taking about
0.2 s in the source (a `pg_sleep` in the formula: the source, not Vigil, is the slow part, as
with a warehouse). A fixed bound flags every dataset's total, so each cycle queues one
notification, delivered to a local recording webhook. For 1, 2 and 4 workers (one-shot
`vigil run --worker --at T` processes, a fresh store each time) it prints the wall time and
cycles per second, and checks that every notification arrived exactly once. Then, with two
workers, it SIGKILLs one while it runs a job and measures how long until another worker holds
that job's dataset (the takeover), and checks again that nothing was lost or sent twice.

Run: `python bench/workers.py [--datasets 200]` (needs the local PostgreSQL of
scripts/services.sh). No thresholds are asserted; the numbers go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import psycopg

PG_URL = os.environ.get("VIGIL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
AT = datetime(2026, 1, 2, 0, 15, tzinfo=UTC)
DATASET_LOCKS = 0x7669676A  # vigil.scheduler.workers.DATASET_LOCKS


class Hook(BaseHTTPRequestHandler):
    """Records each notification's key; answers 200."""

    keys: ClassVar[Counter[str]] = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with self.lock:
            self.keys[self.headers.get("x-vigil-key", "")] += 1
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def write_project(folder: Path, datasets: int, source: str, store: str, hook: str) -> None:
    (folder / "metrics").mkdir(parents=True, exist_ok=True)
    (folder / "vigil.yaml").write_text(
        "name: workers bench\ntimezone: UTC\n"
        f"sources:\n  pg: {{type: postgres, url: '{PG_URL}'}}\n"
        f"store: {{type: postgres, url: '{PG_URL}', schema: {store}}}\n"
        f"channels:\n  hook: {{type: webhook, url: '{hook}'}}\n"
        "defaults:\n  delay: 0m\n  lookback: 0\n  history: 1h\n"
    )
    lines = ["datasets:"]
    for i in range(datasets):
        lines += [
            f"  - name: ds{i:03d}",
            "    source: pg",
            f"    table: {source}.events",
            "    time_column: time",
            "    metrics:",
            f"      - name: m{i:03d}",
            "        formula: count(*) + 0 * length(pg_sleep(0.2)::text)",
        ]
    (folder / "metrics" / "all.yaml").write_text("\n".join(lines) + "\n")
    (folder / "metrics" / "monitors.yaml").write_text(
        "analyzers:\n  - {id: floor, type: fixed, metrics: ['*'], lower: 1000000000}\n"
        "monitors:\n  - {id: main, analyzers: [floor], channels: [hook], group: none}\n"
    )


def setup_source(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.events (time TIMESTAMP, value INT)")
        start = AT - timedelta(hours=2)
        rows = [(start + timedelta(seconds=30 * k), k) for k in range(240)]
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {schema}.events VALUES (%s, %s)", rows)


def drop(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def vigil(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "vigil.cli", "--project", str(folder), *args]


def workers(folder: Path, n: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            vigil(folder, "run", "--worker", "--at", AT.isoformat()),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]


def notifications(store: str) -> set[str]:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        rows = conn.execute(f"SELECT key FROM {store}.notifications WHERE status = 'sent'")
        return {r[0] for r in rows.fetchall()}


def one_run(
    folder: Path, datasets: int, source: str, hook: str, n: int, kill: bool = False
) -> dict[str, object]:
    store = f"vigil_bench_w_{uuid.uuid4().hex[:8]}"
    write_project(folder, datasets, source, store, hook)
    Hook.keys.clear()
    migrated = subprocess.run(vigil(folder, "store", "migrate"), capture_output=True, text=True)
    if migrated.returncode:
        raise SystemExit(migrated.stdout + migrated.stderr)
    began = time.monotonic()
    procs = workers(folder, n)
    takeover = None
    if kill:
        takeover = _kill_one(store, procs)
    for p in procs:
        p.wait(timeout=1800)
    wall = time.monotonic() - began
    sent = notifications(store)
    keys = dict(Hook.keys)
    drop(store)
    return {
        "workers": n,
        "wall_s": round(wall, 2),
        "cycles_per_s": round(datasets / wall, 2),
        "notifications": len(sent),
        "received": len(keys),
        "duplicates": sum(v - 1 for v in keys.values()),
        "lost": len(sent - set(keys)) + (datasets - len(sent)),
        "takeover_s": takeover,
    }


def _kill_one(store: str, procs: list[subprocess.Popen[bytes]]) -> float | None:
    """SIGKILL the first worker while it holds a job; seconds until another worker holds
    that job's dataset (the workers' connections are named `vigil host:pid:…`)."""
    victim = procs[0]
    mine = f"vigil %:{victim.pid}:%"
    query = (
        "SELECT l.objid FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
        " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.granted"
        " AND a.application_name {} %s"
    )
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        deadline = time.monotonic() + 60
        held: set[int] = set()
        while not held and time.monotonic() < deadline:
            rows = conn.execute(query.format("LIKE"), [DATASET_LOCKS, mine]).fetchall()
            held = {r[0] for r in rows}
            time.sleep(0.01)
        if not held:
            return None
        victim.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        while time.monotonic() - killed < 120:
            rows = conn.execute(query.format("NOT LIKE"), [DATASET_LOCKS, mine]).fetchall()
            if held & {r[0] for r in rows}:
                return round(time.monotonic() - killed, 2)
            time.sleep(0.01)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    source = f"vigil_bench_src_{uuid.uuid4().hex[:8]}"
    setup_source(source)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-workers-") as tmp:
            folder = Path(tmp)
            for n in (int(x) for x in args.workers.split(",")):
                results.append(one_run(folder, args.datasets, source, hook, n))
                print(json.dumps(results[-1]), flush=True)
            results.append(one_run(folder, args.datasets, source, hook, 2, kill=True))
            print(json.dumps({**results[-1], "killed": 1}), flush=True)
    finally:
        drop(source)
        server.shutdown()
    base = results[0]["wall_s"]
    print(f"\n{'workers':>8} {'wall':>8} {'cycles/s':>9} {'speed-up':>9} {'dup':>4} {'lost':>5}")
    for r in results[:-1]:
        speed = float(base) / float(r["wall_s"])  # type: ignore[arg-type]
        print(
            f"{r['workers']:>8} {r['wall_s']:>7}s {r['cycles_per_s']:>9} {speed:>8.2f}×"
            f" {r['duplicates']:>4} {r['lost']:>5}"
        )
    k = results[-1]
    print(
        f"2 workers, one SIGKILLed mid-job: takeover {k['takeover_s']} s, wall {k['wall_s']} s,"
        f" duplicates {k['duplicates']}, lost {k['lost']}"
    )


if __name__ == "__main__":
    main()
