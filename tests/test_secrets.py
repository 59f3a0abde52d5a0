"""Secrets never leave memory: not in any output, log, store file or API answer."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    MONITORS_YAML,
    START,
    STEP,
    VIGIL_YAML,
    LocalHTTPServer,
    ProjectFactory,
    Reply,
    event_rows,
    serving,
    write_events,
)
from vigil import secrets

TOKEN = "987654321:AAH-recognisable-bot-token_x7"
PASSWORD = "smtp-pass-Qz8!unusual"
DROP = START + timedelta(days=8, hours=12)


class EchoingTelegram(LocalHTTPServer):
    """A Bot API stand-in that fails every call with an error quoting the request URL."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        super().__init__()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer 400 with the full URL in the description, as some proxies do."""
        self.paths.append(path)
        return 400, {"ok": False, "error_code": 400, "description": f"bad request {path}"}, {}


@pytest.fixture
def echoing() -> Iterator[EchoingTelegram]:
    """A running echoing stand-in."""
    yield from serving(EchoingTelegram())


def _project(project_dir: ProjectFactory, telegram_url: str) -> Path:
    write_events(
        project_dir.root / "app.duckdb",
        event_rows(START, 9, {"iOS": 10, "Android": 20}, {DROP: 0.2, DROP + STEP: 0.2}),
    )
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n",
        "  console: {type: console}\n"
        "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '42', api_url: '${TG_URL}'}\n"
        "  mail: {type: email, host: 127.0.0.1, port: 9, security: none, username: vigil,"
        " password: '${SMTP_PASSWORD}', sender: v@example.com, to: [a@example.com],"
        " timeout: 2s}\n",
    )
    monitors = MONITORS_YAML.replace("channels: [console]", "channels: [console, tg, mail]")
    return project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})


def _env(url: str) -> dict[str, str]:
    return {**os.environ, "TG_TOKEN": TOKEN, "TG_URL": url, "SMTP_PASSWORD": PASSWORD}


def _run(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--project", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout + done.stderr


def _leaks(text: str) -> list[str]:
    bot_secret = TOKEN.split(":", 1)[1]
    return [s for s in (TOKEN, bot_secret, PASSWORD) if s in text]


def test_no_secret_in_any_output_store_file_or_api_answer(
    project_dir: ProjectFactory, echoing: EchoingTelegram
) -> None:
    root = _project(project_dir, echoing.url)
    env = _env(echoing.url)
    at = (DROP + STEP + timedelta(minutes=1)).isoformat()
    outputs = {
        "validate": _run(root, env, "validate"),
        "check": _run(root, env, "check", "--at", at),
        "-v check": _run(root, env, "-v", "check", "--at", (DROP + 3 * STEP).isoformat()),
        "-vv replay": _run(
            root,
            env,
            "-vv",
            "replay",
            "--from",
            (DROP - 2 * STEP).isoformat(),
            "--to",
            (DROP + 6 * STEP).isoformat(),
        ),
        "-v notify test tg": _run(root, env, "-v", "notify", "test", "tg"),
        "-v notify test mail": _run(root, env, "-v", "notify", "test", "mail"),
    }
    # The stand-in really was called with the token in the path, and answered with it.
    assert any(TOKEN in p for p in echoing.paths)
    assert any("HTTP Request" in text for text in outputs.values())  # the client's own log
    assert {name: _leaks(text) for name, text in outputs.items() if _leaks(text)} == {}
    # Every file the project wrote: the store (with its run log and delivery errors), charts.
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found = [s for s in (TOKEN, PASSWORD) if s.encode() in data]
            assert found == [], path
    # The API's answers and the output of a real `vigil -vv serve`, with the same environment.
    served = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "--project", str(root), "-vv", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert served.stdout is not None
    first = ""  # -vv logs come first, on the same pipe
    address = ""
    while not address:
        line = served.stdout.readline()
        assert line, first
        first += line
        address = line if line.startswith("vigil serve: ") else ""
    assert address.startswith("vigil serve: http://127.0.0.1:"), address
    base = address.split(" ")[2]
    assert not base.endswith(":0")  # the real port of --port 0
    pages = ("/api/v1/config", "/api/v1/runs", "/api/v1/alerts", "/api/v1/overview", "/config")
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for url in pages:
                answer = client.get(url)
                assert answer.status_code == 200, url
                assert _leaks(answer.text) == [], url
    finally:
        served.send_signal(signal.SIGTERM)
        rest = served.stdout.read()  # the same buffered pipe readline() read from
        served.stdout.close()
        served.wait(timeout=60)
    assert served.returncode == 0, rest
    assert rest.strip().endswith("vigil serve: stopped")
    assert _leaks(first + rest) == []


def test_redaction_masks_registered_values_url_passwords_and_bot_paths(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secrets.register(["s3cr3t-value", "  ", "abc"])  # blank and short values are ignored
    text = (
        "token s3cr3t-value; postgresql://vigil:hunter2@db:5432/x;"
        " https://api.telegram.org/bot111:XYZ-abc_9/sendMessage; abc stays"
    )
    assert secrets.redact(text) == (
        "token ***; postgresql://vigil:***@db:5432/x;"
        " https://api.telegram.org/bot***/sendMessage; abc stays"
    )
    logger = logging.getLogger("vigil.test.redaction")
    logger.addHandler(handler := logging.StreamHandler())
    secrets.install(logger)
    try:
        with caplog.at_level(logging.INFO, logger="vigil.test.redaction"):
            logger.info("calling %s", "https://x/bot1:AAA/getMe")
        assert handler.filters
        assert caplog.records[-1].getMessage() == "calling https://x/bot***/getMe"
    finally:
        logger.removeHandler(handler)


def test_a_bad_edit_hot_reloaded_by_run_reveals_no_secret(
    project_dir: ProjectFactory, echoing: EchoingTelegram
) -> None:
    root = _project(project_dir, echoing.url)
    env = _env(echoing.url)
    process = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "--project", str(root), "-v", "run", "--no-web"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one pipe, read as it comes: a full pipe would block
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline()]
    while not lines[-1].startswith("vigil run: 1 datasets"):
        assert lines[-1], lines
        lines.append(process.stdout.readline())
    time.sleep(1.0)  # the catch-up cycle has started; the watcher has its first snapshot
    project_file = root / "vigil.yaml"
    # An edit that puts the secret where the schema quotes bad input back in its error.
    project_file.write_text(
        project_file.read_text().replace("port: 9,", "port: '${SMTP_PASSWORD}',")
    )
    deadline = time.monotonic() + 60
    while not any("config reload failed" in line for line in lines):
        assert time.monotonic() < deadline, lines
        assert process.poll() is None, process.communicate()
        lines.append(process.stdout.readline())
    process.send_signal(signal.SIGTERM)
    # Read through the same buffered pipe object: communicate() would skip what readline()
    # has already buffered.
    out = process.stdout.read()
    process.stdout.close()
    process.wait(timeout=60)
    output = "".join(lines) + out
    assert process.returncode == 0, output
    assert "vigil.yaml" in output, output
    assert "channels.mail.port" in output
    assert _leaks(output) == []
    for path in root.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
