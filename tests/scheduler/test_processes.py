"""Real processes: a clean stop on SIGTERM; after SIGKILL, no gap and no duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    MONITORS_YAML,
    START,
    VIGIL_YAML,
    ProjectFactory,
    TelegramStandIn,
    event_rows,
    write_events,
)
from vigil.config import load_project
from vigil.store.duckdb import DuckDBStore

REPLAY_FROM = START + timedelta(days=8)
REPLAY_TO = START + timedelta(days=8, hours=15)


def vigil(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "--project", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_sigterm_stops_the_scheduler_cleanly(project_dir: ProjectFactory) -> None:
    process = vigil(project_dir.root, "run", "--no-web")
    assert process.stdout is not None
    assert process.stdout.readline().startswith("vigil run: 1 datasets")
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.strip().endswith("vigil run: stopped")
    assert "Traceback" not in err


def test_run_serves_the_dashboard_beside_the_scheduler(project_dir: ProjectFactory) -> None:
    root = project_dir.write({"vigil.yaml": VIGIL_YAML + "web: {port: 0}\n"})
    process = vigil(root, "run")
    assert process.stdout is not None
    assert process.stdout.readline().startswith("vigil run: 1 datasets")
    line = process.stdout.readline()
    assert line.startswith("vigil run: dashboard at http://127.0.0.1:"), line
    url = line.split(" at ", 1)[1].strip()
    deadline = time.monotonic() + 60
    while True:  # the first (catch-up) cycle runs beside the server
        alerts = httpx.get(f"{url}/api/v1/runs", timeout=10).json()
        if alerts["total"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert alerts["total"] > 0
    assert httpx.get(f"{url}/api/v1/health", timeout=10).json()["status"] == "ok"
    assert "Overview" in httpx.get(url, timeout=10).text
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.strip().endswith("vigil run: stopped")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/v1/health", timeout=5)


@pytest.mark.slow
def test_sigkill_mid_replay_then_restart_leaves_no_gap_and_no_duplicate(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    drops = {REPLAY_FROM + timedelta(hours=h): 0.2 for h in range(1, 15, 3)}
    write_events(
        project_dir.root / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}, drops)
    )
    vigil_yaml = (
        VIGIL_YAML.replace(
            "  console: {type: console}\n",
            "  console: {type: console}\n"
            "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '1', api_url: '${TG_URL}'}\n",
        ).replace("cooldown: 3h", "cooldown: 1m")
        + "  dataset_timestamp_offset: null\n"
    )
    monitors = MONITORS_YAML.replace("buckets: 1", "buckets: 1\n    segments: total").replace(
        "channels: [console]", "channels: [tg]"
    )
    root = project_dir.write({"vigil.yaml": vigil_yaml, "monitors/main.yaml": monitors})
    env = {"TG_TOKEN": "1:secret", "TG_URL": telegram.url}
    args = ("replay", "--from", REPLAY_FROM.isoformat(), "--to", REPLAY_TO.isoformat())

    first = vigil(root, *args, env=env)
    deadline = time.monotonic() + 60
    while sum(c.method == "sendPhoto" for c in telegram.calls) < 2:
        assert time.monotonic() < deadline, "the replay sent nothing"
        assert first.poll() is None, first.communicate()
        time.sleep(0.01)
    time.sleep(0.2)  # now somewhere in the middle of a later cycle
    first.kill()
    first.communicate()
    delivered_before = len(telegram.calls)
    assert delivered_before < 10, "the replay finished before it was killed"

    second = vigil(root, *args, env=env)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err

    project = load_project(root, env=env)
    g = project.datasets[0].granularity
    expected = set(g.range(REPLAY_FROM, REPLAY_TO))  # cycles in (from, to]
    results = DuckDBStore(project.resolve_path("vigil.duckdb")).list_results()
    per_bucket = Counter(r.bucket.start for r in results)
    assert set(per_bucket) == expected  # no gap
    assert set(per_bucket.values()) == {1}  # exactly once (total segment only)
    messages = [c.fields["text"] for c in telegram.calls if c.method == "sendMessage"]
    assert len(messages) == len(drops)
    assert len(set(messages)) == len(messages)  # nothing sent twice
    assert sum(c.method == "sendPhoto" for c in telegram.calls) == len(drops)
