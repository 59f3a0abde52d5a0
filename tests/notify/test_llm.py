"""The LLM second opinion, against a local server that speaks the chat-completions shape."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import (
    MONITORS_YAML,
    STEP,
    VIGIL_YAML,
    LocalHTTPServer,
    ProjectFactory,
    Reply,
    serving,
)
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.model import AlertStatus
from vigil.scheduler.cycle import run_cycle

KEY = "sk-test-0123456789"


class ChatStandIn(LocalHTTPServer):
    """POST /v1/chat/completions: answers with the queued content (or waits first)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.content = '{"anomalous": true, "confidence": 0.9, "why": "every OS fell at once"}'
        self.delay = 0.0
        super().__init__()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        self.requests.append((headers, json.loads(body)))
        time.sleep(self.delay)
        if path != "/v1/chat/completions":
            return 404, {"error": "not found"}, {}
        choice = {"index": 0, "message": {"role": "assistant", "content": self.content}}
        return 200, {"id": "c1", "object": "chat.completion", "choices": [choice]}, {}


@pytest.fixture
def chat() -> Iterator[ChatStandIn]:
    yield from serving(ChatStandIn())


def _app(project_dir: ProjectFactory, chat: ChatStandIn, mode: str, timeout: str = "5s") -> Any:
    with_drop(project_dir)
    vigil = VIGIL_YAML + (
        f"llm: {{base_url: '${{LLM_URL}}/v1', model: test-model, api_key: '${{LLM_KEY}}',"
        f" mode: {mode}, timeout: {timeout}}}\n"
    )
    grouped = "\n".join(line for line in MONITORS_YAML.splitlines() if "group: none" not in line)
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": grouped})
    return app_for(root, env={"LLM_URL": chat.url, "LLM_KEY": KEY})


def test_annotate_adds_the_models_view_to_the_message(
    project_dir: ProjectFactory, chat: ChatStandIn
) -> None:
    app, out = _app(project_dir, chat, "annotate")
    report = run_cycle(app, DROP + STEP)
    assert report.delivery.sent == 1
    assert "🤖 Second opinion: likely a real anomaly (0.9) — every OS fell at once" in (
        out.getvalue()
    )
    ((headers, body),) = chat.requests  # one question for the one message
    assert headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "test-model"
    question = body["messages"][1]["content"]
    assert "Recent values (bucket start, value):" in question
    assert "The same times a day earlier:" in question
    assert "events: 3 anomalies in 1 metric" in question  # the detector's explanation
    assert KEY not in out.getvalue()


def test_confirm_sends_only_what_the_model_agrees_with(
    project_dir: ProjectFactory, chat: ChatStandIn
) -> None:
    chat.content = 'Sure: {"anomalous": false, "confidence": 0.7, "why": "a holiday dip"}'
    app, out = _app(project_dir, chat, "confirm")
    report = run_cycle(app, DROP + STEP)
    assert report.delivery.sent == 0
    assert out.getvalue() == ""
    assert {a.status for a in report.alerts} == {AlertStatus.LLM_REJECTED}


@pytest.mark.parametrize(
    ("content", "delay", "said"),
    [
        ("not json at all", 0.0, "the model's answer was not the JSON asked for"),
        ('{"anomalous": true}', 3.0, "no answer within 1 s"),
    ],
)
def test_a_failing_model_never_blocks_the_alert(
    project_dir: ProjectFactory, chat: ChatStandIn, content: str, delay: float, said: str
) -> None:
    chat.content, chat.delay = content, delay
    app, out = _app(project_dir, chat, "confirm", timeout="1s")
    report = run_cycle(app, DROP + STEP)
    assert report.delivery.sent == 1
    assert f"🤖 No second opinion ({said})" in out.getvalue()
