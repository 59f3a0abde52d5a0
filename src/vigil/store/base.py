"""The metric store interface: values, analysis results, alerts and the notification outbox."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd

from vigil.errors import StoreError
from vigil.model import (
    Alert,
    AnalysisResult,
    ChatAction,
    DeliveryStatus,
    Feedback,
    Incident,
    Notification,
    PipelineState,
    RunRecord,
    SeriesKey,
    Silence,
)
from vigil.store.migrations import Migration
from vigil.timeutil import Granularity


@dataclass(frozen=True)
class AlertRow:
    """An alert as read back from the log, joined with its analysis result."""

    monitor: str
    severity: str
    status: str
    created_at: datetime
    result: AnalysisResult
    deliveries: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True)
class Cells:
    """One metric's stored values as parallel arrays, for building a series × time matrix.

    `segments` are the sorted segment keys; `rows[i]` indexes them, `buckets[i]` is a naive-UTC
    datetime64[us] and `values[i]` the value (NaN for a stored null).
    """

    segments: list[str]
    rows: np.ndarray
    buckets: np.ndarray
    values: np.ndarray


def cells_from_frame(frame: pd.DataFrame, metrics: list[str]) -> dict[str, Cells]:
    """Split long (metric, segment, bucket, value) rows into each metric's cells."""
    out: dict[str, Cells] = {}
    for metric in metrics:
        rows = frame[frame["metric"] == metric] if len(frame) else frame
        keys = sorted(rows["segment"].unique().tolist()) if len(rows) else []
        codes = pd.Categorical(rows["segment"], categories=keys).codes
        out[metric] = Cells(
            keys,
            np.asarray(codes, dtype=np.int64) if keys else np.array([], dtype=np.int64),
            rows["bucket"].to_numpy(dtype="datetime64[us]") if keys else np.array([], "M8[us]"),
            rows["value"].to_numpy(dtype=float, na_value=np.nan) if keys else np.array([]),
        )
    return out


def cells_by_id(
    keys: list[tuple[Any, ...]],
    ids: np.ndarray,
    metrics: list[str],
    buckets: np.ndarray,
    values: np.ndarray,
    present_ids: np.ndarray | None = None,
) -> dict[str, Cells]:
    """Cells per metric from rows keyed by series id; `keys` holds (id, metric, segment).

    Segments are sorted in Python, so the row order never depends on an engine's collation;
    only series with a row in the window (or listed in `present_ids`) get one.
    """
    size = int(max([int(k[0]) for k in keys], default=-1)) + 1
    if len(ids) and int(ids.max()) >= size:
        raise StoreError("metric_values names a series id missing from the series table")
    present = np.zeros(size, dtype=bool)
    present[ids] = True
    if present_ids is not None:
        if len(present_ids) and int(present_ids.max()) >= size:
            raise StoreError("metric_values names a series id missing from the series table")
        present[present_ids] = True
    rank = np.full(size, -1, dtype=np.int64)
    owner = np.full(size, -1, dtype=np.int64)
    index = {m: i for i, m in enumerate(metrics)}
    out: dict[str, Cells] = {}
    chosen: dict[str, list[tuple[str, int]]] = {m: [] for m in metrics}
    for sid, metric, segment in keys:
        if present[int(sid)] and metric in index:
            chosen[metric].append((segment, int(sid)))
    for metric, found in chosen.items():
        found.sort()
        sids = np.array([sid for _, sid in found], dtype=np.int64)
        rank[sids] = np.arange(len(found))
        owner[sids] = index[metric]
    if len(metrics) == 1:
        # One metric (the usual case): every row is its own, no mask over the window's rows.
        segments = [segment for segment, _ in chosen[metrics[0]]]
        return {metrics[0]: Cells(segments, rank[ids], buckets, values)}
    row_owner = owner[ids]
    row_rank = rank[ids]
    for metric in metrics:
        mine = row_owner == index[metric]
        out[metric] = Cells(
            [segment for segment, _ in chosen[metric]],
            row_rank[mine],
            buckets[mine],
            values[mine],
        )
    return out


