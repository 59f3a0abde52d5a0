"""The Alertmanager channel, against a local server that speaks the API v2 alerts shape.

The stand-in keeps alerts as Alertmanager does: by their label set (the fingerprint), merging
a repeated post into the same alert, active while `endsAt` is in the future, and it refuses
what Alertmanager refuses (no labels, an end before the start, a bad label name, a wrong
password).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import (
    MONITORS_YAML,
    STEP,
    VIGIL_YAML,
    LocalHTTPServer,
    ProjectFactory,
    Reply,
    serving,
)
from tests.scheduler.helpers import DROP, app_for, with_drop
from vigil.config.schema import AlertmanagerChannelConfig
from vigil.errors import NotifyError
from vigil.model import Bucket, Notification, Segment, SeriesKey
from vigil.notify.alertmanager import AlertmanagerChannel
from vigil.scheduler.cycle import run_cycle
from vigil.timeutil import Granularity

LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class AlertmanagerStandIn(LocalHTTPServer):
    """POST /api/v2/alerts with Alertmanager's validation and merge-by-labels."""

    def __init__(self, password: str | None = None) -> None:
        self.alerts: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        self.posts: list[list[dict[str, Any]]] = []
        self.password = password
        super().__init__()

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path != "/api/v2/alerts":
            return 404, {"message": "not found"}, {}
        if self.password is not None:
            expected = "Basic " + base64.b64encode(f"vigil:{self.password}".encode()).decode()
            if headers.get("authorization") != expected:
                return 401, {"message": "unauthorized"}, {}
        posted = json.loads(body)
        for alert in posted:
            labels = alert.get("labels") or {}
            if not labels or not all(LABEL.match(k) and v for k, v in labels.items()):
                return 400, {"message": f"invalid labels {labels}"}, {}
            starts, ends = (_time(alert[k]) for k in ("startsAt", "endsAt"))
            if ends < starts:
                return 400, {"message": "start time must be before end time"}, {}
        self.posts.append(posted)
        for alert in posted:
            key = tuple(sorted(alert["labels"].items()))
            known = self.alerts.get(key)
            merged = dict(alert)
            if known is not None:  # the same alert: earliest start, the newest end
                merged["startsAt"] = min(known["startsAt"], alert["startsAt"], key=_time)
                merged.setdefault("annotations", known.get("annotations", {}))
            self.alerts[key] = merged
        return 200, b"", {}

    def active(self) -> list[dict[str, str]]:
        """The label sets of the alerts firing now."""
        now = datetime.now(UTC)
        return [dict(k) for k, a in self.alerts.items() if _time(a["endsAt"]) > now]

    def resolved(self) -> list[dict[str, str]]:
        now = datetime.now(UTC)
        return [dict(k) for k, a in self.alerts.items() if _time(a["endsAt"]) <= now]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def manager() -> Iterator[AlertmanagerStandIn]:
    yield from serving(AlertmanagerStandIn())


def _note(**changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "key": "k1",
        "monitor": "product",
        "channel": "am",
        "series": SeriesKey("likes", Segment.of({"os": "iOS"})),
        "bucket": Bucket(datetime(2024, 5, 9, 12, tzinfo=UTC), Granularity.parse("15m")),
        "title": "Likes dropped",
        "text": "Likes · os=iOS: 2 (expected 40 – 60), −95%",
        "html": "",
        "image": None,
        "severity": "high",
        "recipients": "@feed_team",
        "members": (("product", "likes", '{"os": "iOS"}'), ("product", "views", "{}")),
    }
    return Notification(**{**fields, **changes})


