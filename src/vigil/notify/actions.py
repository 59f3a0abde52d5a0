"""Actions from the chat: the buttons under an alert or incident message, and what they do.

**Acknowledge** says someone is on it: the message says so, and the incident sends no
"Growing" follow-up until it resolves (a more severe one still goes out). **Silence 1 h /
4 h / until tomorrow** adds a silence for every series of the message, as the dashboard's
silences do. **False alarm** and **Expected** are the dashboard's feedback on the message's
alerts (`expected` keeps that series quiet at that time of day from then on).

Telegram delivers presses as `callback_query` updates, which `vigil run` (every few seconds)
and `vigil check` (before its cycle) fetch with getUpdates. Each button's data carries the
action, the message's key and a MAC keyed by the bot token, so a press cannot be forged by a
client or pointed at another message; a press of an unknown message, a forged one, or one by
someone not in `allowed_users` is refused (recorded, answered "not done", logged) and never
acted on. A press is recorded (by its update id) in the same transaction as everything it
does and the edit it queues: a crash before the commit leaves the update unconfirmed, so it
is fetched and done again; after the commit it is never done twice.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from vigil.config.project import Project
from vigil.errors import NotifyError
from vigil.model import (
    ChatAction,
    Feedback,
    FeedbackLabel,
    Notification,
    Segment,
    SeriesKey,
    Silence,
)
from vigil.store.base import Store
from vigil.timeutil import get_zone

log = logging.getLogger(__name__)

TOMORROW_HOUR = 9  # "until tomorrow" ends at 09:00 in the project's zone


@dataclass(frozen=True)
class Button:
    code: str  # in the callback data (short: Telegram allows 64 bytes)
    action: str
    label: str


BUTTONS = (
    Button("ak", "ack", "✔ Acknowledge"),
    Button("s1", "silence_1h", "🔕 1 h"),
    Button("s4", "silence_4h", "🔕 4 h"),
    Button("st", "silence_tomorrow", "🔕 Until tomorrow"),
    Button("fa", "false_alarm", "👎 False alarm"),
    Button("ex", "expected", "📅 Expected"),
)
_BY_CODE = {b.code: b for b in BUTTONS}
_KEY = 16  # characters of the message key in the data
_MAC = 12


def _mac(secret: bytes, payload: str) -> str:
    return hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()[:_MAC]


def action_secret(token: str) -> bytes:
    """The MAC key of a bot's buttons, derived from its token (which only Vigil knows)."""
    return hashlib.sha256(b"vigil-chat-actions|" + token.encode()).digest()


def callback_data(secret: bytes, code: str, key: str) -> str:
    """`v1:<code>:<key prefix>:<mac>`, under Telegram's 64 bytes."""
    payload = f"v1:{code}:{key[:_KEY]}"
    return f"{payload}:{_mac(secret, payload)}"


def parse_callback(secret: bytes, data: str) -> tuple[Button, str] | None:
    """(button, message key prefix) of genuine data, else None."""
    parts = data.split(":")
    if len(parts) != 4 or parts[0] != "v1" or parts[1] not in _BY_CODE:
        return None
    payload = ":".join(parts[:3])
    if not hmac.compare_digest(_mac(secret, payload), parts[3]):
        return None
    return _BY_CODE[parts[1]], parts[2]


def keyboard(secret: bytes, key: str) -> dict[str, Any]:
    """The inline keyboard of a message: acknowledge; three silences; two verdicts."""
    rows = [BUTTONS[:1], BUTTONS[1:4], BUTTONS[4:]]
    return {
        "inline_keyboard": [
            [{"text": b.label, "callback_data": callback_data(secret, b.code, key)} for b in row]
            for row in rows
        ]
    }


def perform(
    project: Project,
    store: Store,
    message: Notification,
    button: Button,
    actor: str,
    now: datetime,
    where: str,
) -> str:
    """Do what the button says (inside the caller's transaction); the line the message gets."""
    members = message.members or (
        (message.monitor, message.series.metric, message.series.segment.key),
    )
    tz = project.timezone
    if button.action == "ack":
        return f"✔ Acknowledged by {actor} at {_local(now, tz)}"
    if button.action.startswith("silence"):
        ends = _silence_end(button.action, now, tz)
        for monitor, metric, key in members:
            store.add_silence(
                Silence(
                    metric,
                    dict(Segment.from_key(key).tags),
                    now,
                    ends,
                    f"{button.label.split(' ', 1)[1]} from {where} by {actor}",
                    monitor,
                )
            )
        return f"🔕 Silenced until {_local(ends, tz)} by {actor}"
    label = FeedbackLabel.FALSE_ALARM if button.action == "false_alarm" else FeedbackLabel.EXPECTED
    chosen = set(members)
    bucket = message.bucket
    for row in store.list_alerts(since=bucket.start, until=bucket.end):
        r = row.result
        if (row.monitor, r.series.metric, r.series.segment.key) in chosen:
            store.save_feedback(
                Feedback(
                    row.monitor,
                    r.analyzer,
                    SeriesKey(r.series.metric, r.series.segment),
                    r.bucket,
                    label,
                    f"from {where}",
                    actor,
                    now,
                )
            )
    if label is FeedbackLabel.FALSE_ALARM:
        return f"👎 Marked a false alarm by {actor}"
    return f"📅 Marked expected by {actor}: this series stays quiet at this time of day"


