"""The duplicate window, per channel: a SIGKILL after the channel took a part, before Vigil
stored the outcome. Telegram (no idempotency key) resends that part tagged as a resend;
a webhook resends it with the same idempotency key; nothing else is sent twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    MONITORS_YAML,
    START,
    VIGIL_YAML,
    ProjectFactory,
    Recorded,
    Reply,
    TelegramStandIn,
    WebStandIn,
    event_rows,
    serving,
    write_events,
)
from vigil.config import load_project
from vigil.notify.pipeline import RESENT_TAG
from vigil.notify.webhook import KEY_HEADER
from vigil.store.duckdb import DuckDBStore

REPLAY_FROM = START + timedelta(days=8)
REPLAY_TO = START + timedelta(days=8, hours=12)
DROPS = {REPLAY_FROM + timedelta(hours=h): 0.2 for h in (2, 5, 8)}


class Killer:
    """Kills the client process while answering its `nth` request to a path ending `target`."""

    def __init__(self, target: str, nth: int = 1) -> None:
        self.target = target
        self.nth = nth
        self.seen = 0
        self.victim: subprocess.Popen[str] | None = None

    def after(self, path: str) -> None:
        if path.endswith(self.target) and self.victim is not None:
            self.seen += 1
            if self.seen == self.nth:
                os.kill(self.victim.pid, signal.SIGKILL)
                self.victim.wait(timeout=30)  # dead before it could read the answer


class _Killing:
    """A stand-in that lets its killer act after each answer it prepares."""

    killer: Killer

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        reply: Reply = super().handle(path, headers, body)  # type: ignore[misc]
        self.killer.after(path)
        return reply


class KillingTelegram(_Killing, TelegramStandIn):
    def __init__(self, killer: Killer) -> None:
        self.killer = killer
        super().__init__()


class KillingWeb(_Killing, WebStandIn):
    def __init__(self, killer: Killer) -> None:
        self.killer = killer
        super().__init__()


def _project(project_dir: ProjectFactory, channel: str) -> Path:
    write_events(
        project_dir.root / "app.duckdb", event_rows(START, 9, {"iOS": 10, "Android": 20}, DROPS)
    )
    vigil_yaml = (
        VIGIL_YAML.replace(
            "  console: {type: console}\n", f"  console: {{type: console}}\n{channel}"
        ).replace("cooldown: 3h", "cooldown: 1m")
        + "  dataset_timestamp_offset: null\n"
    )
    monitors = MONITORS_YAML.replace("buckets: 1", "buckets: 1\n    segments: total").replace(
        "channels: [console]", "channels: [out]"
    )
    return project_dir.write({"vigil.yaml": vigil_yaml, "monitors/main.yaml": monitors})


def _replay(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    args = ("replay", "--from", REPLAY_FROM.isoformat(), "--to", REPLAY_TO.isoformat())
    return subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "--project", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _killed_then_resumed(root: Path, env: dict[str, str], killer: Killer) -> list[dict[str, Any]]:
    first = _replay(root, env)
    killer.victim = first
    _, err = first.communicate(timeout=120)
    assert first.returncode == -signal.SIGKILL, f"the stand-in did not kill the replay: {err}"
    killer.victim = None
    second = _replay(root, env)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    project = load_project(root, env=env)
    rows = DuckDBStore(project.resolve_path("vigil.duckdb")).notification_rows()
    assert {r["status"] for r in rows} == {"sent"}  # nothing lost, nothing left in flight
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sendMessage", "sendPhoto", "editMessageText"])
def test_telegram_resends_the_part_in_flight_tagged_and_nothing_else(
    project_dir: ProjectFactory, method: str
) -> None:
    killer = Killer(method)
    telegram = KillingTelegram(killer)
    for server in serving(telegram):
        channel = (
            "  out: {type: telegram, token: '${TG_TOKEN}', chat_id: '1', api_url: '${TG_URL}'}\n"
        )
        root = _project(project_dir, channel)
        rows = _killed_then_resumed(root, {"TG_TOKEN": "1:kill-test", "TG_URL": server.url}, killer)
    alerts = [r for r in rows if r["kind"] != "resolved-edit"]
    assert len(alerts) == len(DROPS)
    # Each incident's message is edited once when it resolves (an edit, not a new message).
    edits = [c for c in telegram.calls if c.method == "editMessageText"]
    assert len(rows) - len(alerts) == len(DROPS)
    if method == "editMessageText":  # an edit in flight is simply done again, untagged
        assert len(edits) == len(DROPS) + 1
        assert edits[0].fields == edits[1].fields
        assert not any(RESENT_TAG in e.fields["text"] for e in edits)
        assert len([c for c in telegram.calls if c.method == "sendMessage"]) == len(DROPS)
        return
    assert len(edits) == len(DROPS)
    texts = [c.fields["text"] for c in telegram.calls if c.method == "sendMessage"]
    captions = [c.fields["caption"] for c in telegram.calls if c.method == "sendPhoto"]
    if method == "sendMessage":  # the text may have arrived: it is sent again, tagged
        assert len(texts) == len(DROPS) + 1
        tagged = [t for t in texts if RESENT_TAG in t]
        assert len(tagged) == 1
        assert texts.count(texts[0]) == 1  # the first copy was untagged
        assert tagged[0].replace(f"<i>{RESENT_TAG}</i>\n", "") == texts[0]
        assert len(captions) == len(DROPS)
        assert not any(RESENT_TAG in c for c in captions)
    else:  # the text was recorded as sent: only the photo repeats, with a tagged caption
        assert len(texts) == len(DROPS)
        assert len(set(texts)) == len(texts)
        assert not any(RESENT_TAG in t for t in texts)
        assert len(captions) == len(DROPS) + 1
        assert sum(RESENT_TAG in c for c in captions) == 1
        assert captions[1] == f"{captions[0]} {RESENT_TAG}"


def _dedupe_key(kind: str, request: Recorded) -> str:
    if kind == "webhook":
        return request.headers[KEY_HEADER.lower()]
    return str(request.json()["dedup_key"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "channel"),
    [
        ("webhook", "  out: {type: webhook, url: '${HOOK_URL}'}\n"),
        (
            "pagerduty",
            "  out: {type: pagerduty, routing_key: '${PD_KEY}', api_url: '${HOOK_URL}'}\n",
        ),
    ],
)
def test_a_dedupe_key_channel_resends_the_request_in_flight_unchanged(
    project_dir: ProjectFactory, kind: str, channel: str
) -> None:
    killer = Killer("/hook")
    web = KillingWeb(killer)
    for server in serving(web):
        root = _project(project_dir, channel)
        env = {"HOOK_URL": f"{server.url}/hook", "PD_KEY": "pd-routing-key-123"}
        rows = _killed_then_resumed(root, env, killer)
    # PagerDuty also hears each incident's resolution (a `resolve` event per drop).
    resolves = [r for r in web.requests if r.json().get("event_action") == "resolve"]
    assert len(resolves) == (len(DROPS) if kind == "pagerduty" else 0)
    assert len([r for r in rows if r["kind"] == "resolved"]) == len(resolves)
    rows = [r for r in rows if r["kind"] != "resolved"]
    requests = [r for r in web.requests if r not in resolves]
    keys = [_dedupe_key(kind, r) for r in requests]
    assert len(rows) == len(DROPS)
    assert len(keys) == len(DROPS) + 1
    assert keys[0] == keys[1]
    if kind == "webhook":  # one key per notification: the receiver drops the repeat
        assert len(set(keys)) == len(DROPS)
    else:  # one dedup_key per monitor and series: the repeat updates the same incident
        assert len(set(keys)) == 1
    assert len({r.body for r in requests}) == len(DROPS)
    assert requests[0].body == requests[1].body  # an idempotent resend is unchanged
    assert not any(RESENT_TAG.encode() in r.body for r in web.requests)
