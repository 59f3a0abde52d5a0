"""An incident's message is edited when the incident resolves, and answered in its thread.

Through real cycles against the local Telegram and Slack stand-ins: a drop in every series of
the dataset is one message; four normal buckets later that message is edited to say it is
resolved ("normal again from …, after …"), silently; with `resolve_after` a short reply
follows in its thread. Channels that cannot edit get the reply as a message of its own.
"""

from __future__ import annotations

from tests.conftest import (
    MONITORS_YAML,
    STEP,
    VIGIL_YAML,
    ProjectFactory,
    TelegramStandIn,
    WebStandIn,
)
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.model import DeliveryStatus
from vigil.scheduler.cycle import run_cycle

# The default grouping (one message per dataset and bucket), not the fixtures' `group: none`.
GROUPED = "\n".join(line for line in MONITORS_YAML.splitlines() if "group: none" not in line)

TG = "  tg: {type: telegram, token: '${TG_TOKEN}', chat_id: '7', api_url: '${TG_URL}'}\n"
SLACK = "  sl: {type: slack, token: '${SLACK_TOKEN}', channel: C42, api_url: '${SLACK_URL}'}\n"


def _cycles(app: object, count: int) -> None:
    for i in range(1, count + 1):
        run_cycle(app, DROP + i * STEP)  # type: ignore[arg-type]


def _telegram_project(project_dir: ProjectFactory, telegram: TelegramStandIn, extra: str = ""):  # type: ignore[no-untyped-def]
    with_drop(project_dir, buckets=2)
    vigil = VIGIL_YAML.replace("  console: {type: console}\n", "  console: {type: console}\n" + TG)
    monitors = GROUPED.replace("channels: [console]", "channels: [tg]" + extra)
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    return app_for(root, env={"TG_TOKEN": "1:t", "TG_URL": telegram.url})


