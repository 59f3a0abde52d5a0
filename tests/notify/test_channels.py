"""Every channel against a local stand-in: exact payloads, images, retries and errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import WebStandIn, is_png
from tests.notify.conftest import Inbox, free_port
from vigil.config.schema import (
    EmailChannelConfig,
    MattermostChannelConfig,
    PagerDutyChannelConfig,
    SlackChannelConfig,
    TeamsChannelConfig,
    WebhookChannelConfig,
)
from vigil.errors import NotifyError
from vigil.model import Bucket, Notification, Segment, SeriesKey
from vigil.notify.email import EmailChannel
from vigil.notify.mattermost import MattermostChannel
from vigil.notify.pagerduty import PagerDutyChannel, dedup_key
from vigil.notify.slack import SlackChannel
from vigil.notify.teams import TeamsChannel
from vigil.notify.webhook import WebhookChannel
from vigil.timeutil import Granularity

T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000
TEXT = "🟠 Likes · os=iOS\nValue: 2 at 2024-05-01 12:00\nOwners: @feed"


def note(parts_sent: int = 0, image: bytes | None = PNG) -> Notification:
    return Notification(
        key="k123",
        monitor="product",
        channel="c",
        series=SeriesKey("likes", Segment.of({"os": "iOS"})),
        bucket=Bucket(T0, Granularity.parse("15m")),
        title="Likes · os=iOS",
        text=TEXT,
        html="<b>Likes</b>",
        image=image,
        parts_sent=parts_sent,
        recipients="@feed @ios",
        severity="high",
    )


def test_webhook_posts_the_documented_body_signed_with_hmac(web: WebStandIn) -> None:
    config = WebhookChannelConfig(type="webhook", url=f"{web.url}/hook", secret="s3cret")
    assert WebhookChannel("hook", config).deliver(note()) == 1
    (request,) = web.requests
    body = request.json()
    assert body == {
        "key": "k123",
        "monitor": "product",
        "severity": "high",
        "metric": "likes",
        "segment": {"os": "iOS"},
        "bucket_start": "2024-05-01T12:00:00+00:00",
        "bucket_end": "2024-05-01T12:15:00+00:00",
        "granularity": "15m",
        "title": "Likes · os=iOS",
        "text": TEXT,
        "recipients": ["@feed", "@ios"],
        "chart_png_base64": base64.b64encode(PNG).decode(),
    }
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-vigil-signature"] == f"sha256={expected}"
    assert request.headers["x-vigil-key"] == "k123"


def test_webhook_errors_are_classified_and_honour_retry_after(web: WebStandIn) -> None:
    channel = WebhookChannel("hook", WebhookChannelConfig(type="webhook", url=f"{web.url}/hook"))
    web.answer("/hook", 429, {"error": "slow down"}, **{"Retry-After": "7"})
    with pytest.raises(NotifyError) as info:
        channel.deliver(note())
    assert (info.value.retryable, info.value.retry_after) == (True, 7.0)
    web.answer("/hook", 404, {"error": "no such hook"})
    with pytest.raises(NotifyError) as info:
        channel.deliver(note())
    assert not info.value.retryable
    assert "HTTP 404" in str(info.value)
    assert "/hook" not in str(info.value)


def slack(web: WebStandIn) -> SlackChannel:
    config = SlackChannelConfig(type="slack", token="xoxb-1", channel="C42", api_url=web.url)
    return SlackChannel("slack", config)


def test_slack_bot_posts_the_message_then_uploads_the_chart(web: WebStandIn) -> None:
    web.answer(
        "/files.getUploadURLExternal",
        200,
        {"ok": True, "upload_url": f"{web.url}/upload/F1", "file_id": "F1"},
    )
    assert slack(web).deliver(note()) == 2
    paths = [r.path for r in web.requests]
    assert paths == [
        "/chat.postMessage",
        "/files.getUploadURLExternal",
        "/upload/F1",
        "/files.completeUploadExternal",
    ]
    message = web.requests[0]
    assert message.headers["authorization"] == "Bearer xoxb-1"
    assert message.json() == {
        "channel": "C42",
        "text": "*🟠 Likes · os=iOS*\nValue: 2 at 2024-05-01 12:00\nOwners: @feed",
        "mrkdwn": True,
        "unfurl_links": False,
    }
    fields, _ = web.requests[1].form()
    assert fields == {"filename": "chart.png", "length": str(len(PNG))}
    _, files = web.requests[2].form()
    assert files["file"] == PNG
    assert web.requests[3].json() == {
        "files": [{"id": "F1", "title": "Likes · os=iOS"}],
        "channel_id": "C42",
    }


def test_slack_api_errors_in_a_200_body_are_understood(web: WebStandIn) -> None:
    web.answer("/chat.postMessage", 200, {"ok": False, "error": "channel_not_found"})
    with pytest.raises(NotifyError, match=r"slack chat\.postMessage: channel_not_found") as info:
        slack(web).deliver(note())
    assert not info.value.retryable
    web.answer("/chat.postMessage", 200, {"ok": False, "error": "ratelimited"})
    with pytest.raises(NotifyError) as info:
        slack(web).deliver(note())
    assert info.value.retryable


def test_slack_resumes_with_the_chart_when_the_message_was_sent(web: WebStandIn) -> None:
    web.answer(
        "/files.getUploadURLExternal",
        200,
        {"ok": True, "upload_url": f"{web.url}/upload/F2", "file_id": "F2"},
    )
    assert slack(web).deliver(note(parts_sent=1)) == 2
    assert "/chat.postMessage" not in [r.path for r in web.requests]


def test_slack_incoming_webhook_sends_text_only(web: WebStandIn) -> None:
    config = SlackChannelConfig(type="slack", webhook_url=f"{web.url}/services/T/B/X")
    assert SlackChannel("slack", config).deliver(note()) == 1
    (request,) = web.requests
    assert request.path == "/services/T/B/X"
    assert request.json() == {
        "text": "*🟠 Likes · os=iOS*\nValue: 2 at 2024-05-01 12:00\nOwners: @feed"
    }


def test_slack_config_needs_token_and_channel_or_a_webhook() -> None:
    with pytest.raises(ValueError, match="give either token"):
        SlackChannelConfig(type="slack")
    with pytest.raises(ValueError, match="a bot token needs a channel id"):
        SlackChannelConfig(type="slack", token="xoxb-1")


def test_pagerduty_triggers_with_a_stable_dedup_key(web: WebStandIn) -> None:
    config = PagerDutyChannelConfig(
        type="pagerduty", routing_key="R0UT1NG", api_url=f"{web.url}/v2/enqueue"
    )
    web.answer("/v2/enqueue", 202, {"status": "success", "dedup_key": "x"})
    assert PagerDutyChannel("pd", config).deliver(note()) == 1
    event = web.requests[0].json()
    assert event == {
        "routing_key": "R0UT1NG",
        "event_action": "trigger",
        "dedup_key": dedup_key(note()),
        "payload": {
            "summary": "Likes · os=iOS",
            "source": "vigil:product",
            "severity": "error",
            "timestamp": "2024-05-01T12:00:00+00:00",
            "component": "likes",
            "custom_details": {"segment": {"os": "iOS"}, "text": TEXT, "owners": "@feed @ios"},
        },
    }
    later = note()
    assert dedup_key(later) == event["dedup_key"]  # the same series maps to one incident


def test_teams_and_mattermost_webhooks(web: WebStandIn) -> None:
    teams = TeamsChannelConfig(type="teams", webhook_url=f"{web.url}/teams")
    mattermost = MattermostChannelConfig(
        type="mattermost", webhook_url=f"{web.url}/mm", channel="alerts", username="vigil"
    )
    assert TeamsChannel("t", teams).deliver(note()) == 1
    assert MattermostChannel("m", mattermost).deliver(note()) == 1
    card, post = (r.json() for r in web.requests)
    assert card == {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": "Likes · os=iOS",
        "themeColor": "FF7F0E",
        "title": "Likes · os=iOS",
        "text": "Value: 2 at 2024-05-01 12:00<br>Owners: @feed",
    }
    assert post == {
        "text": "**🟠 Likes · os=iOS**\nValue: 2 at 2024-05-01 12:00\nOwners: @feed",
        "channel": "alerts",
        "username": "vigil",
    }


def test_email_has_text_html_and_the_chart_inline(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    config = EmailChannelConfig(
        type="email",
        host="127.0.0.1",
        port=port,
        security="none",
        sender="vigil@example.com",
        to=["oncall@example.com"],
    )
    assert EmailChannel("mail", config).deliver(note()) == 1
    ((sender, recipients, message),) = inbox.messages
    assert (sender, recipients) == ("vigil@example.com", ["oncall@example.com"])
    assert message["Subject"] == "[high] Likes · os=iOS"
    assert message["X-Vigil-Key"] == "k123"
    parts = {p.get_content_type(): p for p in message.walk()}
    plain = parts["text/plain"].get_payload(decode=True).decode()
    assert plain.replace("\r\n", "\n") == TEXT + "\n"  # SMTP line endings are CRLF
    html = parts["text/html"].get_payload(decode=True).decode()
    assert "<h3>Likes · os=iOS</h3>" in html
    image = parts["image/png"]
    assert image.get_payload(decode=True) == PNG
    assert f'src="cid:{image["Content-ID"][1:-1]}"' in html
    assert is_png(image.get_payload(decode=True))


def test_email_server_down_is_retryable() -> None:
    config = EmailChannelConfig(
        type="email",
        host="127.0.0.1",
        port=free_port(),
        security="none",
        sender="a@b.c",
        to=["d@e.f"],
    )
    with pytest.raises(NotifyError) as info:
        EmailChannel("mail", config).deliver(note())
    assert info.value.retryable


def test_pagerduty_resolves_the_same_incident(web: WebStandIn) -> None:
    from dataclasses import replace

    config = PagerDutyChannelConfig(
        type="pagerduty", routing_key="R0UT1NG", api_url=f"{web.url}/v2/enqueue"
    )
    channel = PagerDutyChannel("pd", config)
    channel.deliver(note())
    channel.deliver(replace(note(), key="k124", kind="resolved"))
    trigger, resolve = (r.json() for r in web.requests)
    assert resolve == {
        "routing_key": "R0UT1NG",
        "event_action": "resolve",
        "dedup_key": trigger["dedup_key"],
    }


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"vigil", b"pw")
    return AuthResult(success=ok)


@pytest.mark.parametrize("security", ["starttls", "ssl"])
def test_email_over_tls_with_login(certificate: tuple[str, str], security: str) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    inbox, port = Inbox(), free_port()
    tls = (
        {"tls_context": server_context, "require_starttls": True}
        if security == "starttls"
        else {"ssl_context": server_context}
    )
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,
        **tls,
    )
    controller.start()
    try:
        config = EmailChannelConfig(
            type="email",
            host="127.0.0.1",
            port=port,
            security=security,
            username="vigil",
            password="pw",
            ca_file=cert,
            sender="vigil@example.com",
            to=["oncall@example.com"],
        )
        assert EmailChannel("mail", config).deliver(note()) == 1
        assert len(inbox.messages) == 1
        ((_, _, message),) = inbox.messages
        assert message["X-Vigil-Key"] == "k123"
    finally:
        controller.stop()