def acknowledged(store: Store, keys: list[str]) -> bool:
    """Whether any of these messages was acknowledged."""
    return any(a.action == "ack" for key in keys for a in store.list_actions(key))


def edit_key(press: str) -> str:
    """The key of the edit a press queues."""
    return hashlib.sha256(f"action|{press}".encode()).hexdigest()[:32]


def edit_of(message: Notification, line: str, press: str) -> Notification:
    """The queued edit of a message after a press: its text with the press's line."""
    return Notification(
        key=edit_key(press),
        monitor=message.monitor,
        channel=message.channel,
        series=message.series,
        bucket=message.bucket,
        title=message.title,
        text=f"{message.text}\n{line}",
        html=f"{message.html}\n{_escape(line)}",
        image=None,
        severity=message.severity,
        kind="action-edit",
        members=message.members,
        remote_ref=message.remote_ref,
        reply_to=message.key,
    )


def record_press(
    project: Project,
    store: Store,
    press: ChatAction,
    message: Notification | None,
    button: Button | None,
    where: str,
) -> str:
    """Record one press and do it, in one transaction; return what to answer the presser."""
    with store.transaction():
        if message is None or button is None:
            if store.record_action(press):
                log.warning("%s: refused a button press: %s", press.channel, press.outcome)
            return "Not done: " + press.outcome.removeprefix("refused: ")
        line = perform(project, store, message, button, press.actor, press.created_at, where)
        done = replace(press, message_key=message.key, action=button.action, outcome=line)
        if not store.record_action(done):
            return "Already done"
        edit = edit_of(message, line, press.id)
        store.amend_message(message.key, edit.text, edit.html)
        store.enqueue([edit])
        return line


def poll_telegram(project: Project, store: Store, channel: Any, now: datetime) -> int:
    """Fetch and do the presses waiting for one Telegram channel; return how many."""
    last = store.last_action_seq(channel.name)
    try:
        updates = channel.updates(None if last is None else last + 1)
    except NotifyError as e:
        log.warning("telegram %s: cannot read button presses: %s", channel.name, e)
        return 0
    for update in updates:
        telegram_update(project, store, channel, update, now)
    return len(updates)


def telegram_update(
    project: Project, store: Store, channel: Any, update: dict[str, Any], now: datetime
) -> str | None:
    """Record and do one Telegram update (polled, or posted to the webhook); answer the
    button; return the key of the edit it queued, if any."""
    config = channel.config
    secret = action_secret(config.token.get_secret_value())
    seq = int(update.get("update_id", 0))
    query = update.get("callback_query") or {}
    who = query.get("from") or {}
    actor = f"@{who['username']}" if who.get("username") else str(who.get("id", "?"))
    press = ChatAction(f"{channel.name}:{seq}", channel.name, seq, "", "refused", actor, "", now)
    message, button, why = _resolve(store, channel.name, secret, query, config, who)
    if why:
        press = replace(press, outcome=f"refused: {why}")
    answer = record_press(project, store, press, message, button, "Telegram")
    if query.get("id"):
        try:
            channel.answer(str(query["id"]), answer)
        except NotifyError as e:  # the press is done; only the spinner stays
            log.warning("telegram %s: answerCallbackQuery failed: %s", channel.name, e)
    return None if message is None else edit_key(press.id)


