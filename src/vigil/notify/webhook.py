"""Generic webhook: a documented JSON body per notification, optionally HMAC-SHA256 signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx

from vigil.config.schema import WebhookChannelConfig
from vigil.model import Notification
from vigil.notify.channels import Progress
from vigil.notify.http import post

SIGNATURE_HEADER = "X-Vigil-Signature"
KEY_HEADER = "X-Vigil-Key"


def webhook_body(notification: Notification, include_chart: bool) -> dict[str, Any]:
    """The JSON document (documented in docs/channels.md)."""
    body: dict[str, Any] = {
        "key": notification.key,
        "monitor": notification.monitor,
        "severity": notification.severity,
        "metric": notification.series.metric,
        "segment": notification.series.segment.as_dict(),
        "bucket_start": notification.bucket.start.isoformat(),
        "bucket_end": notification.bucket.end.isoformat(),
        "granularity": notification.bucket.granularity.name,
        "title": notification.title,
        "text": notification.text,
        "recipients": notification.recipients.split() if notification.recipients else [],
    }
    if include_chart and notification.image:
        body["chart_png_base64"] = base64.b64encode(notification.image).decode()
    return body


def sign(secret: str, body: bytes) -> str:
    """The signature header value: sha256=<hex HMAC-SHA256 of the raw body>."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """POSTs the body; receivers can de-duplicate on the X-Vigil-Key header."""

    idempotent = True

    def __init__(self, name: str, config: WebhookChannelConfig) -> None:
        self.name = name
        self.config = config

    def deliver(self, notification: Notification, progress: Progress | None = None) -> int:
        """One request."""
        raw = json.dumps(webhook_body(notification, self.config.include_chart)).encode()
        headers = {"Content-Type": "application/json", KEY_HEADER: notification.key}
        if self.config.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.config.secret.get_secret_value(), raw)
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            post(client, self.config.url, f"webhook {self.name}", content=raw, headers=headers)
        return 1
