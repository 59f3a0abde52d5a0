"""Benchmark: a replay read once per dataset against the per-cycle replay, on the demo.

Simulates the demo's app once, then replays its last days twice into fresh stores, in the
same run: with `replay_cycles` (each dataset's source read once, windows from memory) and with
`run_cycle` at every due time (each cycle reading its own window from the source and the
store) — the path replays took before. Both give the same alerts (tests/scheduler/
test_bulk_replay.py compares the stores table by table); this prints their wall time and the
number of store statements. Run: `python bench/replay.py [--days 14] [--replay-days 3]`.
"""

from __future__ import annotations

import argparse
import io
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigil.app import running_app
from vigil.clock import SystemClock
from vigil.config import load_project
from vigil.demo.project import write_project
from vigil.demo.simulate import simulate
from vigil.scheduler.cycle import run_cycle
from vigil.scheduler.replay import replay_cycles
from vigil.scheduler.schedule import due_times
from vigil.store import duckdb as duckdb_store


def _replay(root: Path, start: datetime, end: datetime, bulk: bool) -> tuple[float, int, int]:
    """Wall seconds, store statements and alerts of one replay into a fresh store."""
    (root / "vigil.duckdb").unlink(missing_ok=True)
    project = load_project(root, env={})
    counted = [0]
    original = duckdb_store.DuckDBStore._execute

    def counting(self: object, conn: object, sql: str, params: list[object]) -> object:
        counted[0] += 1
        return original(self, conn, sql, params)  # type: ignore[arg-type]

    duckdb_store.DuckDBStore._execute = counting  # type: ignore[method-assign]
    try:
        began = time.perf_counter()
        alerts = 0
        with running_app(project, SystemClock(), io.StringIO()) as app, app.session():
            times = due_times(project, start, end)
            if bulk:
                reports = replay_cycles(app, times)
            else:
                reports = (run_cycle(app, at, scheduled_only=True, kind="replay") for at in times)
            for report in reports:
                alerts += len(report.sent_alerts)
        return time.perf_counter() - began, counted[0], alerts
    finally:
        duckdb_store.DuckDBStore._execute = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--replay-days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vigil-bench-replay-"))
    try:
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        simulate(folder / "data" / "app.duckdb", end - timedelta(days=args.days), end, args.seed)
        write_project(folder)
        start = end - timedelta(days=args.replay_days)
        cycles = len(due_times(load_project(folder, env={}), start, end))
        print(f"demo replay: {args.replay_days} days, {cycles} cycles, two datasets")
        for label, bulk in (("per cycle (before)", False), ("read once (now)", True)):
            seconds, statements, alerts = _replay(folder, start, end, bulk)
            print(
                f"  {label:<20} {seconds:7.1f} s  {statements:6d} store statements  {alerts} alerts"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