class Store(Protocol):
    """Persists every value, check, alert and notification; answers what stages ask."""

    # The backend's schema steps, in order (the last is the newest version).
    migrations: tuple[Migration, ...]

    def session(self) -> AbstractContextManager[Any]:
        """Keep one connection open for a batch of calls (a cycle)."""
        ...

    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together or not at all (on ClickHouse: results, which
        mark buckets done, are written when the block ends; other writes are idempotent)."""
        ...

    def migrate(self) -> list[str]:
        """Apply pending schema migrations; return the names applied."""
        ...

    def schema_version(self) -> int:
        """The newest applied migration."""
        ...

    def prune(
        self, values_before: datetime | None, results_before: datetime | None
    ) -> dict[str, int]:
        """Delete values, and results with what hangs on them, older than the cutoffs."""
        ...

    # values
    def upsert_values(self, frame: pd.DataFrame, granularity: Granularity) -> int:
        """Insert or replace (metric, segment, bucket) values; return rows written."""
        ...

    def load_values(
        self, metrics: list[str], granularity: Granularity, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Values with buckets in [start, end): columns metric, segment, bucket, value."""
        ...

    def load_cells(
        self,
        metrics: list[str],
        granularity: Granularity,
        start: datetime,
        end: datetime,
        *,
        windows: list[tuple[datetime, datetime]] | None = None,
    ) -> dict[str, Cells]:
        """Each metric's values with buckets in [start, end) as arrays (the analysis path:
        no per-value Python objects). With `windows`, only values in those [a, b) ranges are
        needed (a backend may return more), but every series with a value anywhere in
        [start, end) still gets a segment."""
        ...

    def load_payloads(
        self, metrics: list[str], granularity: Granularity, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Distributions with buckets in [start, end): metric, segment, bucket, payload (dict).

        `upsert_values` stores them from a frame's optional `payload` column.
        """
        ...

    def save_reference(
        self,
        name: str,
        metrics: list[str],
        granularity: Granularity,
        start: datetime,
        end: datetime,
    ) -> int:
        """Snapshot stored values and distributions of [start, end) as `name`; return rows."""
        ...

    def load_reference(self, name: str, metrics: list[str]) -> pd.DataFrame:
        """A reference's rows for these metrics: metric, segment, bucket, value, payload."""
        ...

    def list_references(self) -> list[dict[str, Any]]:
        """Each reference: name, metrics, series, rows, first and last bucket, created_at."""
        ...

    def delete_reference(self, name: str) -> bool:
        """Remove a reference; False if there was none."""
        ...

    def load_series(
        self, metric: str, segment: str, granularity: Granularity, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """One series' values with buckets in [start, end): bucket (naive UTC), value."""
        ...

    def load_series_results(
        self, metric: str, segment: str, granularity: Granularity, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """One series' results in [start, end) as a frame: analyzer, bucket (naive UTC),
        status, value, expected_lower, expected_upper, deviation, reason."""
        ...

    def list_series(self) -> list[dict[str, Any]]:
        """Every stored series: metric, segment, granularity, points, first and last bucket."""
        ...

    def known_segments(
        self, metrics: list[str], granularity: Granularity, since: datetime
    ) -> dict[str, set[str]]:
        """Segments each metric has had non-zero values for since `since`."""
        ...

    def ingested_until(self, dataset: str) -> datetime | None:
        """End of the newest window ingested for the dataset."""
        ...

    def set_ingested_until(self, dataset: str, until: datetime) -> None:
        """Record the ingest watermark (it only moves forward)."""
        ...

    # results
    def analyzed_keys(
        self, metrics: list[str], granularity: Granularity, bucket: datetime
    ) -> dict[tuple[str, str, str], str]:
        """(analyzer, metric, segment) → config hash of final (not partial) results at a bucket."""
        ...

    def analyzed_buckets(
        self, metrics: list[str], granularity: Granularity, start: datetime, end: datetime
    ) -> set[datetime]:
        """Buckets in [start, end) with at least one final result for these metrics."""
        ...

    def last_analyzed(self, metrics: list[str], granularity: Granularity) -> datetime | None:
        """Newest bucket with any result for these metrics."""
        ...

    def save_results(self, results: Iterable[AnalysisResult]) -> int:
        """Persist results, replacing any for the same analyzer, series and bucket."""
        ...

    def list_results(
        self,
        *,
        metric: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        anomalies_only: bool = False,
        segment: str | None = None,
    ) -> list[AnalysisResult]:
        """Results in bucket order (`segment` is the canonical key)."""
        ...

    def last_change(
        self, metrics: list[str], granularity: Granularity, bucket: datetime
    ) -> datetime | None:
        """When any value of these metrics at the bucket last changed."""
        ...

    # run log, pipeline state, leader lock
    def record_runs(self, records: Iterable[RunRecord]) -> None:
        """Append stage records to the run log."""
        ...

    def list_runs(self, *, since: datetime | None = None, limit: int = 200) -> list[RunRecord]:
        """The newest run-log records, oldest first."""
        ...

    def pipeline_state(self, dataset: str) -> PipelineState:
        """The dataset's failure streak."""
        ...

    def save_pipeline_state(self, state: PipelineState) -> None:
        """Replace the dataset's failure streak."""
        ...

    def acquire_lock(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the named lock unless another owner renewed it within `ttl`."""
        ...

    def release_lock(self, name: str, owner: str) -> None:
        """Give the lock up (only if held by `owner`)."""
        ...

    # alerts
    def save_alerts(self, alerts: Iterable[Alert]) -> int:
        """Persist monitor decisions; an existing one is kept."""
        ...

    def last_notified(
        self, monitor: str, analyzer: str, series: SeriesKey, before: datetime
    ) -> datetime | None:
        """Bucket of the newest alert that was (or would have been) sent, before `before`."""
        ...

    def recent_messages(
        self, channel: str, since: datetime, before: datetime
    ) -> list[tuple[str, str, str, str]]:
        """(monitor, metric, segment key, severity) of alert and incident messages queued to
        `channel` for buckets in [since, before): what an open incident has already told
        people there."""
        ...

    def list_alerts(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[AlertRow]:
        """Alerts joined with their results, oldest first."""
        ...

    # feedback
    def save_feedback(self, feedback: Feedback) -> None:
        """Record a verdict on an alert; a later one for the same alert replaces it."""
        ...

    def list_feedback(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Feedback]:
        """Verdicts on alerts with buckets in [since, until), in bucket order."""
        ...

    # incidents
    def open_incident(self, monitor: str, series: SeriesKey) -> Incident | None:
        """The monitor's open incident on the series, if any."""
        ...

    def save_incident(self, incident: Incident) -> int:
        """Insert a new incident (id 0) or update one; return its id."""
        ...

    def list_incidents(self, status: str | None = None) -> list[Incident]:
        """Incidents, newest first, optionally only `open` or `resolved` ones."""
        ...

    # silences
    def add_silence(self, silence: Silence) -> int:
        """Store a silence; return its id."""
        ...

    def list_silences(self, active_at: datetime | None = None) -> list[Silence]:
        """Every silence, or those active at `active_at`, by id."""
        ...

    def expire_silence(self, silence_id: int, at: datetime) -> bool:
        """End a silence now; False if there is no such unexpired silence."""
        ...

    # outbox
    def enqueue(self, notifications: Iterable[Notification]) -> int:
        """Add notifications; one whose key exists is not added again."""
        ...

    def outbox(
        self, statuses: tuple[DeliveryStatus, ...], due: datetime | None = None
    ) -> Iterator[Notification]:
        """Notifications in the given states (and due for an attempt at `due`), oldest first."""
        ...

    def told(self, since: datetime) -> list[Notification]:
        """Sent messages about series for buckets from `since`, with members and remote ids."""
        ...

    def pending_messages(self, channel: str, bucket: datetime) -> list[Notification]:
        """Alert and incident messages to `channel` about `bucket` not yet sent (no image)."""
        ...

    def supersede(self, keys: list[str]) -> None:
        """Mark still pending messages `merged` (a later message says all they said)."""
        ...

    def set_remote_ref(self, key: str, ref: str) -> None:
        """Remember the channel's id of a sent message."""
        ...

    def find_message(self, channel: str, remote_ref: str) -> Notification | None:
        """The sent alert or incident message the channel knows by `remote_ref`."""
        ...

    def amend_message(self, key: str, text: str, html: str) -> None:
        """Replace a sent message's text after an edit in the chat."""
        ...

    def record_action(self, action: ChatAction) -> bool:
        """Record a button press once; False when it was recorded before."""
        ...

    def list_actions(self, message_key: str | None = None) -> list[ChatAction]:
        """Button presses, oldest first (of one message, when given)."""
        ...

    def last_action_seq(self, channel: str) -> int | None:
        """The newest update number recorded for a chat channel."""
        ...

    def delivery_lock(self, key: str) -> AbstractContextManager[bool]:
        """Whether this process may deliver `key` now (no other process is sending it)."""
        ...

    def claim_delivery(self, key: str, status: DeliveryStatus, attempts: int) -> bool:
        """Mark the notification `sending` (one more attempt) if it is still as it was read;
        False when another process claimed it first."""
        ...

    def update_delivery(
        self,
        key: str,
        status: DeliveryStatus,
        attempts: int,
        parts_sent: int,
        error: str,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Record a delivery attempt's outcome (and when to try again)."""
        ...

    def rewrite_pending(
        self, key: str, series: SeriesKey, title: str, text: str, html: str
    ) -> None:
        """Replace what a still pending notification says (and is about)."""
        ...

    def notification_rows(self) -> list[dict[str, Any]]:
        """Every notification without its image, oldest first."""
        ...
