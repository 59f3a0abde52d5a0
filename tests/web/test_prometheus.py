"""`GET /metrics`, scraped over HTTP and read with prometheus-client's own parser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import VIGIL_YAML
from tests.scheduler.helpers import DROP
from tests.web.conftest import NOW
from vigil.clock import ManualClock
from vigil.config import load_project
from vigil.web.server import WebServer

TOKEN = "scrape-token-0123456789abcdef"


@pytest.fixture
def scraped(backfilled_dir: Path, tmp_path: Path) -> Iterator[httpx.Client]:
    root = tmp_path / "project"
    shutil.copytree(backfilled_dir, root)
    (root / "vigil.yaml").write_text(
        VIGIL_YAML
        + "web:\n  prometheus: {metrics: [act*]}\n"
        + f"  tokens: [{{token: {TOKEN}, role: viewer}}]\n",
        encoding="utf-8",
    )
    server = WebServer(load_project(root, env={}), ManualClock(NOW), "127.0.0.1", 0)
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client
    finally:
        server.stop()


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_metrics_expose_the_newest_value_band_and_anomaly_of_chosen_metrics(
    scraped: httpx.Client,
) -> None:
    assert scraped.get("/metrics").status_code == 401  # the web section's credentials apply
    response = scraped.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = _samples(response.text)
    assert ({"state": "fresh"}, 1.0) in samples["vigil_datasets"]
    assert samples["vigil_outbox_waiting"] == [({}, 0.0)]
    # The drop's last bucket (DROP + 45 min): 20% of 10 iOS and 20 Android actions.
    values = {labels["segment"]: v for labels, v in samples["vigil_value"]}
    assert values == {"total": 6.0, "os=iOS": 2.0, "os=Android": 4.0}
    assert {labels["metric"] for labels, _ in samples["vigil_value"]} == {"actions"}  # not users
    newest = (DROP + timedelta(minutes=45)).timestamp()
    assert {v for _, v in samples["vigil_value_bucket_timestamp_seconds"]} == {newest}
    anomalies = {(lab["segment"], lab["analyzer"]): v for lab, v in samples["vigil_anomaly"]}
    assert anomalies == {
        ("total", "day_week"): 1.0,
        ("os=iOS", "day_week"): 1.0,
        ("os=Android", "day_week"): 1.0,
    }
    lower = {lab["segment"]: v for lab, v in samples.get("vigil_expected_lower", [])}
    upper = {lab["segment"]: v for lab, v in samples.get("vigil_expected_upper", [])}
    assert lower or upper
    for segment, bound in lower.items():
        assert bound > values[segment]  # the drop is below the band
    assert all(labels["dataset"] == "events" for labels, _ in samples["vigil_value"])


def test_without_chosen_metrics_only_vigils_own_state(served: object) -> None:
    client: httpx.Client = served.client  # type: ignore[attr-defined]
    samples = _samples(client.get("/metrics").text)
    assert "vigil_datasets" in samples
    assert "vigil_value" not in samples
    # A browser asking for HTML gets the dashboard's metrics page at the same path.
    page = client.get("/metrics", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.headers["content-type"].startswith("text/html")
    assert "actions" in page.text
