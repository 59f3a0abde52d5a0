"""The dashboard's pages: server-rendered tables; the chart and the buttons call the API."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import resources
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from vigil.model import ALERT_FILTERS
from vigil.numbers import format_number
from vigil.web import queries
from vigil.web.api import From, To, alert_filter, page, segment_of, validate
from vigil.web.api import config as config_json
from vigil.web.auth import Principal
from vigil.web.context import Opened, context, instant, principal

router = APIRouter(include_in_schema=False)
Viewer = Annotated[Principal, Depends(principal)]
RANGES = {"1d": 1, "7d": 7, "30d": 30, "90d": 90, "1y": 365}

_templates = Environment(
    loader=FileSystemLoader(str(resources.files("vigil.web") / "templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _number(value: float | None) -> str:
    return "–" if value is None else format_number(value)


def _percent(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value * 100:+.1f}%"


STATUSES = list(ALERT_FILTERS)
AlertStatusFilter = Annotated[
    str, Query(description="sent (the default), one decision (cooldown, silenced, …) or all.")
]


def _duration(seconds: float) -> str:
    """`2d 3h`, `45m`: the two largest units."""
    if seconds < 0:
        return "ahead"
    left = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


_templates.filters["number"] = _number
_templates.filters["percent"] = _percent
_templates.filters["duration"] = _duration


def render(request: Request, name: str, who: Principal, **values: Any) -> HTMLResponse:
    """A page from its template, with the navigation and the caller's role."""
    ctx = context(request)
    html = _templates.get_template(name).render(
        project=ctx.project.settings.name,
        timezone=ctx.project.timezone,
        who=who,
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html)


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, who: Viewer, opened: Opened) -> HTMLResponse:
    """Monitors and their state, open incidents, the last runs, data freshness."""
    ctx = context(request)
    data = queries.overview(ctx.project, opened, ctx.clock.now())
    return render(request, "overview.html", who, data=data)


@router.get("/metrics", response_class=HTMLResponse)
def metrics_page(request: Request, who: Viewer, opened: Opened) -> HTMLResponse:
    """Every metric and its series."""
    listed = queries.metrics(context(request).project, opened)
    stored = queries.series(opened)
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for s in stored:
        by_metric.setdefault(s["metric"], []).append(s)
    return render(request, "metrics.html", who, metrics=listed, series=by_metric)


@router.get("/metrics/{metric}", response_class=HTMLResponse)
def explorer_page(
    request: Request,
    who: Viewer,
    opened: Opened,
    metric: str,
    segment: str = "total",
    at: str | None = None,
    range_name: Annotated[str, Query(alias="range")] = "1d",
) -> HTMLResponse:
    """One metric: the chart of a segment and the breakdown by segment."""
    ctx = context(request)
    m = queries.metric_of(ctx.project, metric)
    chosen = segment_of(segment)
    if range_name not in RANGES:
        raise HTTPException(400, f"range: '{range_name}'; expected one of {', '.join(RANGES)}")
    span = timedelta(days=RANGES[range_name])
    moment = instant(request, at, "at")
    now = ctx.clock.now()
    end = min(now, moment + span / 4) if moment else now
    segments = [s["segment"] for s in queries.series(opened, metric)] or ["total"]
    return render(
        request,
        "explorer.html",
        who,
        metric=m,
        segment=chosen.label(),
        segments=sorted(set(segments), key=lambda s: (s != "total", s)),
        range_name=range_name,
        ranges=list(RANGES),
        start=queries.iso(end - span),
        end=queries.iso(end),
        at=queries.iso(moment),
        link=lambda **changes: (
            f"/metrics/{metric}?"
            + urlencode(
                {"segment": chosen.label(), "range": range_name, **({"at": at} if at else {})}
                | changes
            )
        ),
    )


@router.get("/alerts", response_class=HTMLResponse)
def alerts_page(
    request: Request,
    who: Viewer,
    opened: Opened,
    metric: str | None = None,
    segment: str | None = None,
    monitor: str | None = None,
    severity: str | None = None,
    start: From = None,
    end: To = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    status: AlertStatusFilter = "sent",
) -> HTMLResponse:
    """The alert log, filtered (the sent ones unless asked), with feedback buttons."""
    ctx = context(request)
    if status not in STATUSES:
        raise HTTPException(400, f"status: '{status}'; expected one of {', '.join(STATUSES)}")
    chosen = alert_filter(request, metric, segment, monitor, severity, start, end, status)
    listed = page(queries.alerts(opened, chosen), 100, offset)
    filters = {
        "metric": metric or "",
        "segment": segment or "",
        "monitor": monitor or "",
        "severity": severity or "",
        "from": start or "",
        "to": end or "",
        "status": status,
    }
    metric_names = sorted(m.name for d in ctx.project.datasets for m in d.metrics)
    return render(
        request,
        "alerts.html",
        who,
        listed=listed,
        filters=filters,
        monitors=sorted(ctx.project.monitors),
        metric_names=metric_names,
        statuses=STATUSES,
        more=lambda o: "/alerts?" + urlencode({**filters, "offset": o}),
    )


@router.get("/silences", response_class=HTMLResponse)
def silences_page(request: Request, who: Viewer, opened: Opened) -> HTMLResponse:
    """Active and past silences; admins can add and expire them."""
    ctx = context(request)
    now = ctx.clock.now()
    active = {s["id"] for s in queries.silences(opened, now)}
    listed = list(reversed(queries.silences(opened, None)))
    return render(
        request,
        "silences.html",
        who,
        silences=listed,
        active=active,
        monitors=sorted(ctx.project.monitors),
    )


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, who: Viewer, opened: Opened, failed: bool = False) -> HTMLResponse:
    """The run log: stages, durations, failures."""
    listed = queries.runs(opened, None, 500)
    if failed:
        listed = [r for r in listed if r["status"] != "ok"]
    return render(request, "runs.html", who, runs=listed, failed=failed)


@router.get("/api", response_class=HTMLResponse)
def api_page(request: Request, who: Viewer) -> HTMLResponse:
    """The REST API's reference, from its own OpenAPI schema (no CDN needed)."""
    schema = request.app.openapi()
    operations = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            parameters = [
                {
                    "name": p.get("name", ""),
                    "where": p.get("in", ""),
                    "required": p.get("required", False),
                    "description": p.get("description")
                    or p.get("schema", {}).get("description", ""),
                }
                for p in operation.get("parameters", [])
            ]
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": parameters,
                    "body": "requestBody" in operation,
                    "responses": sorted(operation.get("responses", {})),
                }
            )
    return render(
        request, "api.html", who, operations=operations, schema_url="/api/v1/openapi.json"
    )


@router.get("/config", response_class=HTMLResponse)
def config_page(request: Request, who: Viewer) -> HTMLResponse:
    """The loaded configuration (admin), validation of the files on disk, the pipeline."""
    if not who.is_admin:
        raise HTTPException(403, f"'{who.name}' is a viewer; the configuration needs admin")
    loaded = config_json(request, who)
    checked = validate(request, who)
    return render(
        request,
        "config.html",
        who,
        loaded=loaded,
        settings=json.dumps(loaded["settings"], indent=2, ensure_ascii=False),
        checked=checked,
    )
