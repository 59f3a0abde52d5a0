"""The dashboard in real headless Chromium (Playwright, the system's chromium): every page at
laptop and phone widths, the chart's points and band, feedback, and silences.

Screenshots go to build/screenshots/ (or $VIGIL_SCREENSHOTS).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import MONITORS_YAML, STEP, ProjectFactory
from tests.scheduler.helpers import DROP, app_for, with_drop
from tests.web.conftest import Served
from vigil.scheduler.cycle import run_cycle
from vigil.web.server import WebServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = Path(
    os.environ.get("VIGIL_SCREENSHOTS", Path(__file__).parents[2] / "build" / "screenshots")
)
WIDTHS = {"laptop": (1366, 850), "phone": (390, 844)}
PAGES = {
    "overview": "/",
    "metrics": "/metrics",
    "explorer": "/metrics/actions?segment=os%3DiOS",
    "incidents": "/incidents",
    "alerts": "/alerts",
    "silences": "/silences",
    "runs": "/runs",
    "config": "/config",
    "api": "/api",
}
# Chromium must not reach out to the network (there is none here).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI needs chromium for the browser tests (.ci/run installs it)")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 850})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    opened.errors = errors  # type: ignore[attr-defined]
    yield opened
    context.close()


def url(served: Served, path: str) -> str:
    return str(served.client.base_url).rstrip("/") + path


@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_loads_without_errors_or_sideways_scrolling(
    served: Served, page: Page, width: str
) -> None:
    w, h = WIDTHS[width]
    page.set_viewport_size({"width": w, "height": h})
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, path in PAGES.items():
        response = page.goto(url(served, path))
        assert response is not None
        assert response.status == 200, f"{path}: {response.status}"
        page.wait_for_load_state("networkidle")
        if name == "explorer":
            page.wait_for_function("window.vigilChartData !== undefined")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} at {width} scrolls sideways by {overflow}px"
        page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
        assert page.locator("h1").first.is_visible()
    assert page.errors == []  # type: ignore[attr-defined]


def test_overview_shows_the_firing_monitor(served: Served, page: Page) -> None:
    page.goto(url(served, "/"))
    card = page.locator('[data-monitor="main"]')
    assert card.locator(".state").inner_text().lower() == "firing"
    assert page.locator("text=os=Android").count() >= 1


def test_the_chart_draws_the_series_points_and_band(served: Served, page: Page) -> None:
    page.goto(url(served, PAGES["explorer"]))
    page.wait_for_function("window.vigilChartData !== undefined")
    drawn = page.evaluate(
        """() => {
        const d = window.vigilChartData, u = window.vigilChart;
        const canvas = document.querySelector('#chart canvas');
        const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let blue = 0, green = 0, red = 0;
        for (let i = 0; i < px.length; i += 4) {
            const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
            if (a < 10) continue;
            if (b > 180 && r < 80 && g < 140) blue++;            // the series line
            else if (g > 120 && r < 60 && b < 110) green++;        // the band's fill
            else if (r > 180 && g < 80 && b < 80) red++;          // anomaly marks
        }
        return {points: d.value.filter(v => v !== null).length,
                band: d.lower.filter(v => v !== null).length,
                series: u.series.length, anomalies: d.anomalies.length, blue, green, red};
    }"""
    )
    assert drawn["points"] == 96
    assert drawn["band"] == 96
    assert drawn["anomalies"] == 4
    assert drawn["blue"] > 200, drawn
    assert drawn["green"] > 2000, drawn
    assert drawn["red"] > 20, drawn
    assert "96 points" in page.locator("#chart-status").inner_text()
    page.wait_for_function("document.querySelectorAll('#breakdown tbody tr').length === 3")
    rows = page.locator("#breakdown tbody tr")
    assert "os=Android" in rows.nth(1).inner_text()  # the bigger slice moved the total most


def test_feedback_buttons_store_the_verdict(served: Served, page: Page) -> None:
    page.goto(url(served, "/alerts?segment=os%3DiOS"))
    row = page.locator("table.alerts tbody tr").first
    row.locator('button[data-label="false_alarm"]').click()
    page.wait_for_selector("table.alerts .label.saved")
    assert row.locator(".label").inner_text().lower() == "false alarm"
    page.reload()
    assert page.locator("table.alerts tbody tr").first.locator(".label").inner_text().lower() == (
        "false alarm"
    )
    (verdict,) = served.client.get("/api/v1/feedback").json()["items"]
    assert verdict["label"] == "false_alarm"
    assert verdict["segment"] == "os=iOS"


def test_a_silence_is_created_then_expired(served: Served, page: Page) -> None:
    page.goto(url(served, "/silences"))
    page.fill('#silence-form input[name="metric"]', "actions")
    page.fill('#silence-form input[name="segment"]', "os=iOS")
    page.fill('#silence-form input[name="reason"]', "iOS release")
    with page.expect_navigation():
        page.click('#silence-form button[type="submit"]')
    row = page.locator("table.silences tbody tr").first
    assert "iOS release" in row.inner_text()
    assert "os=iOS" in row.inner_text()
    assert "active" in row.inner_text()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "silence-active.png"))
    with page.expect_navigation():
        row.locator("button.expire").click()
    assert "expired" in page.locator("table.silences tbody tr").first.inner_text()
    assert served.client.get("/api/v1/silences").json()["items"] == []


def test_an_incident_is_acknowledged_then_resolved_from_its_page(
    project_dir: ProjectFactory, page: Page
) -> None:
    with_drop(project_dir, buckets=2)
    grouped = "\n".join(line for line in MONITORS_YAML.splitlines() if "group: none" not in line)
    root = project_dir.write({"monitors/main.yaml": grouped})
    app, _ = app_for(root)
    app.clock.set(DROP + STEP)  # type: ignore[attr-defined]
    run_cycle(app, DROP + STEP)  # one incident message, to the console
    server = WebServer(app.project, app.clock, "127.0.0.1", 0)  # type: ignore[arg-type]
    base = server.start()
    try:
        page.goto(base + "/incidents")
        card = page.locator("section.incident").first
        assert card.get_attribute("data-status") == "open"
        assert card.locator(".members li").count() == 3
        assert "events: 3 anomalies in 1 metric" in card.locator(".message pre").inner_text()
        with page.expect_navigation():
            card.locator('button[data-action="ack"]').click()
        taken = page.locator(".actions-taken li").first.inner_text()
        assert "Acknowledged by" in taken
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "incident-acknowledged.png"), full_page=True)
        with page.expect_navigation():
            page.locator('section.incident button[data-action="resolve"]').first.click()
        assert page.locator("section.incident").first.get_attribute("data-status") == "resolved"
        assert [a.action for a in app.store.list_actions()] == ["ack"]
        assert app.store.list_incidents("open") == []
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        server.stop()
