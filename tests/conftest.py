"""Shared fixtures: small real projects on DuckDB, and a local Telegram Bot API stand-in."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd
import pytest

START = datetime(2024, 5, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)

VIGIL_YAML = """\
name: test project
timezone: UTC
store: {type: duckdb, path: vigil.duckdb}
sources:
  app: {type: duckdb, path: app.duckdb}
channels:
  console: {type: console}
defaults:
  delay: 0m
  cooldown: 3h
"""

METRICS_YAML = """\
datasets:
  - name: events
    source: app
    table: events
    time_column: time
    slices: [os]
    owners: ["@owner"]
    segment_owners:
      - segment: {os: iOS}
        owners: ["@ios"]
    metrics:
      - name: actions
        formula: count(*)
      - name: users
        formula: count(DISTINCT user_id)
"""

MONITORS_YAML = """\
analyzers:
  - id: day_week
    type: same_time_comparison
    metrics: [actions]
    buckets: 1
    min_significance: null  # fixtures count in tens; the count test has its own tests
monitors:
  - id: main
    analyzers: ["*"]
    channels: [console]
    group: none  # most tests read the per-series message; grouping has its own tests
"""


def event_rows(
    start: datetime,
    days: int,
    per_bucket: dict[str, int],
    drop: dict[datetime, float] | None = None,
) -> pd.DataFrame:
    """Events with a fixed count per bucket and OS; `drop` scales buckets (all OS) by a factor."""
    rows: list[tuple[datetime, str, int]] = []
    buckets = int(days * 96)
    for i in range(buckets):
        bucket = start + i * STEP
        factor = (drop or {}).get(bucket, 1.0)
        for os_name, count in per_bucket.items():
            n = round(count * factor)
            for k in range(n):
                rows.append((bucket.replace(tzinfo=None) + timedelta(seconds=k), os_name, k % 7))
    return pd.DataFrame(rows, columns=["time", "os", "user_id"])


def write_events(path: Path, frame: pd.DataFrame, table: str = "events") -> None:
    """Create (or replace) a table in a DuckDB file from a frame."""
    with duckdb.connect(str(path)) as conn:
        conn.register("frame", frame)
        conn.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM frame")


@dataclass
class ProjectFactory:
    """Writes a project directory; each file can be replaced by the test."""

    root: Path
    files: dict[str, str] = field(default_factory=dict)

    def write(self, overrides: dict[str, str] | None = None) -> Path:
        """Write vigil.yaml, metrics/events.yaml and monitors/main.yaml, replacing any given."""
        files = {
            "vigil.yaml": VIGIL_YAML,
            "metrics/events.yaml": METRICS_YAML,
            "monitors/main.yaml": MONITORS_YAML,
            **(overrides or {}),
        }
        for name, text in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return self.root


@pytest.fixture
def project_dir(tmp_path: Path) -> ProjectFactory:
    """A project directory with 9 days of steady events (iOS 10, Android 20 per bucket)."""
    write_events(tmp_path / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}))
    factory = ProjectFactory(tmp_path)
    factory.write()
    return factory


@dataclass
class TelegramCall:
    """One request the stand-in received."""

    method: str
    token: str
    fields: dict[str, Any]
    files: dict[str, bytes]


Reply = tuple[int, Any, dict[str, str]]


class LocalHTTPServer:
    """A threaded HTTP server on a free loopback port; subclasses answer each POST."""

    def __init__(self) -> None:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                headers["x-method"] = self.command
                status, payload, extra = stand_in.handle(self.path, headers, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                self.do_POST()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request: status, JSON payload (or bytes), extra headers."""
        raise NotImplementedError


ServerT = TypeVar("ServerT", bound=LocalHTTPServer)


def serving(server: ServerT) -> Iterator[ServerT]:
    """Run the server for the length of a fixture."""
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


