"""Python ingest functions as Anomstack writes them: `ingest_fn` with `{% include %}`,
`ingest_args`, a function that tells the present, a time limit in a child process, and clear
errors — against a local server that answers like the Hacker News API.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from vigil.app import build_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.errors import ConfigError
from vigil.scheduler.backfill import run_backfill
from vigil.scheduler.cycle import run_cycle

NOW = datetime(2024, 6, 3, 10, 7, tzinfo=UTC)
SCORES = {1: 120, 2: 80, 3: 40, 4: 999}

HN_INGEST = """\
import pandas as pd
import requests


def ingest(top_n=10, base_url="https://hacker-news.firebaseio.com") -> pd.DataFrame:
    ids = requests.get(f"{base_url}/v0/topstories.json", timeout=5).json()[:top_n]
    scores = [requests.get(f"{base_url}/v0/item/{i}.json", timeout=5).json()["score"] for i in ids]
    data = [
        [f"hn_top_{top_n}_min_score", min(scores)],
        [f"hn_top_{top_n}_max_score", max(scores)],
        [f"hn_top_{top_n}_avg_score", sum(scores) / len(scores)],
    ]
    df = pd.DataFrame(data, columns=["metric_name", "metric_value"])
    df["metric_timestamp"] = pd.Timestamp.utcnow()
    df["metric_batch"] = "hackernews"
    return df
"""


class HackerNews(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/v0/topstories.json":
            body: Any = list(SCORES)
        else:
            story = int(self.path.rsplit("/", 1)[1].split(".")[0])
            body = {"id": story, "score": SCORES[story]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def hn() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HackerNews)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _project(root: Path, ingest_fn: str, extra: str = "", timeout: str = "60s") -> Path:
    files = {
        "vigil.yaml": "name: hn\ntimezone: UTC\n"
        f"sources:\n  py: {{type: python, timeout: {timeout}}}\n"
        "channels:\n  console: {type: console}\ndefaults: {delay: 2m, granularity: 1h}\n",
        "metrics/hackernews/hackernews.yaml": f"""\
datasets:
  - name: hackernews
    source: py
    ingest_fn: >
      {ingest_fn}
    ingest_args: {{top_n: 3, base_url: "${{HN_URL}}"}}
{extra}    metrics:
      - {{name: hn_top_3_min_score}}
      - {{name: hn_top_3_max_score}}
      - {{name: hn_top_3_avg_score}}
