"""Python-function source: the Anomstack contract (metric_name, metric_value, metric_timestamp)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.config.project import Dataset
from vigil.config.schema import PythonSourceConfig
from vigil.errors import SourceError
from vigil.sources.base import FRAME_COLUMNS, empty_frame
from vigil.sources.pyworker import (
    CallFailedError,
    CallTimeoutError,
    Target,
    Worker,
    call,
    loaded,
    takes_window,
)
from vigil.timeutil import to_naive_utc

REQUIRED = ("metric_name", "metric_value", "metric_timestamp")
IGNORED = ("metric_batch",)  # Anomstack's batch name: the dataset, not a dimension


class PythonSource:
    """Calls the ingest function and buckets what it returns; extra columns become segment
    tags. Each dataset's `ingest_fn` (or the source's `function`) is called as f(start, end,
    **ingest_args) when it takes a window, else as f(**ingest_args) — values of the present,
    stamped with the newest bucket asked for. Isolated (the default), it runs in a child
    process under the source's `timeout` (sources/pyworker.py)."""

    def __init__(self, name: str, config: PythonSourceConfig, root: Path) -> None:
        self.name = name
        self.config = config
        self.root = root
        self._function: Callable[..., Any] | None = None
        self._worker = Worker(root)

    def _target(self, dataset: Dataset) -> Target:
        if dataset.ingest_code:
            return Target(code=dataset.ingest_code, label=dataset.ingest_file or dataset.name)
        if self.config.function is None:
            raise SourceError(
                f"source '{self.name}', dataset '{dataset.name}': no function to call; expected"
                " the source's `function` or the dataset's `ingest_fn`",
                permanent=True,
            )
        return Target(spec=self.config.function)

    def tells_present(self, dataset: Dataset) -> bool:
        """Whether the dataset's function takes no window (its values are of the present)."""
        try:
            return not takes_window(self._target(dataset), self.root)
        except SourceError:
            return False

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """Call the function and turn its frame into bucketed values of the listed metrics."""
        target = self._target(dataset)
        windowed = takes_window(target, self.root)
        window = (start, end) if windowed else ()
        args = dict(dataset.config.ingest_args)
        what = f"source '{self.name}', dataset '{dataset.name}': {target.describe()}"
        try:
            if self.config.isolate:
                frame = self._worker.call(target, args, window, self.config.timeout.total_seconds())
            else:
                frame = call(target, self.root, args, window)
        except CallTimeoutError as e:
            raise SourceError(f"{what} {e} (the source's timeout)") from None
        except CallFailedError as e:
            raise SourceError(f"{what} {e}") from None
        if not windowed:  # the present: stamped with the newest bucket asked for
            g = dataset.granularity
            frame = frame.assign(metric_timestamp=g.floor(end - timedelta(microseconds=1)))
        return self._to_long(frame, dataset, start, end, target.describe())

    def _to_long(
        self, frame: pd.DataFrame, dataset: Dataset, start: datetime, end: datetime, what: str
    ) -> pd.DataFrame:
        return contract_frame(frame, dataset, start, end, f"source '{self.name}': {what}")

    @contextmanager
    def session(self) -> Iterator[None]:
        """Nothing to hold open."""
        yield

    def check(self, dataset: Dataset) -> list[str]:
        """The function must load — in the child process when isolated (Vigil's own process
        runs no user code then); inline code is only compiled."""
        try:
            target = self._target(dataset)
            if target.code:
                compile(target.code, target.label or "<ingest_fn>", "exec")
            elif self.config.isolate:
                self._worker.call(target, {}, None, self.config.timeout.total_seconds())
            else:
                loaded(target, self.root)
        except SourceError as e:
            return [f"{dataset.where}: {e}"]
        except (CallFailedError, CallTimeoutError) as e:
            return [f"{dataset.where}: function '{target.describe()}': {e}"]
        except SyntaxError as e:
            return [f"{dataset.where}: ingest_fn line {e.lineno}: {e.msg}"]
        return []

    def close(self) -> None:
        """Stop the child process, if one runs."""
        self._worker.stop()


def contract_frame(
    frame: pd.DataFrame, dataset: Dataset, start: datetime, end: datetime, what: str
) -> pd.DataFrame:
    """Rows of metric_name, metric_value, metric_timestamp (and dimension columns) as the
    long (metric, segment, bucket, value) frame of the dataset's metrics in [start, end)."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise SourceError(
            f"{what} returned no column"
            f" {', '.join(missing)}; expected {', '.join(REQUIRED)} and optional dimensions"
        )
    wanted = {m.name for m in dataset.metrics}
    frame = frame[frame["metric_name"].isin(wanted)]
    if frame.empty:
        return empty_frame()
    stamps = pd.to_datetime(frame["metric_timestamp"], utc=True).dt.tz_localize(None)
    granularity = dataset.granularity
    buckets = [to_naive_utc(granularity.floor(t)) for t in stamps.dt.to_pydatetime()]
    dims = [c for c in frame.columns if c not in REQUIRED and c not in IGNORED]
    segments = (
        [
            json.dumps(
                {d: str(row[d]) for d in dims if pd.notna(row[d])},
                sort_keys=True,
                ensure_ascii=False,
            )
            for _, row in frame[dims].iterrows()
        ]
        if dims
        else ["{}"] * len(frame)
    )
    long = pd.DataFrame(
        {
            "metric": frame["metric_name"].astype(str).to_numpy(),
            "segment": segments,
            "bucket": pd.Series(buckets, dtype="datetime64[us]").to_numpy(),
            "value": pd.to_numeric(frame["metric_value"], errors="coerce").to_numpy(),
        }
    )
    lo, hi = to_naive_utc(start), to_naive_utc(end)
    long = long[(long["bucket"] >= lo) & (long["bucket"] < hi)]
    # Several rows in one bucket: the latest reported value wins.
    long = long.drop_duplicates(subset=["metric", "segment", "bucket"], keep="last")
    return long[FRAME_COLUMNS].reset_index(drop=True)
