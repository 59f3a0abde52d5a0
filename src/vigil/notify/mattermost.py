"""Mattermost: an incoming webhook (markdown text), or a bot through the REST API v4.

A bot uploads the chart (`POST /api/v4/files`) and posts the message with it
(`POST /api/v4/posts`); the post's id is kept, so the incident's resolution edits the message
(`PUT /api/v4/posts/{id}/patch`) and, with `resolve_after`, replies in its thread (`root_id`).
"""

from __future__ import annotations

from typing import Any

import httpx

from vigil.config.schema import MattermostChannelConfig
from vigil.errors import NotifyError
from vigil.model import Notification
from vigil.notify.channels import Progress, deliver_resolution
from vigil.notify.http import post


def markdown(notification: Notification) -> str:
    """The title in bold, then the plain lines."""
    first, _, rest = notification.text.partition("\n")
    return f"**{first}**" + (f"\n{rest}" if rest else "")


class MattermostChannel:
    """Posts one message per notification."""

    idempotent = False

    def __init__(self, name: str, config: MattermostChannelConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """One message (a webhook: text only; a bot: text and chart, edits for resolutions)."""
        config = self.config
        with httpx.Client(timeout=config.timeout.total_seconds()) as client:
            if config.webhook_url is not None:
                body: dict[str, Any] = {"text": markdown(notification)}
                if config.channel:
                    body["channel"] = config.channel
                if config.username:
                    body["username"] = config.username
                url = config.webhook_url.get_secret_value()
                post(client, url, f"mattermost {self.name}", json=body)
                return 1
            if notification.reply_to:
                return self._resolve(client, notification, progress)
            files = []
            if notification.image:
                uploaded = self._api(
                    client,
                    "POST",
                    "files",
                    data={"channel_id": config.channel_id},
                    files={"files": ("chart.png", notification.image, "image/png")},
                )
                files = [f["id"] for f in uploaded.get("file_infos", []) if "id" in f]
            sent = self._api(
                client,
                "POST",
                "posts",
                json={
                    "channel_id": config.channel_id,
                    "message": markdown(notification),
                    "file_ids": files,
                },
            )
            if progress is not None:
                progress(1, str(sent["id"]) if sent.get("id") else None)
        return 1

    def _resolve(
        self, client: httpx.Client, notification: Notification, progress: Progress | None
    ) -> int:
        ref = notification.remote_ref

        def edit(parts: int) -> None:
            body = {"message": markdown(notification)}
            self._api(client, "PUT", f"posts/{ref}/patch", parts, json=body)

        def reply(parts: int) -> None:
            body = {
                "channel_id": self.config.channel_id,
                "message": notification.title,
                **({"root_id": ref} if ref else {}),
            }
            self._api(client, "POST", "posts", parts, json=body)

        return deliver_resolution(notification, progress, edit, reply)

    def _api(
        self, client: httpx.Client, method: str, path: str, parts: int = 0, **kwargs: Any
    ) -> dict[str, Any]:
        config = self.config
        assert config.url is not None  # a bot, as the config's check ensures
        assert config.token is not None
        url = f"{config.url.rstrip('/')}/api/v4/{path}"
        headers = {"Authorization": f"Bearer {config.token.get_secret_value()}"}
        what = f"mattermost {self.name} {path.split('/')[0]}"
        try:
            response = client.request(method, url, headers=headers, **kwargs)
        except httpx.HTTPError as e:
            raise NotifyError(f"{what}: {type(e).__name__}", parts_sent=parts) from None
        if not response.is_success:
            status = response.status_code
            raise NotifyError(
                f"{what}: HTTP {status}: {response.text[:200]}",
                retryable=status >= 500 or status == 429,
                parts_sent=parts,
            )
        try:
            found = response.json()
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}