""",
        "metrics/hackernews/hn.py": HN_INGEST,
        "monitors/main.yaml": "monitors: []\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def _app(root: Path, hn: str) -> Any:
    return build_app(load_project(root, env={"HN_URL": hn}), ManualClock(NOW), io.StringIO())


def test_an_anomstack_batch_runs_unchanged_and_is_stamped_with_the_bucket_checked(
    tmp_path: Path, hn: str
) -> None:
    app = _app(_project(tmp_path, '{% include "./hn.py" %}'), hn)
    try:
        report = run_cycle(app, NOW)
        assert report.errors == []
        values = app.store.load_values(
            ["hn_top_3_min_score", "hn_top_3_max_score", "hn_top_3_avg_score"],
            app.project.datasets[0].granularity,
            NOW - timedelta(days=1),
            NOW,
        )
        # Values of the present, stamped with the hour checked (09:00–10:00 at 10:07).
        assert set(values["bucket"]) == {datetime(2024, 6, 3, 9)}
        assert set(values["segment"]) == {"{}"}  # metric_batch is not a dimension
        got = dict(zip(values["metric"], values["value"], strict=True))
        assert got == {
            "hn_top_3_min_score": 40.0,
            "hn_top_3_max_score": 120.0,
            "hn_top_3_avg_score": 80.0,
        }
        # It has no history: a backfill says so.
        backfilled = run_backfill(app, NOW - timedelta(days=1), NOW)
        assert backfilled.buckets == 0
        assert "its ingest function tells the present state" in backfilled.notes[0]
    finally:
        app.close()


def test_a_hung_function_is_stopped_at_the_time_limit_and_the_next_call_works(
    tmp_path: Path, hn: str
) -> None:
    hang = tmp_path / "hang"
    _project(hang, '{% include "./slow.py" %}', timeout="1s")
    (hang / "metrics/hackernews/slow.py").write_text(
        "import time\n\ndef ingest(top_n=10, base_url=''):\n    time.sleep(60)\n"
    )
    app = _app(hang, hn)
    try:
        report = run_cycle(app, NOW)
        (error,) = report.errors
        assert "did not return within 1 s; it was stopped (the source's timeout)" in error
        (hang / "metrics/hackernews/slow.py").write_text(HN_INGEST)
        # The next call works (with room for a child process to start on a busy machine).
        _project(hang, '{% include "./slow.py" %}', timeout="30s")
        fixed = _app(hang, hn)
        assert run_cycle(fixed, NOW + timedelta(hours=1)).errors == []
        fixed.close()
    finally:
        app.close()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "def ingest(top_n=1, base_url=''):\n    x = 1\n    raise ValueError('no stories')\n",
            "raised ValueError: no stories (bad.py, line 3)",
        ),
        (
            "import pandas as pd\n\ndef ingest(top_n=1, base_url=''):\n"
            "    return pd.DataFrame({'metric_name': ['a']})\n",
            "returned no column metric_value; expected metric_name, metric_value",
        ),
        ("def ingest(top_n=1, base_url=''):\n    return 42\n", "returned int; expected a pandas"),
    ],
)
def test_errors_name_the_dataset_the_function_and_what_went_wrong(
    tmp_path: Path, hn: str, code: str, expected: str
) -> None:
    root = _project(tmp_path, '{% include "./bad.py" %}')
    (root / "metrics/hackernews/bad.py").write_text(code)
    app = _app(root, hn)
    try:
        (error,) = run_cycle(app, NOW).errors
    finally:
        app.close()
    assert "dataset 'hackernews'" in error
    assert expected in error


def test_a_missing_include_is_a_config_error_naming_the_file_and_line(tmp_path: Path) -> None:
    root = _project(tmp_path, '{% include "./nowhere.py" %}')
    with pytest.raises(ConfigError) as raised:
        load_project(root, env={"HN_URL": "http://127.0.0.1:1"})
    (problem,) = raised.value.problems
    assert problem.startswith("metrics/hackernews/hackernews.yaml:4: datasets[0].ingest_fn:")
    assert "cannot include './nowhere.py'" in problem


def test_a_function_with_a_window_gets_start_and_end_and_its_own_timestamps(
    tmp_path: Path, hn: str
) -> None:
    root = _project(tmp_path, '{% include "./window.py" %}')
    (root / "metrics/hackernews/window.py").write_text(
        "import pandas as pd\n\n"
        "def ingest(start, end, top_n=1, base_url=''):\n"
        "    hours = pd.date_range(start, end, freq='1h', inclusive='left')\n"
        "    return pd.DataFrame({'metric_name': 'hn_top_3_max_score',\n"
        "                         'metric_value': [float(h.hour) for h in hours],\n"
        "                         'metric_timestamp': hours})\n"
    )
    app = _app(root, hn)
    try:
        assert run_cycle(app, NOW).errors == []
        values = app.store.load_values(
            ["hn_top_3_max_score"],
            app.project.datasets[0].granularity,
            NOW - timedelta(hours=3),
            NOW,
        )
    finally:
        app.close()
    stored = dict(zip(values["bucket"], values["value"], strict=True))
    assert pd.Timestamp(2024, 6, 3, 9) in stored  # up to the hour checked
    assert len(stored) >= 2  # the window, not just the present
    assert all(value == bucket.hour for bucket, value in stored.items())  # its own stamps
