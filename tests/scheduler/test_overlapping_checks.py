"""Overlapping one-shot runs (an Airflow retry, a cron that overlaps) never double-send.

Three `vigil check` processes start at once on one PostgreSQL store, on a bucket with a drop;
a local webhook records what arrives, slowly (a second per request), so that the processes'
deliveries overlap: while one is sending a notification, the others find it `sending`. Each
notification is delivered by exactly one of them, none is resent as if its sender had died.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest

from tests.conftest import (
    MONITORS_YAML,
    VIGIL_YAML,
    ProjectFactory,
    Reply,
    WebStandIn,
    serving,
)
from tests.scheduler.helpers import DROP, with_drop
from tests.store.backends import store_yaml
from vigil.config import load_project
from vigil.store import create_store


class SlowHook(WebStandIn):
    """A webhook that takes a second to answer."""

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        time.sleep(1.0)
        return super().handle(path, headers, body)


@pytest.mark.slow
def test_three_overlapping_checks_send_each_alert_once(project_dir: ProjectFactory) -> None:
    for web in serving(SlowHook()):
        _race(project_dir, web)


def _race(project_dir: ProjectFactory, web: WebStandIn) -> None:
    with_drop(project_dir)
    with store_yaml("postgres") as store:
        vigil = VIGIL_YAML.replace("{type: duckdb, path: vigil.duckdb}", store).replace(
            "  console: {type: console}\n",
            "  console: {type: console}\n  hook: {type: webhook, url: '${HOOK_URL}'}\n",
        )
        monitors = MONITORS_YAML.replace("channels: [console]", "channels: [hook]")
        root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
        env = {**os.environ, "HOOK_URL": f"{web.url}/hook"}
        at = (DROP + timedelta(minutes=15)).isoformat()
        args = [sys.executable, "-m", "vigil.cli", "--project", str(root), "check", "--at", at]
        # The store is created once (as `vigil store migrate` would), then three race.
        subprocess.run([*args[:5], "store", "migrate"], env=env, check=True, capture_output=True)
        runs = [
            subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(3)
        ]
        outputs = [p.communicate(timeout=120)[0].decode() for p in runs]
        assert all(p.returncode == 0 for p in runs), outputs
        project = load_project(root, env={"HOOK_URL": f"{web.url}/hook"})
        rows = create_store(project, lambda: DROP).notification_rows()  # type: ignore[attr-defined]
    keys = Counter(r.headers["x-vigil-key"] for r in web.requests)
    assert len(rows) == 3  # one per series: total, iOS, Android (group: none)
    assert {r["status"] for r in rows} == {"sent"}
    assert sorted(keys) == sorted(r["key"] for r in rows)
    assert set(keys.values()) == {1}, keys  # nothing twice
    assert not any(b"resent after a restart" in r.body for r in web.requests)
