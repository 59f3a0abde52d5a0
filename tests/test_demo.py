"""The demo end to end: every injected incident caught fast, few false alerts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.conftest import is_png
from vigil.demo.run import run_demo


@pytest.mark.slow
def test_demo_catches_every_incident_within_30_minutes(tmp_path: Path) -> None:
    out = io.StringIO()
    summary = run_demo(tmp_path, days=11, replay_days=3, seed=11, out=out)
    incidents = summary["incidents"]
    assert isinstance(incidents, list)
    assert len(incidents) == 5
    for incident in incidents:
        assert incident["caught"], incident
        assert incident["delay_minutes"] <= 30
    assert summary["false_alerts_per_day"] <= 0.34  # at most one false alert in the 3 days
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    charts = list((tmp_path / "charts").glob("*.png"))
    assert charts
    assert all(is_png(p.read_bytes()) for p in charts)
    text = out.getvalue()
    assert "=== Demo summary ===" in text
    # One message per incident: the Android outage in the feed and the messenger is one.
    messages = summary["messages"]
    assert isinstance(messages, dict)
    assert sum(messages.values()) <= 10
    # (at most one "Growing:" follow-up besides it)
    assert text.count("\n🟠 feed + messenger on os=Android:") == 1
    assert "Owners: @messenger_team @feed_team @android_lead" in text
