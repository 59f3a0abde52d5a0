"""Prometheus source: the HTTP API's query_range, one PromQL expression per metric.

The value evaluated at a bucket's end is the bucket's value (so `increase(x[15m])` counts the
15 minutes the bucket covers); every returned label set is a segment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from vigil.config.project import Dataset
from vigil.config.schema import PrometheusSourceConfig
from vigil.errors import SourceError
from vigil.sources.base import FRAME_COLUMNS, empty_frame
from vigil.sources.dialects import redact_url
from vigil.timeutil import as_utc

# Prometheus refuses more than 11,000 points per series in one query_range call.
MAX_POINTS = 10_000


class PrometheusSource:
    """Reads each metric's PromQL with query_range at the dataset's granularity."""

    def __init__(self, name: str, config: PrometheusSourceConfig, root: Path) -> None:
        self.name = name
        self.config = config
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            headers = {}
            if self.config.token is not None:
                headers["Authorization"] = f"Bearer {self.config.token.get_secret_value()}"
            self._client = httpx.Client(
                base_url=self.config.url.rstrip("/"),
                headers=headers,
                timeout=self.config.query_timeout.total_seconds() + 5,
            )
        return self._client

    @contextmanager
    def session(self) -> Iterator[None]:
        """The HTTP client stays open until `close`."""
        yield

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """Every metric's series for buckets starting in [start, end)."""
        granularity = dataset.granularity
        if granularity.is_calendar:
            raise SourceError(
                f"source '{self.name}', dataset '{dataset.name}': Prometheus steps are fixed;"
                " expected a granularity shorter than a day"
            )
        step = granularity.step
        frames = []
        for metric in dataset.metrics:
            chunk_start = as_utc(start)
            while chunk_start < as_utc(end):
                chunk_end = min(as_utc(end), chunk_start + step * MAX_POINTS)
                frames.append(
                    self._range(
                        dataset, metric.name, metric.formula or "", chunk_start, chunk_end, step
                    )
                )
                chunk_start = chunk_end
        frames = [f for f in frames if not f.empty]
        if not frames:
            return empty_frame()
        return pd.concat(frames, ignore_index=True)[FRAME_COLUMNS]

    def _range(
        self,
        dataset: Dataset,
        metric: str,
        promql: str,
        start: datetime,
        end: datetime,
        step: timedelta,
    ) -> pd.DataFrame:
        """Evaluate at each bucket's end: start + step … end."""
        params = {
            "query": promql,
            "start": f"{(start + step).timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{int(step.total_seconds())}s",
            "timeout": f"{int(self.config.query_timeout.total_seconds())}s",
        }
        where = f"source '{self.name}' (prometheus), dataset '{dataset.name}', metric '{metric}'"
        try:
            response = self._http().post("/api/v1/query_range", data=params)
            body = response.json()
        except (httpx.HTTPError, json.JSONDecodeError) as e:
            raise SourceError(f"{where}: {redact_url(str(e))}\nPromQL: {promql}") from e
        if response.status_code != 200 or body.get("status") != "success":
            detail = body.get("error") or response.reason_phrase
            raise SourceError(f"{where}: HTTP {response.status_code}: {detail}\nPromQL: {promql}")
        data = body.get("data", {})
        if data.get("resultType") not in ("matrix", "vector"):
            raise SourceError(
                f"{where}: expected a range vector result, got {data.get('resultType')}"
                f"\nPromQL: {promql}"
            )
        rows: list[tuple[str, str, datetime, float]] = []
        for series in data.get("result", []):
            labels = {k: v for k, v in series.get("metric", {}).items() if k != "__name__"}
            segment = json.dumps(labels, sort_keys=True, ensure_ascii=False)
            for stamp, value in series.get("values", []):
                bucket = datetime.fromtimestamp(float(stamp), UTC) - step
                rows.append((metric, segment, bucket.replace(tzinfo=None), float(value)))
        if not rows:
            return empty_frame()
        frame = pd.DataFrame(rows, columns=FRAME_COLUMNS)
        frame["bucket"] = frame["bucket"].astype("datetime64[us]")
        return frame

    def check(self, dataset: Dataset) -> list[str]:
        """Each PromQL expression must parse (an instant query at the epoch checks it)."""
        problems = []
        for metric in dataset.metrics:
            where = dataset.formula_where.get(metric.name, dataset.where)
            try:
                response = self._http().post(
                    "/api/v1/query", data={"query": metric.formula or "", "time": "0"}
                )
                body: dict[str, Any] = response.json()
            except (httpx.HTTPError, json.JSONDecodeError) as e:
                return [f"{dataset.where}: source '{self.name}': {redact_url(str(e))}"]
            if body.get("status") != "success":
                problems.append(f"{where}: {body.get('error', response.reason_phrase)}")
        return problems

    def close(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            self._client.close()
            self._client = None