def _resolve(
    store: Store, name: str, secret: bytes, query: dict[str, Any], config: Any, who: Any
) -> tuple[Notification | None, Button | None, str]:
    """The message and button of a callback query, or why it is refused."""
    if not query:
        return None, None, "not a button press"
    parsed = parse_callback(secret, str(query.get("data", "")))
    if parsed is None:
        return None, None, "the button's data is not Vigil's (forged or from another bot)"
    button, prefix = parsed
    sent = query.get("message") or {}
    chat = str((sent.get("chat") or {}).get("id", ""))
    if chat and chat != str(config.chat_id) and not str(config.chat_id).startswith("@"):
        return None, None, f"a press in chat {chat}, not the channel's"
    message = store.find_message(name, str(sent.get("message_id", "")))
    if message is None or not message.key.startswith(prefix):
        return None, None, "no such message from Vigil (an unknown incident)"
    allowed = config.allowed_users
    if allowed and not {f"@{who.get('username', '')}", str(who.get("id", ""))} & set(allowed):
        return None, None, "not one of allowed_users"
    return message, button, ""


def _silence_end(action: str, now: datetime, tz: str) -> datetime:
    if action == "silence_1h":
        return now + timedelta(hours=1)
    if action == "silence_4h":
        return now + timedelta(hours=4)
    zone = get_zone(tz)
    local = now.astimezone(zone)
    tomorrow = (local + timedelta(days=1)).replace(
        hour=TOMORROW_HOUR, minute=0, second=0, microsecond=0
    )
    return tomorrow.astimezone(now.tzinfo)


def _local(instant: datetime, tz: str) -> str:
    return f"{instant.astimezone(get_zone(tz)):%Y-%m-%d %H:%M} {tz}"


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def poll_chat_actions(
    project: Project, store: Store, channels: dict[str, Any], now: datetime
) -> int:
    """Do the button presses waiting in every chat channel with actions on; return how many.

    The edits they queue go out with the outbox's next delivery."""
    done = 0
    for channel in channels.values():
        config = getattr(channel, "config", None)
        polled = getattr(config, "actions", False) and not getattr(config, "webhook_secret", None)
        if polled and hasattr(channel, "updates"):
            done += poll_telegram(project, store, channel, now)
    return done


# --- Slack: presses arrive as signed interactivity requests ------------------------------

SLACK_MAX_AGE = 300  # seconds: an older request is refused (a replay of a captured one)


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature: v0= HMAC-SHA256 of `v0:<timestamp>:<body>`."""
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SlackAnswer:
    """The HTTP answer to Slack, and the edit to deliver now (if any)."""

    status: int
    text: str
    edit: str | None = None


def slack_press(
    project: Project,
    store: Store,
    body: bytes,
    headers: dict[str, str],
    now: datetime,
) -> SlackAnswer:
    """Verify and do one Slack interactivity request (a button press)."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not timestamp.isdigit() or abs(now.timestamp() - int(timestamp)) > SLACK_MAX_AGE:
        log.warning("slack: refused a request with a stale or missing timestamp")
        return SlackAnswer(401, "stale or missing X-Slack-Request-Timestamp")
    name = next(
        (
            n
            for n, c in project.settings.channels.items()
            if getattr(c, "type", "") == "slack"
            and c.signing_secret is not None  # type: ignore[union-attr]
            and hmac.compare_digest(
                slack_signature(c.signing_secret.get_secret_value(), timestamp, body),  # type: ignore[union-attr]
                signature,
            )
        ),
        None,
    )
    if name is None:
        log.warning("slack: refused a request whose signature matches no channel")
        return SlackAnswer(401, "bad X-Slack-Signature")
    config: Any = project.settings.channels[name]
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        action = payload["actions"][0]
        user = payload.get("user") or {}
        container = payload.get("container") or {}
        ref = f"{container['channel_id']} {container['message_ts']}"
        press_id = f"{name}:{action['action_ts']}:{user.get('id', '')}"
    except (KeyError, IndexError, TypeError, ValueError):
        return SlackAnswer(400, "not a block_actions payload")
    actor = f"@{user.get('username') or user.get('name') or user.get('id', '?')}"
    press = ChatAction(press_id, name, 0, "", "refused", actor, "", now)
    message, button, why = None, None, ""
    parsed = parse_callback(
        action_secret(config.signing_secret.get_secret_value()), str(action.get("value", ""))
    )
    if parsed is None:
        why = "the button's data is not Vigil's (forged or from another app)"
    else:
        button, prefix = parsed
        message = store.find_message(name, ref)
        if message is None or not message.key.startswith(prefix):
            message, why = None, "no such message from Vigil (an unknown incident)"
        elif config.allowed_users and not {actor, str(user.get("id", ""))} & set(
            config.allowed_users
        ):
            message, why = None, "not one of allowed_users"
    if why:
        press = replace(press, outcome=f"refused: {why}")
    answer = record_press(project, store, press, message, button, "Slack")
    edit = None if message is None else edit_key(press.id)
    return SlackAnswer(200, answer, edit)
