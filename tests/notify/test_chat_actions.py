"""Buttons under a Telegram message: every action, refusals, and exactly-once across a kill.

Through real cycles against the local Telegram stand-in, which queues `callback_query`
updates as a chat does and forgets them once a getUpdates offset confirms them.
"""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import MONITORS_YAML, STEP, VIGIL_YAML, ProjectFactory, TelegramStandIn
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.app import build_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.model import FeedbackLabel
from vigil.notify.actions import action_secret, callback_data, poll_chat_actions
from vigil.notify.pipeline import deliver_outbox
from vigil.scheduler.cycle import run_cycle
from vigil.web.server import WebServer

GROUPED = "\n".join(line for line in MONITORS_YAML.splitlines() if "group: none" not in line)
TG = "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '7', api_url: '${TG_URL}'%s}\n"
TOKEN = "1:secret-bot-token"


def _project(project_dir: ProjectFactory, telegram: TelegramStandIn, extra: str = "") -> Any:
    with_drop(project_dir, buckets=2)
    channel = TG % extra
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n", "  console: {type: console}\n" + channel
    )
    monitors = GROUPED.replace("channels: [console]", "channels: [tg]")
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    app, _ = app_for(root, env={"TG_TOKEN": TOKEN, "TG_URL": telegram.url})
    app.clock.set(DROP + STEP)
    run_cycle(app, DROP + STEP)  # the drop: one incident message with its buttons
    return app


def _buttons(telegram: TelegramStandIn) -> dict[str, str]:
    sent = next(c for c in telegram.calls if c.method == "sendMessage")
    rows = sent.fields["reply_markup"]["inline_keyboard"]
    return {b["text"]: b["callback_data"] for row in rows for b in row}


def _poll(app: Any) -> int:
    done = poll_chat_actions(app.project, app.store, app.channels, app.clock.now())
    deliver_outbox(app.store, app.channels, app.project.secrets, app.clock.now())
    return done


