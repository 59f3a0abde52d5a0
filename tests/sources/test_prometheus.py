"""The Prometheus source against a local server speaking the HTTP API's query_range."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pandas as pd
import pytest

from vigil.config import load_project
from vigil.errors import ConfigError, SourceError
from vigil.sources import build_source

START = datetime(2024, 5, 1, tzinfo=UTC)


class FakePrometheus:
    """Answers query_range for `requests` by job: value = job weight × hours since START."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        self.headers: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                outer.requests.append({"path": self.path, **form})
                outer.headers.append(self.headers.get("Authorization", ""))
                status, body = outer.answer(self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        query = form["query"]
        if "syntax error" in query:
            return 400, {
                "status": "error",
                "errorType": "bad_data",
                "error": 'invalid parameter "query": 1:8: parse error: unexpected identifier',
            }
        if path == "/api/v1/query":
            return 200, {"status": "success", "data": {"resultType": "vector", "result": []}}
        start, end = float(form["start"]), float(form["end"])
        step = int(form["step"].removesuffix("s"))
        times = []
        t = start
        while t <= end:
            times.append(t)
            t += step
        result = [
            {
                "metric": {"__name__": "requests", "job": job},
                "values": [[t, str(weight * (t - START.timestamp()) / 3600)] for t in times],
            }
            for job, weight in (("api", 10), ("web", 1))
        ]
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    server = FakePrometheus()
    yield server
    server.close()


def project(root: Path, url: str, query: str) -> Any:
    (root / "metrics").mkdir(parents=True, exist_ok=True)
    (root / "vigil.yaml").write_text(
        f"sources:\n  prom: {{type: prometheus, url: '{url}', token: '${{PROM_TOKEN}}'}}\n"
    )
    (root / "metrics" / "api.yaml").write_text(
        f"""\
datasets:
  - name: api
    source: prom
    granularity: 15m
    metrics:
      - name: requests
        formula: '{query}'
"""
    )
    return load_project(root, env={"PROM_TOKEN": "s3cret-token"})


def test_each_label_set_is_a_segment_and_the_value_at_a_bucket_end_is_its_value(
    tmp_path: Path, prometheus: FakePrometheus
) -> None:
    loaded = project(tmp_path, prometheus.url, "sum by (job) (increase(requests_total[15m]))")
    source = build_source("prom", loaded.settings.sources["prom"], loaded.root)
    try:
        frame = source.fetch(loaded.datasets[0], START, START + timedelta(hours=1))
    finally:
        source.close()
    request = prometheus.requests[0]
    assert request["path"] == "/api/v1/query_range"
    assert request["query"] == "sum by (job) (increase(requests_total[15m]))"
    assert float(request["start"]) == (START + timedelta(minutes=15)).timestamp()
    assert float(request["end"]) == (START + timedelta(hours=1)).timestamp()
    assert request["step"] == "900s"
    assert prometheus.headers[0] == "Bearer s3cret-token"
    api = frame[frame["segment"] == '{"job": "api"}'].sort_values("bucket")
    # Evaluated at 00:15 (2.5 = 10 × 0.25 h) → the 00:00 bucket.
    assert list(api["bucket"]) == [
        pd.Timestamp("2024-05-01 00:00") + i * pd.Timedelta("15min") for i in range(4)
    ]
    assert list(api["value"]) == [2.5, 5.0, 7.5, 10.0]
    assert set(frame["segment"]) == {'{"job": "api"}', '{"job": "web"}'}
    assert set(frame["metric"]) == {"requests"}


def test_long_windows_are_split_under_the_points_limit(
    tmp_path: Path, prometheus: FakePrometheus
) -> None:
    loaded = project(tmp_path, prometheus.url, "sum by (job) (increase(requests_total[15m]))")
    source = build_source("prom", loaded.settings.sources["prom"], loaded.root)
    try:
        # 150 days of 15-minute buckets: 14,400 points, more than one call may return.
        frame = source.fetch(loaded.datasets[0], START, START + timedelta(days=150))
    finally:
        source.close()
    assert len(prometheus.requests) == 2
    assert len(frame) == 2 * 150 * 96
    assert frame.duplicated(["segment", "bucket"]).sum() == 0


def test_a_rejected_query_names_source_metric_and_promql(
    tmp_path: Path, prometheus: FakePrometheus
) -> None:
    loaded = project(tmp_path, prometheus.url, "sum(syntax error")
    source = build_source("prom", loaded.settings.sources["prom"], loaded.root)
    try:
        with pytest.raises(SourceError) as info:
            source.fetch(loaded.datasets[0], START, START + timedelta(hours=1))
        problems = source.check(loaded.datasets[0])
    finally:
        source.close()
    message = str(info.value)
    assert "source 'prom' (prometheus), dataset 'api', metric 'requests'" in message
    assert "HTTP 400: invalid parameter" in message
    assert "PromQL: sum(syntax error" in message
    assert "s3cret" not in message
    assert len(problems) == 1
    assert problems[0].startswith("metrics/api.yaml:")


def test_prometheus_datasets_reject_sql_fields(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    (tmp_path / "vigil.yaml").write_text(
        "sources:\n  prom: {type: prometheus, url: 'http://127.0.0.1:9'}\n"
    )
    (tmp_path / "metrics" / "api.yaml").write_text(
        "datasets:\n  - name: api\n    source: prom\n    table: t\n    slices: [job]\n"
        "    metrics:\n      - name: requests\n"
    )
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path, env={})
    text = str(info.value)
    assert "expected no table" in text
    assert "expected no slices" in text
    assert "missing formula; expected a PromQL expression" in text