def test_an_incident_message_fires_one_alert_per_series_and_its_resolution_ends_them(
    manager: AlertmanagerStandIn,
) -> None:
    config = AlertmanagerChannelConfig(
        type="alertmanager", url=manager.url, labels={"team": "growth"}
    )
    channel = AlertmanagerChannel("am", config)
    assert channel.deliver(_note()) == 1
    active = sorted(manager.active(), key=lambda a: a["metric"])
    assert active == [
        {
            "alertname": "VigilAnomaly",
            "team": "growth",
            "monitor": "product",
            "metric": "likes",
            "segment": "os=iOS",
            "os": "iOS",
            "severity": "high",
        },
        {
            "alertname": "VigilAnomaly",
            "team": "growth",
            "monitor": "product",
            "metric": "views",
            "segment": "total",
            "severity": "high",
        },
    ]
    first = manager.posts[0][0]
    assert first["annotations"] == {
        "summary": "Likes dropped",
        "description": "Likes · os=iOS: 2 (expected 40 – 60), −95%",
        "owners": "@feed_team",
    }
    # Sent once, not re-sent every minute: it must outlive Alertmanager's resolve_timeout.
    assert _time(first["endsAt"]) > datetime.now(UTC) + timedelta(hours=23)
    later = Bucket(datetime(2024, 5, 9, 12, 45, tzinfo=UTC), Granularity.parse("15m"))
    channel.deliver(_note(key="r1", kind="resolved", bucket=later, title="✅ Resolved"))
    assert manager.active() == []
    assert len(manager.resolved()) == 2
    ended = manager.posts[-1][0]
    assert ended["endsAt"] == "2024-05-09T12:45:00Z"


def test_basic_auth_and_errors(manager: AlertmanagerStandIn) -> None:
    manager.password = "s3cret-pass"
    wrong = AlertmanagerChannelConfig(
        type="alertmanager", url=manager.url, username="vigil", password="nope"
    )
    with pytest.raises(NotifyError, match="HTTP 401") as refused:
        AlertmanagerChannel("am", wrong).deliver(_note())
    assert not refused.value.retryable
    right = AlertmanagerChannelConfig(
        type="alertmanager", url=manager.url, username="vigil", password="s3cret-pass"
    )
    assert AlertmanagerChannel("am", right).deliver(_note()) == 1
    assert len(manager.active()) == 2


def test_odd_segment_tags_become_valid_labels(manager: AlertmanagerStandIn) -> None:
    channel = AlertmanagerChannel(
        "am", AlertmanagerChannelConfig(type="alertmanager", url=manager.url)
    )
    members = (("m", "likes", Segment.of({"app-version": "2.1", "metric": "x"}).key),)
    channel.deliver(_note(members=members))
    (labels,) = manager.active()
    assert labels["app_version"] == "2.1"
    assert labels["metric"] == "likes"  # a tag named like a label Vigil sets is left out


AM = "  am: {type: alertmanager, url: '${AM_URL}'}\n"
GROUPED = "\n".join(line for line in MONITORS_YAML.splitlines() if "group: none" not in line)


def test_through_real_cycles_an_incident_fires_then_resolves_without_resolve_after(
    project_dir: ProjectFactory, manager: AlertmanagerStandIn
) -> None:
    with_drop(project_dir, buckets=2)
    vigil = VIGIL_YAML.replace("  console: {type: console}\n", "  console: {type: console}\n" + AM)
    monitors = GROUPED.replace("channels: [console]", "channels: [am]")
    root = project_dir.write({"vigil.yaml": vigil, "monitors/main.yaml": monitors})
    app, _ = app_for(root, env={"AM_URL": manager.url})
    run_cycle(app, DROP + STEP)
    firing = manager.active()
    assert firing, "the drop fired alerts"
    assert {a["monitor"] for a in firing} == {"main"}
    for i in range(2, 9):
        run_cycle(app, DROP + i * STEP)
    assert manager.active() == []
    assert sorted(map(str, manager.resolved())) == sorted(map(str, firing))
    assert len(manager.posts) == 2  # one to fire, one to resolve: nothing more


def test_no_data_fires_per_dataset_and_data_is_back_resolves(
    manager: AlertmanagerStandIn,
) -> None:
    channel = AlertmanagerChannel(
        "am", AlertmanagerChannelConfig(type="alertmanager", url=manager.url)
    )
    silent = SeriesKey("feed+messenger", Segment.of({"since": "2024-05-09T12:00:00+00:00"}))
    channel.deliver(_note(monitor="pipeline:no_data", series=silent, members=(), kind="pipeline"))
    assert sorted(a["dataset"] for a in manager.active()) == ["feed", "messenger"]
    assert {a["monitor"] for a in manager.active()} == {"pipeline:no_data"}
    back = Bucket(datetime(2024, 5, 9, 13, tzinfo=UTC), Granularity.parse("15m"))
    channel.deliver(
        _note(monitor="pipeline:data_back", series=silent, members=(), kind="pipeline", bucket=back)
    )
    assert manager.active() == []
    assert len(manager.resolved()) == 2
