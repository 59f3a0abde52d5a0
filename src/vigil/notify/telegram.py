"""Telegram Bot API channel: sendMessage with the text, then sendPhoto with the chart."""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Any

import httpx

from vigil.config.schema import TelegramChannelConfig
from vigil.errors import NotifyError
from vigil.model import Notification
from vigil.notify.actions import action_secret, keyboard
from vigil.notify.channels import Progress, deliver_resolution

CAPTION_LIMIT = 1024


class TelegramChannel:
    """Sends HTML text and the PNG chart to one chat; the token never appears in errors."""

    idempotent = False

    def __init__(self, name: str, config: TelegramChannelConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """Part 1 is the message, part 2 the photo; parts already sent are skipped.

        A resolution edits the message it answers (part 1) and, when it is a reply, answers
        it (part 2).
        """
        parts = notification.parts_sent
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            if notification.reply_to:
                return self._resolve(client, notification, progress)
            if parts < 1:
                sent = self._call(
                    client,
                    "sendMessage",
                    parts,
                    json={
                        "chat_id": self.config.chat_id,
                        "text": notification.html,
                        "parse_mode": "HTML",
                        "disable_web_page_preview": True,
                        **self._thread(),
                        **self._buttons(notification),
                    },
                )
                parts = 1
                if progress is not None:
                    progress(parts, _message_id(sent))
            if parts < 2 and notification.image:
                self._call(
                    client,
                    "sendPhoto",
                    parts,
                    data={
                        "chat_id": self.config.chat_id,
                        "caption": notification.title[:CAPTION_LIMIT],
                        **self._thread(),
                    },
                    files={"photo": ("chart.png", notification.image, "image/png")},
                )
                parts = 2
                if progress is not None:
                    progress(parts)
        return parts

    def _resolve(
        self, client: httpx.Client, notification: Notification, progress: Progress | None
    ) -> int:
        ref = notification.remote_ref

        def edit(parts: int) -> None:
            # After a press the buttons stay (a silence after an acknowledgement); a
            # resolution's edit takes them away.
            buttons = {}
            if notification.kind == "action-edit" and notification.reply_to:
                buttons = self._buttons(replace(notification, key=notification.reply_to))
            self._call(
                client,
                "editMessageText",
                parts,
                json={
                    "chat_id": self.config.chat_id,
                    "message_id": int(ref),
                    "text": notification.html,
                    "parse_mode": "HTML",
                    "disable_web_page_preview": True,
                    **buttons,
                },
            )

        def reply(parts: int) -> None:
            to = {"reply_to_message_id": int(ref), "allow_sending_without_reply": True}
            self._call(
                client,
                "sendMessage",
                parts,
                json={
                    "chat_id": self.config.chat_id,
                    "text": html.escape(notification.title),
                    "parse_mode": "HTML",
                    **(to if ref else {}),
                    **self._thread(),
                },
            )

        return deliver_resolution(notification, progress, edit, reply)

    def _buttons(self, notification: Notification) -> dict[str, Any]:
        """The action buttons of an alert or incident message (see notify/actions.py)."""
        if not self.config.actions or notification.kind not in ("alert", "incident", "action-edit"):
            return {}
        secret = action_secret(self.config.token.get_secret_value())
        return {"reply_markup": keyboard(secret, notification.key)}

    def updates(self, offset: int | None) -> list[dict[str, Any]]:
        """Button presses waiting (getUpdates, no long poll): those from `offset` on, which
        also tells Telegram that every earlier one was handled."""
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            body: dict[str, Any] = {"timeout": 0, "allowed_updates": ["callback_query"]}
            if offset is not None:
                body["offset"] = offset
            found = self._call(client, "getUpdates", 0, json=body)
        return [u for u in found or [] if isinstance(u, dict)]

    def answer(self, query_id: str, text: str) -> None:
        """Stop the button's spinner with a short note (answerCallbackQuery)."""
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            self._call(
                client,
                "answerCallbackQuery",
                0,
                json={"callback_query_id": query_id, "text": text[:200]},
            )

    def _thread(self) -> dict[str, Any]:
        """The forum topic, when configured."""
        thread = self.config.message_thread_id
        return {} if thread is None else {"message_thread_id": thread}

    def _call(self, client: httpx.Client, method: str, parts: int, **kwargs: Any) -> Any:
        token = self.config.token.get_secret_value()
        url = f"{self.config.api_url.rstrip('/')}/bot{token}/{method}"
        try:
            response = client.post(url, **kwargs)
        except httpx.HTTPError as e:
            # httpx messages may contain the URL, and with it the token: name the type only.
            raise _error(f"telegram {method}: {type(e).__name__}", parts, retryable=True) from None
        if response.status_code == 200:
            try:
                return response.json().get("result")
            except (ValueError, AttributeError):
                return None
        description = _description(response)
        retryable = response.status_code >= 500 or response.status_code == 429
        raise NotifyError(
            f"telegram {method}: HTTP {response.status_code}: {description}",
            retryable=retryable,
            parts_sent=parts,
            retry_after=_retry_after(response),
        )


def _message_id(result: Any) -> str | None:
    """The id of a sent message, from sendMessage's result."""
    found = result.get("message_id") if isinstance(result, dict) else None
    return str(found) if isinstance(found, int) else None


def _description(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("description", body))[:200] if isinstance(body, dict) else str(body)[:200]


def _error(message: str, parts: int, retryable: bool) -> NotifyError:
    return NotifyError(message, retryable=retryable, parts_sent=parts)


def _retry_after(response: httpx.Response) -> float | None:
    """Telegram says how long to wait in parameters.retry_after (and in a Retry-After header)."""
    try:
        body = response.json()
        value = body.get("parameters", {}).get("retry_after")
        if value is not None:
            return float(value)
    except (ValueError, AttributeError):
        pass
    header = response.headers.get("Retry-After")
    return float(header) if header and header.replace(".", "", 1).isdigit() else None
