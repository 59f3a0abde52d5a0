"""`POST /slack/actions`: the Slack app's interactivity request URL (button presses); and
`POST /telegram/<channel>/updates`, Telegram's webhook for a bot that is not polled.

No Vigil credentials: Slack cannot send them. Each request is checked instead by Slack's
signature (the channel's `signing_secret`) and its timestamp (at most five minutes old, so a
captured request cannot be replayed); see notify/actions.py for what a press does.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from vigil.notify import build_channel
from vigil.notify.actions import slack_press, telegram_update
from vigil.notify.pipeline import deliver_outbox
from vigil.web.context import WebContext, close_store, context

log = logging.getLogger(__name__)
router = APIRouter()


@router.post(
    "/slack/actions",
    summary="Slack interactivity: a press of a button under a message",
    responses={
        401: {"description": "The signature or the timestamp does not check out."},
        400: {"description": "Not a block_actions payload."},
    },
)
async def slack_actions(request: Request) -> JSONResponse:
    """Verify, record and do the press; answer Slack with a note only the presser sees."""
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    status, text = await run_in_threadpool(_handle, context(request), body, headers)
    if status != 200:
        return JSONResponse({"error": {"status": status, "message": text, "details": []}}, status)
    return JSONResponse({"response_type": "ephemeral", "replace_original": False, "text": text})


def _handle(ctx: WebContext, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    store = ctx.open_store()
    try:
        answer = slack_press(ctx.project, store, body, headers, ctx.clock.now())
        if answer.edit is not None:  # the message shows the press now, not at the next cycle
            channels: dict[str, Any] = {
                name: build_channel(name, config)
                for name, config in ctx.project.settings.channels.items()
            }
            deliver_outbox(
                store, channels, ctx.project.secrets, ctx.clock.now(), only={answer.edit}
            )
    finally:
        close_store(store)
    return answer.status, answer.text


@router.post(
    "/telegram/{channel}/updates",
    summary="Telegram's webhook: a press of a button under a message",
    responses={401: {"description": "No such channel, or the secret token does not match."}},
)
async def telegram_updates(channel: str, request: Request) -> JSONResponse:
    """Check the secret token (X-Telegram-Bot-Api-Secret-Token), then do the update."""
    body = await request.body()
    token = request.headers.get("x-telegram-bot-api-secret-token", "")
    status, text = await run_in_threadpool(_telegram, context(request), channel, token, body)
    return JSONResponse({"ok": status == 200, "description": text}, status)


def _telegram(ctx: WebContext, name: str, token: str, body: bytes) -> tuple[int, str]:
    config = ctx.project.settings.channels.get(name)
    secret = getattr(config, "webhook_secret", None)
    if (
        config is None
        or secret is None
        or not hmac.compare_digest(token.encode(), secret.get_secret_value().encode())
    ):
        log.warning("telegram webhook: refused an update for '%s' (unknown or bad token)", name)
        return 401, "unknown channel or bad secret token"
    try:
        update = json.loads(body)
    except ValueError:
        return 400, "not JSON"
    if not isinstance(update, dict):
        return 400, "not an update"
    channels: dict[str, Any] = {
        n: build_channel(n, c) for n, c in ctx.project.settings.channels.items()
    }
    store = ctx.open_store()
    try:
        edit = telegram_update(ctx.project, store, channels[name], update, ctx.clock.now())
        if edit is not None:
            deliver_outbox(store, channels, ctx.project.secrets, ctx.clock.now(), only={edit})
    finally:
        close_store(store)
    return 200, "done"
