"""Google Analytics 4: the Data API's runReport, per slice, at hourly or daily buckets.

Each metric's `formula` is a GA4 metric (`activeUsers`, `sessions`, `screenPageViews`); each
slice a GA4 dimension (`deviceCategory`, `country`). GA4 has no grouping sets, and its users
do not add up over a dimension, so the total and each slice are one runReport each, with
`dateHour` (1h buckets) or `date` (1d) — in the property's reporting zone — beside the slice's
dimensions. Credentials come from the environment: a service account's JSON key (the OAuth
token is fetched with google-auth, scope analytics.readonly) or an access token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from vigil.config.project import Dataset
from vigil.config.schema import GA4SourceConfig
from vigil.errors import SourceError
from vigil.sources.python import contract_frame
from vigil.timeutil import get_zone

SCOPE = "https://www.googleapis.com/auth/analytics.readonly"
TIME_DIMENSION = {3600: ("dateHour", "%Y%m%d%H"), 86400: ("date", "%Y%m%d")}
PAGE = 100_000


class GA4Source:
    """runReport for the total and each slice of a dataset."""

    def __init__(self, name: str, config: GA4SourceConfig, root: Path) -> None:
        self.name = name
        self.config = config
        self._credentials: Any = None
        self._lock = threading.Lock()

    def _token(self) -> str:
        if self.config.access_token is not None:
            return self.config.access_token.get_secret_value()
        assert self.config.credentials is not None
        with self._lock:
            if self._credentials is None:
                try:
                    from google.oauth2 import service_account
                except ImportError:
                    raise SourceError(
                        f"source '{self.name}': a service account needs google-auth"
                        " (pip install 'vigil[ga4]'); or give access_token",
                        permanent=True,
                    ) from None
                try:
                    info = json.loads(self.config.credentials.get_secret_value())
                    make = service_account.Credentials.from_service_account_info
                    self._credentials = make(info, scopes=[SCOPE])  # type: ignore[no-untyped-call]
                except (ValueError, KeyError) as e:
                    raise SourceError(
                        f"source '{self.name}': credentials are not a service account's JSON"
                        f" key: {type(e).__name__}",
                        permanent=True,
                    ) from None
            if not self._credentials.valid:
                from google.auth.exceptions import GoogleAuthError
                from google.auth.transport.requests import Request

                try:
                    self._credentials.refresh(Request())
                except GoogleAuthError as e:
                    raise SourceError(f"source '{self.name}': no access token: {e}") from None
            return str(self._credentials.token)

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """Every grouping set's report for the days the window touches, as metric values."""
        what = f"source '{self.name}', dataset '{dataset.name}'"
        found = TIME_DIMENSION.get(dataset.granularity.seconds)
        if found is None:
            raise SourceError(
                f"{what}: GA4 reports by hour or day; expected granularity 1h or 1d",
                permanent=True,
            )
        time_dim, pattern = found
        zone = get_zone(self.config.timezone or dataset.granularity.tz)
        first = start.astimezone(zone).date()
        last = (end - timedelta(microseconds=1)).astimezone(zone).date()
        sets: list[list[str]] = [[]] if dataset.config.include_total else []
        sets += [list(s.dimensions) for s in dataset.slices]
        rows: list[dict[str, Any]] = []
        for dims in sets:
            for row in self._report(dataset, [time_dim, *dims], first, last, what):
                values = row["dimensionValues"]
                local = datetime.strptime(values[0]["value"], pattern).replace(tzinfo=zone)
                tags = {d: v["value"] for d, v in zip(dims, values[1:], strict=True)}
                for metric, value in zip(dataset.metrics, row["metricValues"], strict=True):
                    rows.append(
                        {
                            "metric_name": metric.name,
                            "metric_value": float(value["value"]),
                            "metric_timestamp": local,
                            **tags,
                        }
                    )
        dims_all = list(dict.fromkeys(d for s in sets for d in s))
        frame = pd.DataFrame(
            rows, columns=["metric_name", "metric_value", "metric_timestamp", *dims_all]
        )
        return contract_frame(frame, dataset, start, end, what)

    def _report(
        self, dataset: Dataset, dims: list[str], first: Any, last: Any, what: str
    ) -> list[dict[str, Any]]:
        url = (
            f"{self.config.api_url.rstrip('/')}/v1beta/properties/{self.config.property}:runReport"
        )
        body: dict[str, Any] = {
            "dateRanges": [{"startDate": first.isoformat(), "endDate": last.isoformat()}],
            "dimensions": [{"name": d} for d in dims],
            "metrics": [{"name": m.formula or m.name} for m in dataset.metrics],
            "limit": PAGE,
        }
        rows: list[dict[str, Any]] = []
        with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
            while True:
                headers = {"Authorization": f"Bearer {self._token()}"}
                try:
                    response = client.post(url, json={**body, "offset": len(rows)}, headers=headers)
                except httpx.HTTPError as e:
                    raise SourceError(f"{what}: runReport: {type(e).__name__}") from None
                if not response.is_success:
                    message = _message(response)
                    raise SourceError(
                        f"{what}: runReport HTTP {response.status_code}: {message}",
                        permanent=response.status_code in (400, 403, 404),
                    )
                page = response.json()
                rows += page.get("rows", [])
                if len(rows) >= int(page.get("rowCount", 0)) or not page.get("rows"):
                    return rows

    @contextmanager
    def session(self) -> Iterator[None]:
        """Nothing held open."""
        yield

    def check(self, dataset: Dataset) -> list[str]:
        """Hourly or daily buckets."""
        if dataset.granularity.seconds not in TIME_DIMENSION:
            return [f"{dataset.where}: GA4 reports by hour or day; expected granularity 1h or 1d"]
        return []

    def close(self) -> None:
        """Nothing to release."""


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", {}).get("message", ""))[:300]
    except (ValueError, AttributeError):
        return response.text[:300]
