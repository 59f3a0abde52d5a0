"""REST API under /api/v1: thin handlers that parse, ask `queries` or the store, and answer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, field_validator

from vigil.config import load_project
from vigil.config.graph import pipeline_edges, render_text
from vigil.errors import ConfigError
from vigil.model import ALERT_FILTERS, Feedback, FeedbackLabel, Segment, Silence
from vigil.notify.incidents import grouped_incidents
from vigil.notify.pipeline import redact
from vigil.timeutil import parse_duration
from vigil.web import queries
from vigil.web.context import Admin, Opened, Viewer, context, instant


class ErrorDetail(BaseModel):
    """What went wrong."""

    status: int
    message: str
    details: list[Any] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error answers with this shape."""

    error: ErrorDetail


_ERRORS = {
    400: "The request's values are wrong (the message names the parameter).",
    401: "Credentials are needed (the web section sets tokens or users).",
    403: "The credentials do not allow this (an admin action).",
    404: "No such metric, monitor, alert or silence.",
    422: "The request does not match the schema.",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in _ERRORS.items()
}
router = APIRouter(responses=ERROR_RESPONSES)
Limit = Annotated[int, Query(ge=1, le=10_000, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, description="Items to skip.")]
Time = Annotated[
    str | None, Query(description="ISO 8601, `now` or `now-2h`; naive times in the project zone.")
]
From = Annotated[str | None, Query(alias="from", description="Start (ISO 8601 or now-1d).")]
To = Annotated[str | None, Query(alias="to", description="End, exclusive (default now).")]


def page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    """One page of a listing, with the total and where the next page starts."""
    chosen = items[offset : offset + limit]
    following = offset + limit if offset + limit < len(items) else None
    return {
        "items": chosen,
        "total": len(items),
        "limit": limit,
        "offset": offset,
        "next_offset": following,
    }


def segment_of(text: str | None) -> Segment:
    """A segment from its label (`os=iOS, country=RU`, `total`), or 400."""
    try:
        return Segment.from_label(text or "")
    except ValueError as e:
        raise HTTPException(400, f"segment: {e}") from None


def time_range(
    request: Request, start: str | None, end: str | None, default: timedelta
) -> tuple[datetime, datetime]:
    """[from, to) from the parameters: `to` defaults to now, `from` to `default` before it."""
    now = context(request).clock.now()
    until = instant(request, end, "to") or now
    since = instant(request, start, "from") or until - default
    if since >= until:
        raise HTTPException(400, f"from ({start}) must be before to ({end or 'now'})")
    return since, until


@router.get(
    "/health",
    summary="Health: 200 when every dataset's data arrives and the outbox drains, else 503",
    responses={503: {"description": "Unhealthy: the same document, status `unhealthy`."}},
)
def health(request: Request, opened: Opened) -> JSONResponse:
    """Whether Vigil is doing its job (no credentials needed, so counts only, no names):
    datasets by state (fresh, stale, silent, failing) and the outbox (notifications waiting,
    the oldest one's age, those given up in the last day). 503 when a dataset is not fresh or
    a notification has waited more than 15 minutes."""
    ctx = context(request)
    found = queries.health(ctx.project, opened, ctx.clock.now())
    return JSONResponse(found, status_code=200 if found["status"] == "ok" else 503)


@router.get("/overview", summary="Monitors, open incidents, last runs, data freshness")
def overview(request: Request, who: Viewer, opened: Opened) -> dict[str, Any]:
    """What the overview page shows."""
    ctx = context(request)
    return queries.overview(ctx.project, opened, ctx.clock.now())


@router.get("/metrics", summary="Configured metrics")
def metrics(request: Request, who: Viewer, opened: Opened) -> dict[str, Any]:
    """Every metric with its dataset, owners, analyzers and stored series count."""
    items = queries.metrics(context(request).project, opened)
    return page(items, max(1, len(items)), 0)


