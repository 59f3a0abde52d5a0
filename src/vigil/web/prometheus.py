"""`GET /metrics`: Vigil's state in the Prometheus text format, for Prometheus and Grafana.

Always: how many datasets are fresh, stale, silent or failing, and the outbox's backlog (the
counts `/api/v1/health` gives). For the metrics chosen in `web.prometheus.metrics`, per
segment: the newest value and the start of its bucket, and per analyzer the newest result's
expected band and whether it is an anomaly — so a Prometheus rule or a Grafana panel can use
Vigil's judgement next to the value. The dashboard's metrics page lives at the same path: a
browser, asking for HTML, gets that page; Prometheus (and curl) get the text. Built per scrape
with prometheus-client's collectors and exposition (no process-global registry: the numbers
come from the store).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vigil.config.project import Project, matches_any
from vigil.model import Segment
from vigil.store.base import Store
from vigil.web import queries
from vigil.web.context import Opened, Viewer, context
from vigil.web.pages import metrics_page

router = APIRouter()


@router.get(
    "/metrics",
    summary="Vigil's state and the chosen metrics, in the Prometheus text format",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request, who: Viewer, opened: Opened) -> Response:
    """The text format; a browser (asking for HTML) gets the dashboard's metrics page."""
    if "text/html" in request.headers.get("accept", ""):
        return metrics_page(request, who, opened)
    ctx = context(request)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(VigilCollector(ctx.project, opened, ctx.clock.now()))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class VigilCollector(Collector):
    """The gauges of one scrape."""

    def __init__(self, project: Project, store: Store, now: datetime) -> None:
        self.project, self.store, self.now = project, store, now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = queries.health(self.project, self.store, self.now)
        datasets = GaugeMetricFamily(
            "vigil_datasets", "Datasets by state (fresh, stale, silent, failing).", labels=["state"]
        )
        for state, count in health["datasets"].items():
            datasets.add_metric([state], count)
        yield datasets
        outbox = health["outbox"]
        yield GaugeMetricFamily(
            "vigil_outbox_waiting", "Notifications waiting to be delivered.", outbox["waiting"]
        )
        yield GaugeMetricFamily(
            "vigil_outbox_oldest_seconds",
            "Age of the oldest waiting notification (0: none waits).",
            outbox["oldest_seconds"] or 0,
        )
        yield from self._series()

    def _series(self) -> Iterator[GaugeMetricFamily]:
        chosen = self.project.settings.web.prometheus
        names = [
            m.name
            for d in self.project.datasets
            for m in d.metrics
            if chosen.metrics and matches_any(m.name, chosen.metrics)
        ]
        labels = ["metric", "segment", "dataset"]
        value = GaugeMetricFamily("vigil_value", "The newest stored value.", labels=labels)
        bucket = GaugeMetricFamily(
            "vigil_value_bucket_timestamp_seconds",
            "Start of the newest value's bucket (Unix time).",
            labels=labels,
        )
        with_analyzer = [*labels, "analyzer"]
        lower = GaugeMetricFamily(
            "vigil_expected_lower", "Lower end of the newest expected band.", labels=with_analyzer
        )
        upper = GaugeMetricFamily(
            "vigil_expected_upper", "Upper end of the newest expected band.", labels=with_analyzer
        )
        anomaly = GaugeMetricFamily(
            "vigil_anomaly", "1 when the newest result is an anomaly, else 0.", labels=with_analyzer
        )
        since = self.now - chosen.window
        for name in names:
            dataset = self.project.dataset_of(name)
            for key, (at, latest) in _newest_values(self.store, dataset, name, since, self.now):
                tags = [name, Segment.from_key(key).label(), dataset.name]
                value.add_metric(tags, latest)
                bucket.add_metric(tags, at)
            newest: dict[tuple[str, str], Any] = {}
            for result in self.store.list_results(metric=name, since=since):
                newest[(result.analyzer, result.series.segment.key)] = result  # in bucket order
            for (analyzer, _), result in sorted(newest.items()):
                tags = [name, result.series.segment.label(), dataset.name, analyzer]
                anomaly.add_metric(tags, 1.0 if result.is_anomaly else 0.0)
                if _finite(result.expected_lower):
                    lower.add_metric(tags, result.expected_lower)
                if _finite(result.expected_upper):
                    upper.add_metric(tags, result.expected_upper)
        yield from (value, bucket, lower, upper, anomaly)


def _newest_values(
    store: Store, dataset: Any, name: str, since: datetime, now: datetime
) -> list[tuple[str, tuple[float, float]]]:
    """(segment key, (bucket start as Unix time, value)) of each series' newest known value."""
    cells = store.load_cells([name], dataset.granularity, since, now)[name]
    known = ~np.isnan(cells.values)
    rows = cells.rows[known]
    micros = cells.buckets[known].astype("datetime64[us]").view(np.int64)
    values = cells.values[known]
    order = np.lexsort((micros, rows))
    rows, micros, values = rows[order], micros[order], values[order]
    last = np.flatnonzero(np.r_[rows[1:] != rows[:-1], True]) if len(rows) else np.zeros(0, int)
    return [(cells.segments[rows[i]], (micros[i] / 1e6, float(values[i]))) for i in last]


def _finite(number: float | None) -> bool:
    return number is not None and math.isfinite(number)
