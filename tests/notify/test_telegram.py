"""Telegram delivery against a local server that speaks the Bot API shapes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from tests.conftest import TelegramStandIn, WebStandIn, is_png
from vigil.config.schema import ChannelConfig, TelegramChannelConfig
from vigil.errors import NotifyError
from vigil.model import Bucket, DeliveryStatus, Notification, Segment, SeriesKey
from vigil.notify import build_channel
from vigil.notify.chart import ChartData, render_chart
from vigil.notify.pipeline import deliver_outbox
from vigil.notify.telegram import TelegramChannel
from vigil.store.duckdb import DuckDBStore
from vigil.timeutil import Granularity

TOKEN = "123456:secret-bot-token"
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)


def channel(url: str) -> TelegramChannel:
    config = TelegramChannelConfig.model_validate(
        {"type": "telegram", "token": TOKEN, "chat_id": -1001, "api_url": url}
    )
    return TelegramChannel("tg", config)


@pytest.fixture
def png() -> bytes:
    import numpy as np

    g = Granularity.parse("15m")
    times = g.range(T0.replace(hour=0), T0)
    data = ChartData(
        "Likes",
        "likes · total",
        times,
        np.arange(len(times), dtype=float),
        {"yesterday": np.ones(len(times))},
        times[-1],
        1.0,
        5.0,
    )
    return render_chart(data, "UTC")


def note(png: bytes, key: str = "k", parts_sent: int = 0) -> Notification:
    return Notification(
        key=key,
        monitor="m",
        channel="tg",
        series=SeriesKey("likes", Segment.of({"os": "iOS"})),
        bucket=Bucket(T0, Granularity.parse("15m")),
        title="Likes · os=iOS",
        text="Likes dropped",
        html="<b>Likes</b> dropped &lt;50%",
        image=png,
        parts_sent=parts_sent,
    )


def test_message_then_chart_photo_arrive(telegram: TelegramStandIn, png: bytes) -> None:
    assert is_png(png)
    assert channel(telegram.url).deliver(note(png)) == 2
    message, photo = telegram.calls
    assert message.method == "sendMessage"
    assert message.token == TOKEN
    buttons = message.fields.pop("reply_markup")["inline_keyboard"]
    assert [len(row) for row in buttons] == [1, 3, 2]  # acknowledge, silences, verdicts
    assert message.fields == {
        "chat_id": "-1001",
        "text": "<b>Likes</b> dropped &lt;50%",
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }
    assert photo.method == "sendPhoto"
    assert photo.fields == {"chat_id": "-1001", "caption": "Likes · os=iOS"}
    assert photo.files["photo"] == png


@pytest.fixture
def store(tmp_path: Path, png: bytes) -> DuckDBStore:
    """A store whose outbox holds one pending notification with a chart."""
    store = DuckDBStore(tmp_path / "v.duckdb")
    store.migrate()
    store.enqueue([note(png)])
    return store


def test_outbox_resumes_from_the_part_that_failed(
    store: DuckDBStore, telegram: TelegramStandIn, png: bytes
) -> None:
    tg = channel(telegram.url)
    # First pass: sendMessage succeeds, sendPhoto is rate limited (retryable).
    telegram.fail_next(
        429, "Too Many Requests: retry after 1", method="sendPhoto", parameters={"retry_after": 1}
    )
    report = deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0)
    assert (report.sent, report.failed) == (0, 1)
    (row,) = store.notification_rows()
    assert (row["status"], row["attempts"], row["parts_sent"]) == ("failed", 1, 1)
    assert "HTTP 429" in row["last_error"]
    # Telegram asked for 1 s: a pass before that sends nothing.
    assert row["next_attempt_at"] == datetime(2024, 5, 1, 12, 0, 1)
    assert deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0).sent == 0
    # The next cycle after it: only the photo is sent.
    report = deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0 + timedelta(seconds=2))
    assert (report.sent, report.failed) == (1, 0)
    assert [c.method for c in telegram.calls] == ["sendMessage", "sendPhoto"]
    (row,) = store.notification_rows()
    assert (row["status"], row["attempts"], row["parts_sent"]) == ("sent", 2, 2)
    # A third pass sends nothing again.
    assert deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0 + timedelta(hours=1)).sent == 0
    assert len(telegram.calls) == 2


def test_client_error_gives_up_and_keeps_the_reason(
    store: DuckDBStore, telegram: TelegramStandIn, png: bytes
) -> None:
    telegram.fail_next(400, "Bad Request: chat not found")
    deliver_outbox(store, {"tg": channel(telegram.url)}, [TOKEN])
    (row,) = store.notification_rows()
    assert row["status"] == DeliveryStatus.GAVE_UP.value
    assert row["last_error"] == "telegram sendMessage: HTTP 400: Bad Request: chat not found"
    assert deliver_outbox(store, {"tg": channel(telegram.url)}, [TOKEN]).sent == 0


def test_server_errors_back_off_exponentially(
    store: DuckDBStore, telegram: TelegramStandIn, png: bytes
) -> None:
    tg = channel(telegram.url)
    now = T0
    waits = []
    for _ in range(3):
        telegram.fail_next(502, "Bad Gateway")
        deliver_outbox(store, {"tg": tg}, [TOKEN], now=now)
        (row,) = store.notification_rows()
        retry_at = row["next_attempt_at"].replace(tzinfo=UTC)
        waits.append((retry_at - now).total_seconds())
        now = retry_at
    assert waits == [30, 60, 120]
    assert deliver_outbox(store, {"tg": tg}, [TOKEN], now=now).sent == 1


def test_unreachable_server_error_never_contains_the_token(png: bytes) -> None:
    tg = channel("http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(NotifyError) as info:
        tg.deliver(note(png))
    assert TOKEN not in str(info.value)
    assert "secret" not in str(info.value)
    assert info.value.retryable


def test_forum_topic_is_sent_with_both_parts(telegram: TelegramStandIn, png: bytes) -> None:
    config = TelegramChannelConfig.model_validate(
        {
            "type": "telegram",
            "token": TOKEN,
            "chat_id": -1001,
            "api_url": telegram.url,
            "message_thread_id": 77,
        }
    )
    TelegramChannel("tg", config).deliver(note(png))
    message, photo = telegram.calls
    assert message.fields["message_thread_id"] == 77
    assert photo.fields["message_thread_id"] == "77"


def test_a_rate_limit_holds_the_whole_channel_and_order_is_kept(
    tmp_path: Path, telegram: TelegramStandIn, png: bytes
) -> None:
    store = DuckDBStore(tmp_path / "v.duckdb")
    store.migrate()
    store.enqueue([replace(note(png, key=f"k{i}"), image=None) for i in range(3)])
    tg = channel(telegram.url)
    telegram.fail_next(429, "Too Many Requests", parameters={"retry_after": 120})
    report = deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0)
    # The first message was refused; the channel waits, the two newer ones are not tried.
    assert (report.sent, report.failed) == (0, 1)
    assert telegram.calls == []
    # A notification queued meanwhile waits behind the held one too.
    store.enqueue([replace(note(png, key="k3"), image=None)])
    assert deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0 + timedelta(seconds=60)).sent == 0
    assert telegram.calls == []
    report = deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0 + timedelta(seconds=121))
    assert report.sent == 4
    assert len(telegram.calls) == 4  # the held message first, then the rest in order
    sent = {r["key"]: r["sent_at"] for r in store.notification_rows()}
    assert sorted(sent, key=lambda k: (sent[k], k)) == ["k0", "k1", "k2", "k3"]


def test_max_attempts_of_the_channel_is_honoured(
    store: DuckDBStore, telegram: TelegramStandIn, png: bytes
) -> None:
    config = TelegramChannelConfig.model_validate(
        {
            "type": "telegram",
            "token": TOKEN,
            "chat_id": 1,
            "api_url": telegram.url,
            "max_attempts": 2,
        }
    )
    tg = TelegramChannel("tg", config)
    for _ in range(3):
        telegram.fail_next(500, "server error")
    deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0)
    deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0 + timedelta(hours=1))
    deliver_outbox(store, {"tg": tg}, [TOKEN], now=T0 + timedelta(hours=2))
    (row,) = store.notification_rows()
    assert (row["status"], row["attempts"]) == ("gave_up", 2)


@pytest.mark.parametrize("kind", ["webhook", "slack", "mattermost", "teams"])
def test_max_attempts_holds_on_every_http_channel(
    store: DuckDBStore, web: WebStandIn, kind: str
) -> None:
    url = f"{web.url}/hook"
    fields = {"webhook": {"url": url}}.get(kind, {"webhook_url": url})
    config = TypeAdapter(ChannelConfig).validate_python({"type": kind, "max_attempts": 3, **fields})
    built = build_channel("out", config)
    for _ in range(5):
        web.answer("/hook", 503, {"ok": False})
    for hour in range(5):
        deliver_outbox(store, {"tg": built}, [], now=T0 + timedelta(hours=hour))
    (row,) = store.notification_rows()
    assert (row["status"], row["attempts"]) == ("gave_up", 3)
    assert len(web.requests) == 3