def test_the_message_carries_six_buttons_with_short_signed_data(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    _project(project_dir, telegram)
    buttons = _buttons(telegram)
    assert list(buttons) == [
        "✔ Acknowledge",
        "🔕 1 h",
        "🔕 4 h",
        "🔕 Until tomorrow",
        "👎 False alarm",
        "📅 Expected",
    ]
    assert all(len(d.encode()) <= 64 for d in buttons.values())  # Telegram's limit


def test_acknowledge_edits_the_message_keeps_the_buttons_and_answers_once(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    app = _project(project_dir, telegram)
    telegram.press(1, _buttons(telegram)["✔ Acknowledge"])
    assert _poll(app) == 1
    edit = next(c for c in telegram.calls if c.method == "editMessageText")
    assert edit.fields["message_id"] == 1
    assert "✔ Acknowledged by @anna at 2024-05-09 12:15 UTC" in edit.fields["text"]
    assert edit.fields["reply_markup"]["inline_keyboard"]  # still there: silence next
    answer = next(c for c in telegram.calls if c.method == "answerCallbackQuery")
    assert answer.fields == {
        "callback_query_id": "cq101",
        "text": "✔ Acknowledged by @anna at 2024-05-09 12:15 UTC",
    }
    (action,) = app.store.list_actions()
    assert (action.action, action.actor, action.id) == ("ack", "@anna", "tg:101")
    # The next poll confirms the update (offset 102): nothing is done twice.
    assert _poll(app) == 0
    assert telegram.polls[-1]["offset"] == 102
    assert [c.method for c in telegram.calls].count("editMessageText") == 1
    # When the incident resolves, its edit keeps the acknowledgement and drops the buttons.
    for i in range(2, 9):
        run_cycle(app, DROP + i * STEP)
    resolved = [c for c in telegram.calls if c.method == "editMessageText"][-1]
    assert "✔ Acknowledged by @anna" in resolved.fields["text"]
    assert "✅ Resolved" in resolved.fields["text"]
    assert "reply_markup" not in resolved.fields


def test_silence_buttons_silence_every_series_of_the_message(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    app = _project(project_dir, telegram)
    telegram.press(1, _buttons(telegram)["🔕 4 h"], username="ben")
    _poll(app)
    silences = app.store.list_silences(active_at=app.clock.now())
    assert {(s.metric, tuple(sorted(s.segment.items()))) for s in silences} == {
        ("actions", ()),
        ("actions", (("os", "iOS"),)),
        ("actions", (("os", "Android"),)),
    }
    assert all(s.ends_at - s.starts_at == timedelta(hours=4) for s in silences)
    assert all(s.monitor == "main" and "@ben" in s.reason for s in silences)
    telegram.press(1, _buttons(telegram)["🔕 Until tomorrow"])
    _poll(app)
    later = app.store.list_silences(active_at=app.clock.now())
    assert max(s.ends_at for s in later).isoformat() == "2024-05-10T09:00:00+00:00"


@pytest.mark.parametrize(
    ("button", "label"),
    [("👎 False alarm", FeedbackLabel.FALSE_ALARM), ("📅 Expected", FeedbackLabel.EXPECTED)],
)
def test_verdict_buttons_are_the_dashboards_feedback(
    project_dir: ProjectFactory, telegram: TelegramStandIn, button: str, label: FeedbackLabel
) -> None:
    app = _project(project_dir, telegram)
    telegram.press(1, _buttons(telegram)[button])
    _poll(app)
    feedback = app.store.list_feedback()
    assert feedback
    assert {f.label for f in feedback} == {label}
    assert {f.author for f in feedback} == {"@anna"}
    assert {f.series.segment.key for f in feedback} == {"{}", '{"os": "iOS"}', '{"os": "Android"}'}


def test_forged_unknown_and_unauthorised_presses_are_refused(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    app = _project(project_dir, telegram, ", allowed_users: ['@anna']")
    good = _buttons(telegram)["🔕 1 h"]
    forged = good[:-4] + "0000"  # the MAC does not match
    other_bot = callback_data(action_secret("2:another-bot"), "s1", good.split(":")[2])
    telegram.press(1, forged)
    telegram.press(1, other_bot)
    telegram.press(99, good)  # no message 99 from Vigil
    telegram.press(1, good, username="mallory", user_id=666)
    telegram.press(1, good, chat_id="-100123")  # a press in another chat
    assert _poll(app) == 5
    assert app.store.list_silences(active_at=app.clock.now()) == []
    assert not any(c.method == "editMessageText" for c in telegram.calls)
    refused = app.store.list_actions()
    assert [a.action for a in refused] == ["refused"] * 5
    assert [a.outcome for a in refused] == [
        "refused: the button's data is not Vigil's (forged or from another bot)",
        "refused: the button's data is not Vigil's (forged or from another bot)",
        "refused: no such message from Vigil (an unknown incident)",
        "refused: not one of allowed_users",
        "refused: a press in chat -100123, not the channel's",
    ]
    answers = [c.fields["text"] for c in telegram.calls if c.method == "answerCallbackQuery"]
    assert all(a.startswith("Not done: ") for a in answers)
    telegram.press(1, good)  # anna may
    _poll(app)
    assert len(app.store.list_silences(active_at=app.clock.now())) == 3


KILLED_POLL = """
import io, os, sys
from datetime import datetime
from pathlib import Path

from vigil.app import build_app
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.notify.actions import poll_chat_actions
from vigil.store.sql import SQLStore

def dying(self, key, text, html):
    os._exit(9)  # as a kill -9 after the silences were written, before the commit

SQLStore.amend_message = dying
project = load_project(Path(sys.argv[1]), env={"TG_TOKEN": sys.argv[2], "TG_URL": sys.argv[3]})
app = build_app(project, ManualClock(datetime.fromisoformat(sys.argv[4])), io.StringIO())
poll_chat_actions(app.project, app.store, app.channels, app.clock.now())
"""


def test_a_kill_between_a_press_and_its_record_neither_loses_nor_doubles_it(
    project_dir: ProjectFactory, telegram: TelegramStandIn, tmp_path: Any
) -> None:
    app = _project(project_dir, telegram)
    now = app.clock.now()
    app.close()
    telegram.press(1, _buttons(telegram)["🔕 1 h"])
    script = tmp_path / "killed.py"
    script.write_text(KILLED_POLL, encoding="utf-8")
    ran = subprocess.run(
        [sys.executable, str(script), str(project_dir.root), TOKEN, telegram.url, now.isoformat()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 9, ran.stderr
    project = load_project(project_dir.root, env={"TG_TOKEN": TOKEN, "TG_URL": telegram.url})
    again = build_app(project, ManualClock(now), io.StringIO())
    assert again.store.list_actions() == []  # rolled back with the silences
    assert again.store.list_silences(active_at=now) == []
    assert _poll(again) == 1  # the update was not confirmed: fetched and done now
    assert len(again.store.list_silences(active_at=now)) == 3
    assert _poll(again) == 0
    assert len(again.store.list_silences(active_at=now)) == 3
    assert [c.method for c in telegram.calls].count("editMessageText") == 1


def test_a_bot_with_a_webhook_gets_presses_posted_to_the_dashboard(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    app = _project(project_dir, telegram, ", webhook_secret: 'hook-s3cret-token'")
    assert _poll(app) == 0  # not polled: Telegram refuses getUpdates beside a webhook
    assert telegram.polls == []
    server = WebServer(app.project, app.clock, "127.0.0.1", 0)
    url = server.start()
    update = {
        "update_id": 555,
        "callback_query": {
            "id": "cq555",
            "from": {"id": 42, "username": "anna"},
            "message": {"message_id": 1, "chat": {"id": "7"}},
            "data": _buttons(telegram)["🔕 1 h"],
        },
    }
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            forged = client.post(
                "/telegram/tg/updates",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"},
            )
            assert forged.status_code == 401
            assert app.store.list_actions() == []
            done = client.post(
                "/telegram/tg/updates",
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": "hook-s3cret-token"},
            )
            assert done.status_code == 200
    finally:
        server.stop()
    assert len(app.store.list_silences(active_at=app.clock.now())) == 3
    methods = [c.method for c in telegram.calls]
    assert "answerCallbackQuery" in methods
    assert "editMessageText" in methods  # the message shows it at once
