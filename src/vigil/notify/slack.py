"""Slack: chat.postMessage plus the chart through the external upload flow, or a webhook."""

from __future__ import annotations

from typing import Any

import httpx

from vigil.config.schema import SlackChannelConfig
from vigil.errors import NotifyError
from vigil.model import Notification
from vigil.notify.actions import BUTTONS, action_secret, callback_data
from vigil.notify.channels import Progress, deliver_resolution
from vigil.notify.http import post

RETRYABLE_ERRORS = {"ratelimited", "internal_error", "service_unavailable", "request_timeout"}


def slack_text(notification: Notification) -> str:
    """mrkdwn: the title in bold, then the plain lines."""
    first, _, rest = notification.text.partition("\n")
    return f"*{first}*" + (f"\n{rest}" if rest else "")


class SlackChannel:
    """Bot: part 1 the message, part 2 the chart; webhook: the message only."""

    idempotent = False

    def __init__(self, name: str, config: SlackChannelConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """Send what is left of the notification."""
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            if self.config.webhook_url is not None:
                url = self.config.webhook_url.get_secret_value()
                post(client, url, "slack webhook", json={"text": slack_text(notification)})
                return 1
            parts = notification.parts_sent
            if notification.reply_to:
                return self._resolve(client, notification, progress)
            if parts < 1:
                sent = self._api(
                    client,
                    "chat.postMessage",
                    parts,
                    json={
                        "channel": self.config.channel,
                        "text": slack_text(notification),
                        "mrkdwn": True,
                        "unfurl_links": False,
                        **self._blocks(notification, notification.key),
                    },
                )
                parts = 1
                if progress is not None:
                    ref = f"{sent.get('channel', self.config.channel)} {sent.get('ts', '')}"
                    progress(parts, ref if sent.get("ts") else None)
            if parts < 2 and notification.image:
                self._upload(client, notification, parts)
                parts = 2
                if progress is not None:
                    progress(parts)
            return parts

    def _resolve(
        self, client: httpx.Client, notification: Notification, progress: Progress | None
    ) -> int:
        """Part 1: chat.update of the message it answers; part 2 (a reply): in its thread."""
        channel, _, ts = notification.remote_ref.partition(" ")

        def edit(parts: int) -> None:
            # After a press the buttons stay; a resolution's update takes them away.
            pressed = notification.kind == "action-edit"
            blocks = self._blocks(notification, notification.reply_to, buttons=pressed)
            body = {"channel": channel, "ts": ts, "text": slack_text(notification), **blocks}
            self._api(client, "chat.update", parts, json=body)

        def reply(parts: int) -> None:
            thread = {"thread_ts": ts} if ts else {}
            body = {
                "channel": channel or self.config.channel,
                "text": notification.title,
                "mrkdwn": True,
                **thread,
            }
            self._api(client, "chat.postMessage", parts, json=body)

        return deliver_resolution(notification, progress, edit, reply)

    def _blocks(
        self, notification: Notification, key: str, *, buttons: bool = True
    ) -> dict[str, Any]:
        """Block Kit: the text, and the action buttons when the app has a signing secret."""
        secret = self.config.signing_secret
        if secret is None or notification.kind not in ("alert", "incident", "action-edit"):
            if notification.kind in ("resolved-edit", "resolved") and secret is not None:
                return {"blocks": [_section(slack_text(notification))]}
            return {}
        blocks: list[dict[str, Any]] = [_section(slack_text(notification))]
        if buttons:
            mac = action_secret(secret.get_secret_value())
            blocks.append(
                {
                    "type": "actions",
                    "block_id": "vigil_actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": f"vigil_{b.code}",
                            "text": {"type": "plain_text", "text": b.label},
                            "value": callback_data(mac, b.code, key),
                        }
                        for b in BUTTONS
                    ],
                }
            )
        return {"blocks": blocks}

    def _upload(self, client: httpx.Client, notification: Notification, parts: int) -> None:
        image = notification.image or b""
        ticket = self._api(
            client,
            "files.getUploadURLExternal",
            parts,
            data={"filename": "chart.png", "length": str(len(image))},
        )
        post(
            client,
            str(ticket["upload_url"]),
            "slack upload",
            parts,
            files={"file": ("chart.png", image, "image/png")},
        )
        self._api(
            client,
            "files.completeUploadExternal",
            parts,
            json={
                "files": [{"id": ticket["file_id"], "title": notification.title}],
                "channel_id": self.config.channel,
            },
        )

    def _api(self, client: httpx.Client, method: str, parts: int, **kwargs: Any) -> dict[str, Any]:
        token = self.config.token.get_secret_value() if self.config.token else ""
        url = f"{self.config.api_url.rstrip('/')}/{method}"
        headers = {"Authorization": f"Bearer {token}"}
        response = post(client, url, f"slack {method}", parts, headers=headers, **kwargs)
        body: dict[str, Any] = response.json()
        if not body.get("ok"):
            error = str(body.get("error", "unknown_error"))
            raise NotifyError(
                f"slack {method}: {error}", retryable=error in RETRYABLE_ERRORS, parts_sent=parts
            )
        return body


def _section(text: str) -> dict[str, Any]:
    """A mrkdwn section (Slack cuts a section's text at 3,000 characters)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}