class TelegramStandIn(LocalHTTPServer):
    """A local HTTP server speaking the Bot API's sendMessage/sendPhoto shapes."""

    def __init__(self) -> None:
        self.calls: list[TelegramCall] = []
        self.failures: list[tuple[str | None, int, dict[str, Any]]] = []
        # Button presses not yet confirmed by a getUpdates with a higher offset.
        self.updates: list[dict[str, Any]] = []
        self.polls: list[dict[str, Any]] = []
        self.next_update = 100
        super().__init__()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Record a call, or answer with the next queued failure for its method."""
        _, token, method = path.split("/", 2)
        fields, files = _parse_body(headers.get("content-type", ""), body)
        if self.failures and self.failures[0][0] in (None, method):
            _, status, payload = self.failures.pop(0)
            return status, payload, {}
        if method == "getUpdates":  # as Telegram: an offset confirms every earlier update
            self.polls.append(fields)
            offset = fields.get("offset")
            if offset is not None:
                self.updates = [u for u in self.updates if u["update_id"] >= int(offset)]
            return 200, {"ok": True, "result": list(self.updates)}, {}
        self.calls.append(TelegramCall(method, token.removeprefix("bot"), fields, files))
        return 200, {"ok": True, "result": {"message_id": len(self.calls)}}, {}

    def press(
        self,
        message_id: int,
        data: str,
        *,
        username: str = "anna",
        user_id: int = 42,
        chat_id: str = "7",
    ) -> int:
        """Queue a callback_query, as when someone presses a button; return its update id."""
        self.next_update += 1
        self.updates.append(
            {
                "update_id": self.next_update,
                "callback_query": {
                    "id": f"cq{self.next_update}",
                    "from": {"id": user_id, "username": username, "is_bot": False},
                    "message": {"message_id": message_id, "chat": {"id": chat_id}},
                    "data": data,
                },
            }
        )
        return self.next_update

    def fail_next(
        self, status: int, description: str = "error", method: str | None = None, **extra: Any
    ) -> None:
        """Answer the next request (of `method`, if given) with an error."""
        payload = {"ok": False, "error_code": status, "description": description, **extra}
        self.failures.append((method, status, payload))


def _parse_body(content_type: str, body: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    if content_type.startswith("application/json"):
        return json.loads(body), {}
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if part.get_filename():
            files[str(name)] = payload
        else:
            fields[str(name)] = payload.decode()
    return fields, files


@pytest.fixture
def telegram() -> Iterator[TelegramStandIn]:
    """A running Telegram stand-in on a free local port."""
    server = TelegramStandIn()
    yield from serving(server)


def is_png(data: bytes) -> bool:
    """Whether the bytes are a PNG image."""
    return data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000


@dataclass
class Recorded:
    """One request a web stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    def form(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Form fields and files of a multipart or urlencoded body."""
        content_type = self.headers.get("content-type", "")
        if content_type.startswith("application/x-www-form-urlencoded"):
            from urllib.parse import parse_qsl

            return dict(parse_qsl(self.body.decode())), {}
        return _parse_body(content_type, self.body)


class WebStandIn(LocalHTTPServer):
    """A local HTTP server that records every request and answers from a table of routes."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.routes: dict[str, list[Reply]] = {}
        super().__init__()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Record the request; answer from the queue for its path (default 200 ok)."""
        self.requests.append(Recorded(headers.get("x-method", "POST"), path, headers, body))
        queue = self.routes.get(path, [])
        return queue.pop(0) if queue else (200, {"ok": True}, {})

    def answer(self, path: str, status: int, payload: Any = None, **headers: str) -> None:
        """Queue an answer for the next request to `path`."""
        body = {"ok": True} if payload is None else payload
        self.routes.setdefault(path, []).append((status, body, headers))


@pytest.fixture
def web() -> Iterator[WebStandIn]:
    """A running recording HTTP server on a free local port."""
    server = WebStandIn()
    yield from serving(server)
