"""HTTP JSON and Google Analytics 4 sources, against local servers that answer as those APIs do."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import rsa

from vigil.app import build_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.scheduler.cycle import run_cycle

NOW = datetime(2024, 6, 3, 10, 7, tzinfo=UTC)


class Recorder(BaseHTTPRequestHandler):
    """Answers from `server.answer(method, path, query, body, headers)`; records requests."""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        self.server.seen.append(
            (self.command, url.path, parse_qs(url.query), body, dict(self.headers))
        )  # type: ignore[attr-defined]
        status, payload = self.server.answer(self.command, url.path, parse_qs(url.query), body)  # type: ignore[attr-defined]
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, *args: Any) -> None:
        pass


def _serve(answer: Any) -> Iterator[tuple[str, list[Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.answer = answer  # type: ignore[attr-defined]
    server.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def _cycle(root: Path, env: dict[str, str]) -> Any:
    app = build_app(load_project(root, env=env), ManualClock(NOW), io.StringIO())
    report = run_cycle(app, NOW)
    assert report.errors == []
    values = app.store.load_values(
        [m.name for d in app.project.datasets for m in d.metrics],
        app.project.datasets[0].granularity,
        NOW - timedelta(days=2),
        NOW,
    )
    app.close()
    return values


def stats(method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    start = datetime.fromisoformat(query["from"][0].replace("Z", "+00:00"))
    end = datetime.fromisoformat(query["to"][0].replace("Z", "+00:00"))
    records = []
    at = start
    while at < end:
        stamp = at.isoformat().replace("+00:00", "Z")
        records += [
            {"day": stamp, "country": "RU", "stats": {"signups": 5}},
            {"day": stamp, "country": "DE", "stats": {"signups": 3}},
            {"day": stamp, "stats": {"signups": 8}},  # the API's own total
        ]
        at += timedelta(hours=1)
    return 200, {"data": records, "next": None}


@pytest.fixture
def api() -> Iterator[tuple[str, list[Any]]]:
    yield from _serve(stats)


HTTP_PROJECT = """\
name: http
timezone: UTC
sources:
  api:
    type: http
    url: "{url}/stats?from={{start:%Y-%m-%dT%H:%M:%SZ}}&to={{end:%Y-%m-%dT%H:%M:%SZ}}"
    headers: {{Authorization: "Bearer ${{API_TOKEN}}"}}
channels: {{console: {{type: console}}}}
defaults: {{granularity: 1h, delay: 2m}}
"""
HTTP_METRICS = """\
datasets:
  - name: signups
    source: api
    records: data
    time_column: day
    slices: [country]
    metrics:
      - {name: signups, formula: stats.signups}
"""


def test_an_http_json_api_is_read_per_window_with_jmespath(
    tmp_path: Path, api: tuple[str, list[Any]]
) -> None:
    url, seen = api
    root = _write(
        tmp_path,
        {"vigil.yaml": HTTP_PROJECT.format(url=url), "metrics/signups.yaml": HTTP_METRICS},
    )
    values = _cycle(root, {"API_TOKEN": "t0ken-123"})
    newest = values[values["bucket"] == datetime(2024, 6, 3, 9)]
    assert dict(zip(newest["segment"], newest["value"], strict=True)) == {
        "{}": 8.0,
        '{"country": "RU"}': 5.0,
        '{"country": "DE"}': 3.0,
    }
    method, path, query, _, headers = seen[-1]
    assert (method, path) == ("GET", "/stats")
    assert query["to"] == ["2024-06-03T10:00:00Z"]  # the window ends with the hour checked
    assert headers["Authorization"] == "Bearer t0ken-123"


def test_records_without_a_time_are_the_present_stamped_with_the_bucket(
    tmp_path: Path, api: tuple[str, list[Any]]
) -> None:
    url, _ = api
    metrics = HTTP_METRICS.replace("    time_column: day\n", "")
    root = _write(
        tmp_path, {"vigil.yaml": HTTP_PROJECT.format(url=url), "metrics/signups.yaml": metrics}
    )
    values = _cycle(root, {"API_TOKEN": "x"})
    assert set(values["bucket"]) == {datetime(2024, 6, 3, 9)}


def _service_account(token_uri: str) -> str:
    _, private = rsa.newkeys(1024)
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "test",
            "private_key_id": "k1",
            "private_key": private.save_pkcs1().decode(),
            "client_email": "vigil@test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        }
    )


def ga4(method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
    if path == "/token":
        return 200, {"access_token": "ya29.local", "expires_in": 3600, "token_type": "Bearer"}
    request = json.loads(body)
    dims = [d["name"] for d in request["dimensions"]]
    hours = [f"202406030{h}" for h in range(0, 3)]  # 00:00–02:00 in Los Angeles = 07–09 UTC
    devices = ["desktop", "mobile"] if "deviceCategory" in dims else [None]
    rows = []
    for hour in hours:
        for device in devices:
            values = [{"value": hour}] + ([{"value": device}] if device else [])
            users = {"desktop": 40, "mobile": 60, None: 90}[device]
            rows.append({"dimensionValues": values, "metricValues": [{"value": str(users)}]})
    return 200, {
        "dimensionHeaders": [{"name": d} for d in dims],
        "metricHeaders": [{"name": "activeUsers", "type": "TYPE_INTEGER"}],
        "rows": rows,
        "rowCount": len(rows),
    }


@pytest.fixture
def google() -> Iterator[tuple[str, list[Any]]]:
    yield from _serve(ga4)


def test_ga4_runreport_per_slice_with_a_service_account(
    tmp_path: Path, google: tuple[str, list[Any]]
) -> None:
    url, seen = google
    vigil = (
        "name: ga\ntimezone: UTC\nsources:\n  ga:\n    type: ga4\n    property: '123456'\n"
        f"    api_url: {url}\n    credentials: ${{GA_KEY}}\n"
        "    timezone: America/Los_Angeles\n"
        "channels: {console: {type: console}}\ndefaults: {granularity: 1h, delay: 2m}\n"
    )
    metrics = (
        "datasets:\n  - name: web\n    source: ga\n    slices: [deviceCategory]\n"
        "    metrics:\n      - {name: active_users, formula: activeUsers}\n"
    )
    root = _write(tmp_path, {"vigil.yaml": vigil, "metrics/web.yaml": metrics})
    values = _cycle(root, {"GA_KEY": _service_account(f"{url}/token")})
    at_nine = values[values["bucket"] == datetime(2024, 6, 3, 9)]  # 02:00 in Los Angeles
    assert dict(zip(at_nine["segment"], at_nine["value"], strict=True)) == {
        "{}": 90.0,
        '{"deviceCategory": "desktop"}': 40.0,
        '{"deviceCategory": "mobile"}': 60.0,
    }
    reports = [s for s in seen if s[1] == "/v1beta/properties/123456:runReport"]
    assert len(reports) == 2  # the total, and the slice: users do not add up
    assert all(s[4]["Authorization"] == "Bearer ya29.local" for s in reports)
    bodies = [json.loads(s[3]) for s in reports]
    assert [[d["name"] for d in b["dimensions"]] for b in bodies] == [
        ["dateHour"],
        ["dateHour", "deviceCategory"],
    ]
    assert bodies[0]["metrics"] == [{"name": "activeUsers"}]
    assert any(s[1] == "/token" for s in seen)  # the service account's token, fetched once
    assert len([s for s in seen if s[1] == "/token"]) == 1