def test_telegram_edits_the_incident_message_when_it_resolves(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    app, _ = _telegram_project(project_dir, telegram)
    _cycles(app, 8)
    methods = [c.method for c in telegram.calls]
    assert methods == ["sendMessage", "sendPhoto", "editMessageText"]  # nothing more pings
    sent, _, edit = telegram.calls
    assert edit.fields["message_id"] == 1  # the stand-in's id of the first sendMessage
    assert edit.fields["chat_id"] == "7"
    assert edit.fields["text"].startswith(sent.fields["text"])  # the message, kept whole
    assert edit.fields["text"].endswith(
        "<b>✅ Resolved</b>: normal again from 2024-05-09 12:30 UTC, after 30 min"
    )
    # Exactly once: later cycles do not edit again.
    _cycles_from(app, 9, 12)
    assert [c.method for c in telegram.calls] == methods


def _cycles_from(app: object, first: int, last: int) -> None:
    for i in range(first, last + 1):
        run_cycle(app, DROP + i * STEP)  # type: ignore[arg-type]


def test_with_resolve_after_a_reply_follows_in_the_thread(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    app, _ = _telegram_project(project_dir, telegram, "\n    resolve_after: 2")
    _cycles(app, 6)
    methods = [c.method for c in telegram.calls]
    assert methods == ["sendMessage", "sendPhoto", "editMessageText", "sendMessage"]
    reply = telegram.calls[-1]
    assert reply.fields["reply_to_message_id"] == 1
    assert reply.fields["text"].startswith("✅ Resolved: ")
    assert reply.fields["text"].endswith("normal again from 2024-05-09 12:30 UTC, after 30 min")


def test_an_edit_telegram_refuses_still_sends_the_reply(
    project_dir: ProjectFactory, telegram: TelegramStandIn
) -> None:
    app, _ = _telegram_project(project_dir, telegram, "\n    resolve_after: 2")
    telegram.fail_next(400, "Bad Request: message to edit not found", method="editMessageText")
    _cycles(app, 8)
    assert [c.method for c in telegram.calls] == ["sendMessage", "sendPhoto", "sendMessage"]
    waiting = (DeliveryStatus.PENDING, DeliveryStatus.FAILED, DeliveryStatus.SENDING)
    assert not list(app.store.outbox(waiting))  # the refused edit is not retried


def test_slack_updates_the_message_and_replies_in_its_thread(
    project_dir: ProjectFactory, web: WebStandIn
) -> None:
    with_drop(project_dir, buckets=2)
    vigil = VIGIL_YAML.replace(
        "  console: {type: console}\n", "  console: {type: console}\n" + SLACK
    )
    monitors = GROUPED.replace("channels: [console]", "channels: [sl]\n    resolve_after: 2")
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    web.answer("/chat.postMessage", 200, {"ok": True, "channel": "C42", "ts": "1715256000.0001"})
    web.answer(
        "/files.getUploadURLExternal",
        200,
        {"ok": True, "upload_url": f"{web.url}/upload/F1", "file_id": "F1"},
    )
    app, _ = app_for(root, env={"SLACK_TOKEN": "xoxb-1", "SLACK_URL": web.url})
    _cycles(app, 6)
    paths = [r.path for r in web.requests]
    assert paths[-2:] == ["/chat.update", "/chat.postMessage"]
    update, reply = (r.json() for r in web.requests[-2:])
    assert (update["channel"], update["ts"]) == ("C42", "1715256000.0001")
    assert update["text"].endswith(
        "✅ Resolved: normal again from 2024-05-09 12:30 UTC, after 30 min"
    )
    assert reply["thread_ts"] == "1715256000.0001"
    assert reply["text"].startswith("✅ Resolved: ")


def test_a_channel_that_cannot_edit_gets_one_resolve_message_per_message(
    project_dir: ProjectFactory,
) -> None:
    with_drop(project_dir, buckets=2)
    monitors = GROUPED.replace("channels: [console]", "channels: [console]\n    resolve_after: 2")
    app, out = app_for(project_dir.write({"monitors/main.yaml": monitors}))
    _cycles(app, 6)
    text = out.getvalue()
    assert text.count("✅ Resolved:") == 1  # three series, one message, one resolution
    assert "normal again from 2024-05-09 12:30 UTC, after 30 min" in text


MM = "  mm: {type: mattermost, url: '${MM_URL}', token: '${MM_TOKEN}', channel_id: ch1}\n"


def test_a_mattermost_bot_posts_with_the_chart_then_edits_and_replies_on_resolve(
    project_dir: ProjectFactory, web: WebStandIn
) -> None:
    with_drop(project_dir, buckets=2)
    console = "  console: {type: console}\n"
    vigil = VIGIL_YAML.replace(console, console + MM)
    monitors = GROUPED.replace("channels: [console]", "channels: [mm]\n    resolve_after: 2")
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    web.answer("/api/v4/files", 201, {"file_infos": [{"id": "F1"}]})
    web.answer("/api/v4/posts", 201, {"id": "post1"})
    app, _ = app_for(root, env={"MM_URL": web.url, "MM_TOKEN": "mm-bot-token"})
    _cycles(app, 6)
    calls = [(r.method, r.path) for r in web.requests]
    assert calls == [
        ("POST", "/api/v4/files"),
        ("POST", "/api/v4/posts"),
        ("PUT", "/api/v4/posts/post1/patch"),
        ("POST", "/api/v4/posts"),
    ]
    upload, posted, patch, reply = web.requests
    assert upload.headers["authorization"] == "Bearer mm-bot-token"
    assert posted.json()["file_ids"] == ["F1"]
    assert posted.json()["channel_id"] == "ch1"
    assert patch.json()["message"].endswith(
        "✅ Resolved: normal again from 2024-05-09 12:30 UTC, after 30 min"
    )
    assert reply.json()["root_id"] == "post1"
    assert reply.json()["message"].startswith("✅ Resolved: ")
