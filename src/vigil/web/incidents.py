"""The incidents page and its actions: what happened, what was said, who did what.

`GET /incidents` shows open and recent incidents as their messages grouped them (monitor,
dataset, opening bucket) with their series, the messages sent about them (and the lines the
presses added), and every action taken, from a chat or here. Admins act from the page with the
chat's buttons — acknowledge, silence 1 h / 4 h / until tomorrow, false alarm, expected — and
can resolve an incident by hand; `POST /api/v1/incidents/actions` does the same for scripts.
Each action is the chat's (notify/actions.py): recorded once, with the same effects and the
same edit of the message in the chat.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from vigil.config.project import Project
from vigil.model import ChatAction
from vigil.notify.actions import BUTTONS, record_press
from vigil.notify.incidents import grouped_incidents, resolutions
from vigil.store.base import Store
from vigil.web.api import ERROR_RESPONSES
from vigil.web.context import Admin, Opened, Viewer, context
from vigil.web.pages import render

RECENT = timedelta(days=7)
router = APIRouter(include_in_schema=False)  # the page
api = APIRouter(responses=ERROR_RESPONSES)  # under /api/v1


def incident_cards(project: Project, store: Store, now: datetime) -> list[dict[str, Any]]:
    """Open incidents and those resolved in the last week, each with its messages and the
    actions taken on them."""
    groups = [
        g
        for g in grouped_incidents(project, store.list_incidents())
        if g["status"] == "open"
        or (g["resolved"] and datetime.fromisoformat(g["resolved"]) >= now - RECENT)
    ]
    if not groups:
        return []
    since = min(datetime.fromisoformat(g["opened"]) for g in groups)
    told = store.told(since)
    for group in groups:
        members = {(group["monitor"], m["metric"], m["segment_key"]) for m in group["members"]}
        messages = [n for n in told if members & set(n.members)]
        group["messages"] = [
            {
                "key": n.key,
                "channel": n.channel,
                "title": n.title,
                "text": n.text,
                "sent": n.bucket.start.isoformat(),
            }
            for n in messages
        ]
        group["actions"] = [
            {
                "action": a.action,
                "actor": a.actor,
                "outcome": a.outcome,
                "at": a.created_at.isoformat(),
            }
            for n in messages
            for a in store.list_actions(n.key)
        ]
    return groups


@router.get("/incidents", response_class=HTMLResponse)
def incidents_page(request: Request, who: Viewer, opened: Opened) -> HTMLResponse:
    """Open and recent incidents; admins act on them."""
    ctx = context(request)
    cards = incident_cards(ctx.project, opened, ctx.clock.now())
    buttons = [{"action": b.action, "label": b.label} for b in BUTTONS]
    return render(request, "incidents.html", who, incidents=cards, buttons=buttons)


ActionName = Literal[
    "ack", "silence_1h", "silence_4h", "silence_tomorrow", "false_alarm", "expected", "resolve"
]


class IncidentActionIn(BaseModel):
    """An action on the incident a message told about."""

    model_config = {"extra": "forbid"}

    message: str = Field(description="The message's key (as GET /incidents?grouped lists).")
    action: ActionName = Field(description="What to do; `resolve` closes its incidents now.")


@api.post("/incidents/actions", summary="Act on an incident (as the chat's buttons do)")
def act(body: IncidentActionIn, request: Request, who: Admin, opened: Opened) -> dict[str, Any]:
    """Do one action; answer what was done (the message in the chat says it too)."""
    ctx = context(request)
    now = ctx.clock.now()
    message = next(
        (n for n in opened.told(now - timedelta(days=90)) if n.key == body.message), None
    )
    if message is None:
        raise HTTPException(404, f"no message '{body.message}' sent in the last 90 days")
    actor = f"{who.name} (dashboard)"
    if body.action == "resolve":
        return {"done": _resolve(ctx.project, opened, message.members, now, actor)}
    button = next(b for b in BUTTONS if b.action == body.action)
    press = ChatAction(f"web:{uuid.uuid4().hex}", "web", 0, "", "refused", actor, "", now)
    return {"done": record_press(ctx.project, opened, press, message, button, "the dashboard")}


def _resolve(
    project: Project,
    store: Store,
    members: tuple[tuple[str, str, str], ...],
    now: datetime,
    actor: str,
) -> str:
    """Close the message's open incidents now, with the usual resolution edits and replies."""

    chosen = set(members)
    with store.transaction():
        closed = []
        for incident in store.list_incidents("open"):
            key = (incident.monitor, incident.series.metric, incident.series.segment.key)
            if key in chosen:
                done = replace(
                    incident,
                    status="resolved",
                    resolved_bucket=incident.granularity.floor(now),
                )
                store.save_incident(done)
                closed.append(done)
        if not closed:
            return "nothing open to resolve"
        store.enqueue(resolutions(project, store, closed, closed[0].granularity.floor(now)))
    return f"resolved {len(closed)} incident{'s' if len(closed) != 1 else ''} by {actor}"
