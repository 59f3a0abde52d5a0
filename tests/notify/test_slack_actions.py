"""Slack buttons: a signed interactivity request does the action and updates the message.

The message goes to the local Slack stand-in; the press comes to the dashboard's
`POST /slack/actions` over real HTTP, signed as Slack signs it (or not).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import MONITORS_YAML, STEP, VIGIL_YAML, ProjectFactory, WebStandIn
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.notify.actions import slack_signature
from vigil.scheduler.cycle import run_cycle
from vigil.web.server import WebServer

GROUPED = "\n".join(line for line in MONITORS_YAML.splitlines() if "group: none" not in line)
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK = (
    "  sl: {type: slack, token: '${SLACK_TOKEN}', channel: C42, api_url: '${SLACK_URL}',"
    " signing_secret: '${SLACK_SIGNING}'}\n"
)


@pytest.fixture
def pressed(project_dir: ProjectFactory, web: WebStandIn) -> Iterator[tuple[Any, httpx.Client]]:
    with_drop(project_dir, buckets=2)
    console = "  console: {type: console}\n"
    vigil = VIGIL_YAML.replace(console, console + SLACK)
    monitors = GROUPED.replace("channels: [console]", "channels: [sl]")
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    web.answer("/chat.postMessage", 200, {"ok": True, "channel": "C42", "ts": "1715256000.0001"})
    web.answer(
        "/files.getUploadURLExternal",
        200,
        {"ok": True, "upload_url": f"{web.url}/upload/F1", "file_id": "F1"},
    )
    env = {"SLACK_TOKEN": "xoxb-1", "SLACK_URL": web.url, "SLACK_SIGNING": SECRET}
    app, _ = app_for(root, env=env)
    app.clock.set(DROP + STEP)  # type: ignore[attr-defined]
    run_cycle(app, DROP + STEP)
    server = WebServer(app.project, app.clock, "127.0.0.1", 0)  # type: ignore[arg-type]
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield app, client
    finally:
        server.stop()


def _value(web: WebStandIn, label: str) -> str:
    sent = next(r.json() for r in web.requests if r.path == "/chat.postMessage")
    (buttons,) = [b for b in sent["blocks"] if b["type"] == "actions"]
    return next(e["value"] for e in buttons["elements"] if e["text"]["text"] == label)


def _post(client: httpx.Client, app: Any, value: str, **overrides: Any) -> httpx.Response:
    payload = {
        "type": "block_actions",
        "user": {"id": "U061F7AUR", "username": "anna", "name": "anna"},
        "container": {"type": "message", "channel_id": "C42", "message_ts": "1715256000.0001"},
        "actions": [{"action_id": "vigil_ak", "value": value, "action_ts": "1715256100.1"}],
        **overrides.pop("payload", {}),
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(overrides.pop("timestamp", int(app.clock.now().timestamp())))
    signature = overrides.pop("signature", slack_signature(SECRET, stamp, body))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }
    return client.post("/slack/actions", content=body, headers=headers)


def test_a_signed_press_acknowledges_and_updates_the_message_at_once(
    pressed: tuple[Any, httpx.Client], web: WebStandIn
) -> None:
    app, client = pressed
    response = _post(client, app, _value(web, "✔ Acknowledge"))
    assert response.status_code == 200
    assert response.json() == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "✔ Acknowledged by @anna at 2024-05-09 12:15 UTC",
    }
    (action,) = app.store.list_actions()
    assert (action.action, action.actor) == ("ack", "@anna")
    update = next(r.json() for r in web.requests if r.path == "/chat.update")
    assert (update["channel"], update["ts"]) == ("C42", "1715256000.0001")
    assert update["text"].endswith("✔ Acknowledged by @anna at 2024-05-09 12:15 UTC")
    assert [b["type"] for b in update["blocks"]] == ["section", "actions"]  # buttons kept
    # Slack retries a request it got no answer to: the same press is not done twice.
    assert _post(client, app, _value(web, "✔ Acknowledge")).json()["text"] == "Already done"
    assert [r.path for r in web.requests].count("/chat.update") == 1


def test_a_silence_press_silences_the_series(
    pressed: tuple[Any, httpx.Client], web: WebStandIn
) -> None:
    app, client = pressed
    _post(client, app, _value(web, "🔕 1 h"))
    assert len(app.store.list_silences(active_at=app.clock.now())) == 3


def test_forged_stale_and_unknown_presses_are_refused(
    pressed: tuple[Any, httpx.Client], web: WebStandIn
) -> None:
    app, client = pressed
    value = _value(web, "🔕 4 h")
    assert _post(client, app, value, signature="v0=" + "0" * 64).status_code == 401
    old = int(app.clock.now().timestamp()) - 600
    assert _post(client, app, value, timestamp=old).status_code == 401  # a replay
    assert app.store.list_actions() == []  # nothing unverified is even recorded
    other = {"container": {"channel_id": "C42", "message_ts": "1.0"}}
    refused = _post(client, app, value, payload=other)
    assert refused.status_code == 200
    assert refused.json()["text"] == "Not done: no such message from Vigil (an unknown incident)"
    forged = _post(
        client,
        app,
        value[:-3] + "abc",
        payload={
            "actions": [{"action_id": "vigil_s4", "value": value[:-3] + "abc", "action_ts": "2.0"}]
        },
    )
    assert forged.json()["text"].startswith("Not done: the button's data is not Vigil's")
    assert app.store.list_silences(active_at=app.clock.now()) == []
    assert [a.action for a in app.store.list_actions()] == ["refused", "refused"]