@router.get("/series", summary="Stored series")
def series(
    request: Request,
    who: Viewer,
    opened: Opened,
    metric: str | None = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Series in the store (optionally of one metric)."""
    if metric is not None:
        queries.metric_of(context(request).project, metric)
    return page(queries.series(opened, metric), limit, offset)


@router.get("/values", summary="Values of one series")
def values(
    request: Request,
    who: Viewer,
    opened: Opened,
    metric: str,
    segment: str = "total",
    start: From = None,
    end: To = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Stored values in [from, to) (default: the last day)."""
    since, until = time_range(request, start, end, timedelta(days=1))
    items = queries.values(
        context(request).project, opened, metric, segment_of(segment), since, until
    )
    return page(items, limit, offset)


@router.get("/chart", summary="Chart data of one series")
def chart(
    request: Request,
    who: Viewer,
    opened: Opened,
    metric: str,
    segment: str = "total",
    start: From = None,
    end: To = None,
    width: Annotated[int, Query(ge=10, le=10_000, description="Bins to thin to.")] = 1000,
    analyzer: str | None = None,
) -> dict[str, Any]:
    """Values, expected band, anomalies and day/week-ago overlays, thinned for long ranges."""
    since, until = time_range(request, start, end, timedelta(days=1))
    return queries.chart(
        context(request).project,
        opened,
        metric,
        segment_of(segment),
        since,
        until,
        width,
        analyzer,
    )


@router.get("/breakdown", summary="Which segments drove a change")
def breakdown(
    request: Request,
    who: Viewer,
    opened: Opened,
    metric: str,
    at: Time = None,
    compare: Annotated[str, Query(description="How far back to compare: 1d, 7d, 1h.")] = "1d",
    buckets: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> dict[str, Any]:
    """Each segment's change at `at` against `compare` earlier, ranked, with its share."""
    when = instant(request, at, "at") or context(request).clock.now()
    try:
        lag = parse_duration(compare)
    except ValueError as e:
        raise HTTPException(400, f"compare: {e}") from None
    return queries.breakdown(context(request).project, opened, metric, when, lag, buckets)


@router.get("/results", summary="Analysis results")
def results(
    request: Request,
    who: Viewer,
    opened: Opened,
    metric: str | None = None,
    segment: str | None = None,
    start: From = None,
    end: To = None,
    anomalies_only: bool = False,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Every check of every series in [from, to) (default: the last day), newest first."""
    since, until = time_range(request, start, end, timedelta(days=1))
    if metric is not None:
        queries.metric_of(context(request).project, metric)
    key = segment_of(segment).key if segment is not None else None
    found = opened.list_results(
        metric=metric, segment=key, since=since, until=until, anomalies_only=anomalies_only
    )
    items = [
        {
            "analyzer": r.analyzer,
            "analyzer_type": r.analyzer_type,
            "metric": r.series.metric,
            "segment": r.series.segment.label(),
            "bucket": queries.iso(r.bucket.start),
            "granularity": r.bucket.granularity.name,
            "value": r.value,
            "status": r.status.value,
            "expected_lower": r.expected_lower,
            "expected_upper": r.expected_upper,
            "deviation": r.deviation,
            "baselines": r.baselines,
            "reason": r.reason,
            "is_partial": r.is_partial,
        }
        for r in reversed(found)
    ]
    return page(items, limit, offset)


@router.get("/alerts", summary="The alert log")
def alerts(
    request: Request,
    who: Viewer,
    opened: Opened,
    metric: str | None = None,
    segment: str | None = None,
    monitor: str | None = None,
    severity: Literal["critical", "high", "medium", "low", "info"] | None = None,
    start: From = None,
    end: To = None,
    limit: Limit = 100,
    offset: Offset = 0,
    status: Annotated[
        str | None,
        Query(
            description="sent (notified or muted), one decision (cooldown, silenced, …), or"
            " all (the default)."
        ),
    ] = None,
) -> dict[str, Any]:
    """Alerts, newest first, filtered, with deliveries and feedback."""
    if status is not None and status not in ALERT_FILTERS:
        raise HTTPException(400, f"status: '{status}'; expected one of {', '.join(ALERT_FILTERS)}")
    chosen = alert_filter(request, metric, segment, monitor, severity, start, end, status)
    return page(queries.alerts(opened, chosen), limit, offset)


def alert_filter(
    request: Request,
    metric: str | None,
    segment: str | None,
    monitor: str | None,
    severity: str | None,
    start: str | None,
    end: str | None,
    status: str | None = None,
) -> queries.AlertFilter:
    """The alert filter from request parameters (empty ones mean any); 4xx if unknown."""
    project = context(request).project
    if monitor and monitor not in project.monitors:
        raise HTTPException(404, f"unknown monitor '{monitor}'")
    if metric:
        queries.metric_of(project, metric)
    return queries.AlertFilter(
        metric=metric or None,
        segment=segment_of(segment) if segment else None,
        monitor=monitor or None,
        severity=severity or None,
        since=instant(request, start, "from"),
        until=instant(request, end, "to"),
        status=None if status in (None, "", "all") else status,
    )


@router.get("/alerts/{alert_id:path}", summary="One alert")
def alert(alert_id: str, who: Viewer, opened: Opened) -> dict[str, Any]:
    """One alert by its id (as listed)."""
    row = queries.find_alert(opened, alert_id)
    verdicts = [
        f
        for f in opened.list_feedback(since=row.result.bucket.start)
        if queries.alert_id(f.monitor, f.analyzer, f.series, f.bucket.start) == alert_id
    ]
    return queries.alert_json(row, verdicts[0] if verdicts else None)


@router.get("/incidents", summary="Incidents")
def incidents(
    request: Request,
    who: Viewer,
    opened: Opened,
    status: Literal["open", "resolved"] | None = None,
    grouped: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Incidents, newest first: one per monitor and series, or with `grouped=true` as their
    messages grouped them (monitor, dataset, opening bucket) with the series as members."""
    if grouped:
        project = context(request).project
        found = grouped_incidents(project, opened.list_incidents(status))
        return page(found, limit, offset)
    return page(queries.incidents(opened, status), limit, offset)


class FeedbackIn(BaseModel):
    """A verdict on one alert."""

    model_config = {"extra": "forbid"}

    alert: str = Field(description="The alert's id, as /alerts lists it.")
    label: FeedbackLabel = Field(description="true_anomaly, expected or false_alarm.")
    note: str = Field("", max_length=2000, description="Why, in a few words.")


@router.get("/feedback", summary="Feedback on alerts")
def feedback(
    request: Request,
    who: Viewer,
    opened: Opened,
    start: From = None,
    end: To = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Every verdict, in bucket order."""
    found = opened.list_feedback(
        since=instant(request, start, "from"), until=instant(request, end, "to")
    )
    return page([queries.feedback_json(f) for f in found], limit, offset)


@router.post("/feedback", summary="Give feedback on an alert", status_code=201)
def give_feedback(body: FeedbackIn, who: Admin, opened: Opened) -> dict[str, Any]:
    """Store a verdict (a later one on the same alert replaces it)."""
    row = queries.find_alert(opened, body.alert)
    r = row.result
    verdict = Feedback(row.monitor, r.analyzer, r.series, r.bucket, body.label, body.note, who.name)
    opened.save_feedback(verdict)
    saved = [f for f in opened.list_feedback(since=r.bucket.start) if f.series == r.series]
    mine = [f for f in saved if (f.monitor, f.analyzer) == (row.monitor, r.analyzer)]
    return queries.feedback_json(mine[0])


class SilenceIn(BaseModel):
    """A silence to add, from now."""

    model_config = {"extra": "forbid"}

    metric: str = Field(min_length=1, description="Metric name or glob (likes, feed_*, *).")
    segment: dict[str, str] | str = Field(
        default_factory=dict,
        description="Tags the series must have ('*' for any value): {os: iOS} or, as every"
        " read writes it, 'os=iOS' ('total' or '' for the total).",
    )
    monitor: str | None = Field(None, description="Only this monitor (default: all).")
    duration: str | None = Field(None, description="How long, e.g. 2h (or give ends_at).")
    ends_at: str | None = Field(None, description="Until this time (or give duration).")
    reason: str = Field(min_length=1, max_length=500, description="Why (shown in listings).")

    @field_validator("metric", "monitor", "duration", "ends_at", "reason")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else _encodable(value)

    @field_validator("segment")
    @classmethod
    def _tags(cls, value: dict[str, str] | str) -> dict[str, str]:
        tags = Segment.from_label(_encodable(value)).as_dict() if isinstance(value, str) else value
        return {_encodable(k): _encodable(v) for k, v in tags.items()}


def _encodable(text: str) -> str:
    """Text that can be stored: no lone surrogates or NUL characters."""
    if "\x00" in text or any("\ud800" <= c <= "\udfff" for c in text):
        raise ValueError("expected text without NUL or unpaired surrogate characters")
    return text


@router.get("/silences", summary="Silences")
def silences(
    request: Request,
    who: Viewer,
    opened: Opened,
    all: bool = False,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Active silences (or every one with all=true)."""
    active = None if all else context(request).clock.now()
    return page(queries.silences(opened, active), limit, offset)


@router.post("/silences", summary="Add a silence", status_code=201)
def add_silence(request: Request, body: SilenceIn, who: Admin, opened: Opened) -> dict[str, Any]:
    """Silence matching anomalies from now until `duration` or `ends_at`."""
    project = context(request).project
    now = context(request).clock.now()
    if body.monitor is not None and body.monitor not in project.monitors:
        raise HTTPException(
            400,
            f"monitor: unknown monitor '{body.monitor}'; expected one of: "
            + ", ".join(sorted(project.monitors)),
        )
    if (body.duration is None) == (body.ends_at is None):
        raise HTTPException(400, "give duration (e.g. 2h) or ends_at, not both")
    if body.duration is not None:
        try:
            ends = now + parse_duration(body.duration)
        except ValueError as e:
            raise HTTPException(400, f"duration: {e}") from None
    else:
        parsed = instant(request, body.ends_at, "ends_at")
        if parsed is None:
            raise HTTPException(400, "ends_at: expected a time like 2024-05-01T12:00 or now+2h")
        ends = parsed
    if ends <= now:
        raise HTTPException(400, "the silence would end before it starts")
    names = sorted(m.name for d in project.datasets for m in d.metrics)
    if not any(fnmatchcase(n, body.metric) for n in names):
        raise HTTPException(
            400,
            f"metric: '{body.metric}' matches no metric of the project; expected a name or"
            f" glob of: {', '.join(names[:20])}" + (" …" if len(names) > 20 else ""),
        )
    reason = f"{body.reason} ({who.name})"
    tags = body.segment if isinstance(body.segment, dict) else {}
    new_id = opened.add_silence(Silence(body.metric, tags, now, ends, reason, body.monitor))
    (made,) = [s for s in queries.silences(opened, None) if s["id"] == new_id]
    return made


@router.post("/silences/{silence_id}/expire", summary="End a silence now")
def expire_silence(request: Request, silence_id: int, who: Admin, opened: Opened) -> dict[str, Any]:
    """Expire an active silence."""
    if not opened.expire_silence(silence_id, context(request).clock.now()):
        raise HTTPException(404, f"no active silence {silence_id}")
    (ended,) = [s for s in queries.silences(opened, None) if s["id"] == silence_id]
    return ended


@router.get("/runs", summary="The run log")
def runs(
    request: Request,
    who: Viewer,
    opened: Opened,
    since: Time = None,
    status: Literal["ok", "error"] | None = None,
    limit: Limit = 200,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Stage records, newest first, with durations and errors."""
    found = queries.runs(opened, instant(request, since, "since"), 10_000)
    items = [r for r in found if status is None or r["status"] == status]
    return page(items, limit, offset)


@router.get("/config", summary="The loaded configuration (secrets redacted)")
def config(request: Request, who: Admin) -> dict[str, Any]:
    """Settings and definitions as loaded, the files, and the pipeline graph."""
    project = context(request).project
    dumped = project.settings.model_dump(mode="json", by_alias=True)
    text = redact(json.dumps(dumped, ensure_ascii=False), project.secrets)
    return {
        "project": project.settings.name,
        "root": str(project.root),
        "files": list(project.files),
        "settings": json.loads(text),
        "graph": {
            "text": render_text(project),
            "edges": [list(e) for e in pipeline_edges(project)],
        },
    }


@router.post("/config/validate", summary="Validate the configuration on disk")
def validate(request: Request, who: Admin) -> dict[str, Any]:
    """Load the project's files again: OK, or every problem (file, line, key, expectation)."""
    project = context(request).project
    try:
        fresh = load_project(project.root)
    except ConfigError as e:
        return {"ok": False, "problems": [redact(p, project.secrets) for p in e.problems]}
    metrics = sum(len(d.metrics) for d in fresh.datasets)
    return {
        "ok": True,
        "problems": [],
        "datasets": len(fresh.datasets),
        "metrics": metrics,
        "monitors": len(fresh.monitors),
    }
