"""Python-function source: the Anomstack contract (metric_name, metric_value, metric_timestamp)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.config.project import Dataset
from vigil.config.schema import PythonSourceConfig
from vigil.errors import SourceError
from vigil.sources.base import FRAME_COLUMNS, empty_frame
from vigil.timeutil import to_naive_utc

REQUIRED = ("metric_name", "metric_value", "metric_timestamp")


class PythonSource:
    """Calls f(start, end) and buckets what it returns; extra columns become segment tags."""

    def __init__(self, name: str, config: PythonSourceConfig, root: Path) -> None:
        self.name = name
        self.config = config
        self.root = root
        self._function: Callable[..., Any] | None = None

    def _load(self) -> Callable[..., Any]:
        if self._function is None:
            self._function = load_function(self.config.function, self.root)
        return self._function

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """Call the function and turn its frame into bucketed values of the listed metrics."""
        function = self._load()
        try:
            frame = function(start, end)
        except Exception as e:
            raise SourceError(
                f"source '{self.name}': {self.config.function} raised {type(e).__name__}: {e}"
            ) from e
        if not isinstance(frame, pd.DataFrame):
            raise SourceError(
                f"source '{self.name}': {self.config.function} returned"
                f" {type(frame).__name__}; expected a pandas DataFrame"
            )
        return self._to_long(frame, dataset, start, end)

    def _to_long(
        self, frame: pd.DataFrame, dataset: Dataset, start: datetime, end: datetime
    ) -> pd.DataFrame:
        missing = [c for c in REQUIRED if c not in frame.columns]
        if missing:
            raise SourceError(
                f"source '{self.name}': {self.config.function} returned no column"
                f" {', '.join(missing)}; expected {', '.join(REQUIRED)} and optional dimensions"
            )
        wanted = {m.name for m in dataset.metrics}
        frame = frame[frame["metric_name"].isin(wanted)]
        if frame.empty:
            return empty_frame()
        stamps = pd.to_datetime(frame["metric_timestamp"], utc=True).dt.tz_localize(None)
        granularity = dataset.granularity
        buckets = [to_naive_utc(granularity.floor(t)) for t in stamps.dt.to_pydatetime()]
        dims = [c for c in frame.columns if c not in REQUIRED]
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

    @contextmanager
    def session(self) -> Iterator[None]:
        """Nothing to hold open."""
        yield

    def check(self, dataset: Dataset) -> list[str]:
        """The function must be importable."""
        try:
            self._load()
        except SourceError as e:
            return [f"{dataset.where}: {e}"]
        return []

    def close(self) -> None:
        """Nothing to release."""


def load_function(spec: str, root: Path) -> Callable[..., Any]:
    """Import `module:function` or `file.py:function` (relative to the project root)."""
    target, _, name = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target) if Path(target).is_absolute() else root / target
            module_name = f"vigil_user_{path.stem}_{abs(hash(str(path)))}"
            loader_spec = importlib.util.spec_from_file_location(module_name, path)
            if loader_spec is None or loader_spec.loader is None or not path.exists():
                raise SourceError(f"function '{spec}': file {path} does not exist")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[module_name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except SourceError:
        raise
    except Exception as e:
        raise SourceError(f"function '{spec}': cannot import: {type(e).__name__}: {e}") from e
    function = getattr(module, name, None)
    if not callable(function):
        raise SourceError(f"function '{spec}': no callable named '{name}' in {target}")
    return function  # type: ignore[no-any-return]
