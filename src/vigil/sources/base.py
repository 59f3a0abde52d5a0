"""The source interface: fetch bucketed metric values of one dataset for a window."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

import pandas as pd

from vigil.config.project import Dataset

# Columns of the long frame every source returns.
FRAME_COLUMNS = ["metric", "segment", "bucket", "value"]


class Source(Protocol):
    """Reads raw data where it lives and returns one row per metric, segment and bucket."""

    def fetch(self, dataset: Dataset, start: datetime, end: datetime) -> pd.DataFrame:
        """Values for buckets starting in [start, end): columns metric, segment, bucket, value.

        `segment` is the canonical segment key, `bucket` a naive UTC timestamp.
        """
        ...

    def session(self) -> AbstractContextManager[None]:
        """Hold connections open for a batch of fetches; release them afterwards."""
        ...

    def check(self, dataset: Dataset) -> list[str]:
        """Problems with the dataset against the real source (unknown columns, bad SQL)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def empty_frame() -> pd.DataFrame:
    """A frame with the source columns and no rows."""
    return pd.DataFrame(
        {
            "metric": pd.Series([], dtype=object),
            "segment": pd.Series([], dtype=object),
            "bucket": pd.Series([], dtype="datetime64[us]"),
            "value": pd.Series([], dtype="float64"),
        }
    )
