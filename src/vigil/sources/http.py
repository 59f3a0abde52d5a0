"""HTTP JSON source: one GET per window, records picked out of the answer with JMESPath.

The URL is a template of the window (`{start:%Y-%m-%d}`, `{end_ts}`); the dataset's `records`
is the JMESPath of the list of records (default: the answer itself). In each record, the
`time_column` field is its time (ISO 8601 or Unix seconds; without one the answer tells the
present and is stamped with the newest bucket asked for), the fields named by the slices are
its segment, and each metric's `formula` is the JMESPath of its value (`count`,
`stats.signups`). A record is one segment: the API's own totals are its records without
those fields (Vigil does not add records up, which would be wrong for distinct counts).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jmespath
import pandas as pd
from jmespath.exceptions import JMESPathError

from vigil.config.project import Dataset
from vigil.config.schema import HTTPSourceConfig
from vigil.errors import SourceError
from vigil.sources.dialects import redact_url
from vigil.sources.python import contract_frame
from vigil.sources.sql import dimensions_of


class HTTPSource:
    """GET the window's URL, map its records to metric values."""

    def __init__(self, name: str, config: HTTPSourceConfig, root: Path) -> None:
        self.name = name
        self.config = config

    def tells_present(self, dataset: Dataset) -> bool:
        """Records without a time field are values of the present."""
        return not dataset.config.time_column

    def url_for(self, start: datetime, end: datetime) -> str:
        """The URL of a window."""
        s, e = start.astimezone(UTC), end.astimezone(UTC)
        try:
            return self.config.url.format(
                start=s, end=e, start_ts=int(s.timestamp()), end_ts=int(e.timestamp())
            )
        except (KeyError, IndexError, ValueError) as error:
            raise SourceError(
                f"source '{self.name}': url template: {error}; expected {{start}}, {{end}},"
                " {start_ts} or {end_ts}",
                permanent=True,
            ) from None

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """The records of the window as the dataset's metric values."""
        what = f"source '{self.name}', dataset '{dataset.name}'"
        url = self.url_for(start, end)
        try:
            with httpx.Client(timeout=self.config.timeout.total_seconds()) as client:
                response = client.get(url, headers=self.config.headers)
        except httpx.HTTPError as e:
            raise SourceError(f"{what}: {type(e).__name__} for {redact_url(url)}") from None
        if not response.is_success:
            raise SourceError(
                f"{what}: HTTP {response.status_code} for {redact_url(url)}: {response.text[:200]}",
                permanent=400 <= response.status_code < 500 and response.status_code != 429,
            )
        try:
            body = response.json()
        except ValueError:
            raise SourceError(f"{what}: the answer is not JSON: {response.text[:200]}") from None
        return contract_frame(self._rows(dataset, body, end, what), dataset, start, end, what)

    def _rows(self, dataset: Dataset, body: Any, end: datetime, what: str) -> pd.DataFrame:
        config = dataset.config
        try:
            records = jmespath.search(config.records, body) if config.records else body
        except JMESPathError as e:
            raise SourceError(f"{what}: records '{config.records}': {e}", permanent=True) from None
        if not isinstance(records, list):
            raise SourceError(
                f"{what}: records '{config.records or '@'}' is {type(records).__name__};"
                " expected a list of records"
            )
        dims = dimensions_of(dataset)
        present = dataset.granularity.floor(end - timedelta(microseconds=1))
        rows: list[dict[str, Any]] = []
        for record in records:
            if not isinstance(record, dict):
                continue
            when: Any = present
            if config.time_column:
                when = record.get(config.time_column)
                if when is None:
                    continue
                if isinstance(when, int | float):
                    when = datetime.fromtimestamp(when, UTC)
            tags = {d: record[d] for d in dims if record.get(d) is not None}
            for metric in dataset.metrics:
                try:
                    value = jmespath.search(metric.formula or metric.name, record)
                except JMESPathError as e:
                    raise SourceError(
                        f"{what}: metric '{metric.name}': {e}", permanent=True
                    ) from None
                if isinstance(value, int | float) and not isinstance(value, bool):
                    rows.append(
                        {
                            "metric_name": metric.name,
                            "metric_value": float(value),
                            "metric_timestamp": when,
                            **tags,
                        }
                    )
        columns = ["metric_name", "metric_value", "metric_timestamp", *dims]
        return pd.DataFrame(rows, columns=columns)

    @contextmanager
    def session(self) -> Iterator[None]:
        """Nothing held open."""
        yield

    def check(self, dataset: Dataset) -> list[str]:
        """The records path and the metrics' paths must be JMESPath."""
        problems = []
        for path in [dataset.config.records, *(m.formula for m in dataset.metrics)]:
            if path:
                try:
                    jmespath.compile(path)
                except JMESPathError as e:
                    problems.append(f"{dataset.where}: '{path}' is not JMESPath: {e}")
        return problems

    def close(self) -> None:
        """Nothing to release."""
