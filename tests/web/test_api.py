"""The REST API against a real DuckDB store holding a backfilled day with a drop."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import timedelta

import pytest

from tests.scheduler.helpers import DROP
from tests.web.conftest import NOW, Served
from vigil.store import create_store

STEP = timedelta(minutes=15)


def ok(served: Served, path: str, **params: object) -> dict:  # type: ignore[type-arg]
    response = served.client.get(f"/api/v1{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def error(served: Served, method: str, path: str, status: int, **kwargs: object) -> str:
    response = served.client.request(method, f"/api/v1{path}", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    return str(body["error"]["message"])


def test_health_and_openapi_schema(served: Served) -> None:
    assert ok(served, "/health") == {
        "status": "ok",
        "project": "test project",
        "datasets": {"fresh": 1, "stale": 0, "silent": 0, "failing": 0},
        "outbox": {"waiting": 0, "oldest_seconds": None, "gave_up_24h": 0},
    }
    # Data that stops arriving makes it unhealthy: 503, for an uptime check to page on.
    served.clock.set(NOW + timedelta(days=2))
    stale = served.client.get("/api/v1/health")
    assert stale.status_code == 503
    assert stale.json()["status"] == "unhealthy"
    assert stale.json()["datasets"]["stale"] == 1
    served.clock.set(NOW)
    schema = ok(served, "/openapi.json")
    assert set(schema["components"]["securitySchemes"]) == {"bearer", "basic"}
    assert {"bearer": []} in schema["security"]
    paths = set(schema["paths"])
    for path in (
        "/api/v1/overview",
        "/api/v1/metrics",
        "/api/v1/series",
        "/api/v1/values",
        "/api/v1/chart",
        "/api/v1/breakdown",
        "/api/v1/results",
        "/api/v1/alerts",
        "/api/v1/incidents",
        "/api/v1/feedback",
        "/api/v1/silences",
        "/api/v1/runs",
        "/api/v1/config",
        "/api/v1/config/validate",
    ):
        assert path in paths


def test_overview_shows_the_firing_monitor_its_incidents_and_freshness(served: Served) -> None:
    data = ok(served, "/overview")
    (monitor,) = data["monitors"]
    assert monitor["id"] == "main"
    assert monitor["state"] == "firing"
    assert monitor["open_incidents"] == 3  # total, iOS and Android all dropped
    sent = served.client.get("/api/v1/alerts", params={"status": "sent", "limit": 1000}).json()
    day_ago = (NOW - timedelta(days=1)).isoformat()
    recent = [a for a in sent["items"] if a["bucket"] >= day_ago]
    assert monitor["alerts_24h"] == len(recent) > 0  # the alerts sent in the last 24 h
    assert data["alerts_24h"] == monitor["alerts_24h"]
    assert {i["segment"] for i in data["incidents"]} == {"total", "os=iOS", "os=Android"}
    # A silent dataset makes its monitor failing, never "ok" (it is not checking anything).
    store = create_store(served.project, lambda: NOW)
    store.save_pipeline_state(replace(store.pipeline_state("events"), silent_since=NOW))
    assert ok(served, "/overview")["monitors"][0]["state"] == "failing"
    store.save_pipeline_state(replace(store.pipeline_state("events"), silent_since=None))
    # As their message told them: one incident of the dataset, with the three series.
    [group] = data["incident_groups"]
    assert (group["dataset"], group["status"], len(group["members"])) == ("events", "open", 3)
    (fresh,) = data["freshness"]
    assert fresh["dataset"] == "events"
    assert fresh["newest_bucket"] == (NOW - STEP).isoformat()
    assert fresh["stale"] is False
    assert fresh["failing"] is False
    assert data["runs"][0]["kind"] == "backfill"
    assert data["series"] == 6  # actions and users × total, iOS, Android


def test_metrics_series_and_values(served: Served) -> None:
    metrics = ok(served, "/metrics")["items"]
    assert [(m["name"], m["series"], m["analyzers"]) for m in metrics] == [
        ("actions", 3, ["day_week"]),
        ("users", 3, []),
    ]
    series = ok(served, "/series", metric="actions")
    assert series["total"] == 3
    assert {s["segment"] for s in series["items"]} == {"total", "os=iOS", "os=Android"}
    values = ok(
        served,
        "/values",
        metric="actions",
        segment="os=iOS",
        **{"from": DROP.isoformat(), "to": (DROP + 2 * STEP).isoformat()},
    )
    assert values["items"] == [
        {"bucket": DROP.isoformat(), "value": 2.0},
        {"bucket": (DROP + STEP).isoformat(), "value": 2.0},
    ]
    page = ok(served, "/values", metric="actions", limit=10, offset=90)
    assert (page["total"], len(page["items"]), page["next_offset"]) == (96, 6, None)
    first = ok(served, "/values", metric="actions", limit=10)
    assert first["next_offset"] == 10


def test_chart_has_points_band_overlays_and_the_anomalies(served: Served) -> None:
    data = ok(served, "/chart", metric="actions", segment="os=iOS", **{"from": "now-1d"})
    assert data["granularity"] == "15m"
    assert data["points"] == 96
    assert data["downsampled"] is False
    assert len(data["t"]) == len(data["value"]) == len(data["lower"]) == len(data["day_ago"])
    assert data["band_analyzer"] == "day_week"
    assert sum(v is not None for v in data["lower"]) == 96
    assert data["day_ago"][-1] == 10.0  # the same time yesterday: no drop
    drops = [a for a in data["anomalies"] if a["t"] == int(DROP.timestamp())]
    assert drops
    assert drops[0]["value"] == 2.0
    thin = ok(served, "/chart", metric="actions", **{"from": "now-1d"}, width=10)
    assert thin["downsampled"] is True
    assert len(thin["t"]) <= 20
    assert min(v for v in thin["value"] if v is not None) == 6.0  # the dip survives thinning


def test_breakdown_ranks_the_segments_that_moved_the_total(served: Served) -> None:
    data = ok(served, "/breakdown", metric="actions", at=DROP.isoformat())
    assert data["total"]["value"] == 6.0
    assert data["total"]["baseline"] == 30.0
    assert [s["segment"] for s in data["segments"]] == ["os=Android", "os=iOS"]
    android = data["segments"][0]
    assert android["change"] == -16.0
    assert android["share_of_total_change"] == pytest.approx(16 / 24)


def test_results_alerts_and_incidents(served: Served) -> None:
    anomalies = ok(
        served, "/results", metric="actions", anomalies_only="true", **{"from": "now-1d"}
    )
    assert anomalies["total"] >= 3
    assert all(r["status"] == "anomaly" for r in anomalies["items"])
    alerts = ok(served, "/alerts")
    assert alerts["total"] == 12  # four dropped buckets × total, iOS, Android
    assert {a["segment"] for a in alerts["items"]} == {"total", "os=iOS", "os=Android"}
    ios = ok(served, "/alerts", segment="os=iOS", monitor="main", severity="high")
    assert [a["bucket"] for a in ios["items"]] == [
        (DROP + i * STEP).isoformat() for i in (3, 2, 1, 0)
    ]
    alert = ios["items"][-1]
    assert alert["value"] == 2.0
    assert alert["status"] == "muted"  # a backfill logs, it does not send
    assert ok(served, f"/alerts/{alert['id']}")["id"] == alert["id"]
    assert ok(served, "/alerts", severity="low")["total"] == 0
    assert ok(served, "/incidents", status="open")["total"] == 3
    assert ok(served, "/incidents", status="resolved")["total"] == 0
    grouped = ok(served, "/incidents", status="open", grouped="true")
    assert grouped["total"] == 1
    assert {m["segment"] for m in grouped["items"][0]["members"]} == {
        "total",
        "os=iOS",
        "os=Android",
    }


def test_feedback_is_stored_shown_with_the_alert_and_replaced(served: Served) -> None:
    alert = ok(served, "/alerts", segment="os=iOS")["items"][-1]
    response = served.client.post(
        "/api/v1/feedback", json={"alert": alert["id"], "label": "false_alarm", "note": "test"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["label"] == "false_alarm"
    served.client.post("/api/v1/feedback", json={"alert": alert["id"], "label": "true_anomaly"})
    (verdict,) = ok(served, "/feedback")["items"]
    assert verdict["label"] == "true_anomaly"
    shown = ok(served, "/alerts", segment="os=iOS")["items"][-1]
    assert shown["feedback"]["label"] == "true_anomaly"
    assert shown["feedback"]["author"] == "local"


def test_silences_are_created_listed_and_expired(served: Served) -> None:
    response = served.client.post(
        "/api/v1/silences",
        json={"metric": "actions", "segment": {"os": "iOS"}, "duration": "2h", "reason": "deploy"},
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["ends_at"] == (NOW + timedelta(hours=2)).isoformat()
    assert [s["id"] for s in ok(served, "/silences")["items"]] == [made["id"]]
    assert ok(served, "/overview")["monitors"][0]["state"] == "firing"  # others still fire
    ended = served.client.post(f"/api/v1/silences/{made['id']}/expire")
    assert ended.status_code == 200
    assert ended.json()["expired_at"] == NOW.isoformat()
    assert ok(served, "/silences")["items"] == []
    assert len(ok(served, "/silences", all="true")["items"]) == 1
    # The segment as every read writes it, and a glob of metrics.
    again = served.client.post(
        "/api/v1/silences",
        json={"metric": "act*", "segment": "os=iOS", "duration": "1h", "reason": "deploy"},
    )
    assert again.status_code == 201, again.text
    assert again.json()["segment"] == made["segment"]
    # A silence that could never match is refused, saying what there is.
    wrong = error(
        served,
        "POST",
        "/silences",
        400,
        json={"metric": "acitons", "duration": "1h", "reason": "typo"},
    )
    assert "'acitons' matches no metric of the project; expected a name or glob of: actions" in (
        wrong
    )
    assert "expected dimension=value" in error(
        served,
        "POST",
        "/silences",
        422,
        json={"metric": "actions", "segment": "iOS", "duration": "1h", "reason": "r"},
    )


def test_runs_config_and_validation(served: Served) -> None:
    runs = ok(served, "/runs", limit=2)
    assert len(runs["items"]) == 2
    assert runs["items"][0]["duration_ms"] >= 0
    assert ok(served, "/runs", status="error")["total"] == 0
    config = ok(served, "/config")
    assert config["settings"]["name"] == "test project"
    assert "metric:actions" in [e[1] for e in config["graph"]["edges"]]
    checked = served.client.post("/api/v1/config/validate").json()
    assert checked["ok"] is True
    (served.project.root / "monitors" / "main.yaml").write_text("analyzers: [{id: x}]\n")
    broken = served.client.post("/api/v1/config/validate").json()
    assert broken["ok"] is False
    assert broken["problems"][0].startswith("monitors/main.yaml:1:")


def test_bad_input_gets_a_clear_4xx_never_a_500(served: Served) -> None:
    assert "unknown metric 'nope'" in error(served, "GET", "/chart?metric=nope", 404)
    assert "expected dimension=value" in error(
        served, "GET", "/chart?metric=actions&segment=iOS", 400
    )
    assert "from: 'yesterday'" in error(served, "GET", "/values?metric=actions&from=yesterday", 400)
    assert "must be before" in error(
        served, "GET", "/values?metric=actions&from=now&to=now-1d", 400
    )
    assert "limit" in error(served, "GET", "/alerts?limit=0", 422)
    assert "severity" in error(served, "GET", "/alerts?severity=urgent", 422)
    assert "unknown monitor" in error(served, "GET", "/alerts?monitor=nope", 404)
    assert "compare" in error(served, "GET", "/breakdown?metric=actions&compare=soon", 400)
    assert "metric" in error(served, "GET", "/chart", 422)
    assert "no alert" in error(
        served, "GET", "/alerts/main|day_week|actions|total|2020-01-01T00:00:00+00:00", 404
    )
    assert "expected monitor|analyzer" in error(served, "GET", "/alerts/garbage", 400)
    assert "label" in error(served, "POST", "/feedback", 422, json={"alert": "x", "label": "meh"})
    assert "give duration" in error(
        served, "POST", "/silences", 400, json={"metric": "a", "reason": "r"}
    )
    assert "duration" in error(
        served, "POST", "/silences", 400, json={"metric": "a", "reason": "r", "duration": "x"}
    )
    assert (
        "extra"
        in error(
            served, "POST", "/silences", 422, json={"metric": "a", "reason": "r", "colour": "red"}
        ).lower()
    )
    assert "no active silence 99" in error(served, "POST", "/silences/99/expire", 404)
    assert "ends_at: expected a time" in error(
        served, "POST", "/silences", 400, json={"metric": "a", "reason": "r", "ends_at": ""}
    )
    assert "longer than 100 years" in error(
        served,
        "POST",
        "/silences",
        400,
        json={"metric": "a", "reason": "r", "duration": "99999999999999999999d"},
    )
    assert "longer than 100 years" in error(
        served,
        "POST",
        "/silences",
        400,
        json={"metric": "a", "reason": "r", "ends_at": "now+99999999d"},
    )
    lone = b'{"metric": "a\\ud800", "reason": "r", "duration": "1h"}'
    json_type = {"content-type": "application/json"}
    assert "metric" in error(served, "POST", "/silences", 422, content=lone, headers=json_type)
    assert "longer than 100 years" in error(
        served, "GET", "/values?metric=actions&from=now-99999999d", 400
    )
    assert "invalid request" in error(served, "POST", "/silences", 422, content=b"not json")
    assert "Not Found" in error(served, "GET", "/nowhere", 404)


def test_the_served_project_follows_edits_of_its_files(served: Served) -> None:
    context = served.server.server.config.app.state.context
    metrics_file = served.project.root / "metrics" / "events.yaml"
    text = metrics_file.read_text()
    assert "  - name: views" not in text
    edited = text + "      - name: views\n        formula: count(*) FILTER (WHERE os = 'iOS')\n"
    metrics_file.write_text(edited)
    os.utime(metrics_file, (1, 1))
    context.checked = 0.0  # as if the poll interval had passed
    names = [m["name"] for m in ok(served, "/metrics")["items"]]
    assert names == ["actions", "users", "views"]  # no restart needed
    # A broken edit keeps the running configuration.
    metrics_file.write_text(edited.replace("formula: count(*)", "formula: [not, sql"))
    os.utime(metrics_file, (2, 2))
    context.checked = 0.0
    names = [m["name"] for m in ok(served, "/metrics")["items"]]
    assert names == ["actions", "users", "views"]


def test_incident_actions_need_a_known_message_and_a_known_action(served: Served) -> None:
    unknown = served.client.post(
        "/api/v1/incidents/actions", json={"message": "nope", "action": "ack"}
    )
    assert unknown.status_code == 404
    assert "no message 'nope'" in unknown.json()["error"]["message"]
    wrong = served.client.post(
        "/api/v1/incidents/actions", json={"message": "nope", "action": "dance"}
    )
    assert wrong.status_code == 422
    cards = served.client.get("/incidents")
    assert cards.status_code == 200
    assert "events · monitor main" in cards.text


def test_alerts_filter_by_status_and_the_page_shows_sent_ones_as_percent(served: Served) -> None:
    every = served.client.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
    sent = served.client.get("/api/v1/alerts", params={"status": "sent", "limit": 1000}).json()
    held = served.client.get("/api/v1/alerts", params={"status": "cooldown", "limit": 1000}).json()
    assert sent["items"]
    assert {a["status"] for a in sent["items"]} <= {"notify", "muted"}
    assert {a["status"] for a in held["items"]} <= {"cooldown"}
    assert len(sent["items"]) + len(held["items"]) <= len(every)
    assert served.client.get("/api/v1/alerts", params={"status": "nope"}).status_code == 400
    page = served.client.get("/alerts").text
    assert page.count("<tr data-alert=") == len(sent["items"])  # the sent ones by default
    assert "-80.0%" in page  # deviations in percent, not -0.8
    everything = served.client.get("/alerts", params={"status": "all"}).text
    assert everything.count("<tr data-alert=") == min(len(every), 100)


def test_the_api_reference_page_lists_every_operation(served: Served) -> None:
    page = served.client.get("/api")
    assert page.status_code == 200
    for operation in ("GET /api/v1/alerts", "POST /api/v1/silences", "GET /api/v1/health"):
        assert f"<code>{operation}</code>" in page.text
    assert "<code>status</code>" in page.text  # the alerts' status parameter, described
