"""The metric store in SQL, shared by the DuckDB and PostgreSQL backends.

Every statement is written once, in the SQL both engines speak (`?` markers, ON CONFLICT
upserts, `= ANY(?)` for lists); a backend supplies connections, bulk staging of frames and the
few type names that differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import StoreError
from vigil.model import (
    Alert,
    AnalysisResult,
    Bucket,
    DeliveryStatus,
    Feedback,
    FeedbackLabel,
    Incident,
    Notification,
    PipelineState,
    RunRecord,
    Segment,
    SeriesKey,
    Silence,
    Status,
)
from vigil.secrets import redact
from vigil.store.actions import ChatActionsMixin
from vigil.store.base import AlertRow, Cells, cells_by_id, cells_from_frame
from vigil.store.migrations import MIGRATIONS, Migration
from vigil.store.views import rollup_views
from vigil.timeutil import Granularity, as_utc, to_naive_utc

Clock = Callable[[], datetime]

_RESULT_COLUMNS = (
    "analyzer, analyzer_type, metric, segment, granularity, bucket, value, status,"
    " expected_lower, expected_upper, deviation, baselines, reason, config_hash, is_partial"
)
_RESULT_KEY = ("analyzer", "metric", "segment", "granularity", "bucket")
_RESULT_UPDATED = [
    c.strip() for c in _RESULT_COLUMNS.split(",") if c.strip() not in _RESULT_KEY
] + ["created_at"]


# Statements after which every earlier read still holds.
_UNCHANGING = ("SELECT", "BEGIN", "COMMIT")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SQLStore(ChatActionsMixin):
    """Values, results, alerts, incidents, silences and the outbox in SQL tables."""

    # Driver exceptions that mean a statement failed.
    errors: tuple[type[BaseException], ...] = ()
    # The schema steps this backend applies, in order, and the table that records them.
    migrations: tuple[Migration, ...] = MIGRATIONS
    migrations_table = (
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
    )

    # A backend whose open connection shuts out every other writer (one process holds a
    # DuckDB file) answers a repeated read from memory until the next write or the session's
    # end: a replay's quiet cycles ask the same questions (open incidents, the pipeline's
    # state, the outbox) and change nothing in between.
    exclusive_sessions = False

    def __init__(self, tz: str = "UTC", clock: Clock = _utc_now) -> None:
        self.tz = tz
        self.clock = clock
        self._conn: Any = None
        self._depth = 0
        self._in_transaction = False
        self._reads: dict[tuple[str, str], list[tuple[Any, ...]]] = {}

    # --- backend hooks -------------------------------------------------------------------

    def _open(self) -> Any:
        """A new connection, in autocommit mode, session zone UTC."""
        raise NotImplementedError

    def _execute(self, conn: Any, sql: str, params: list[Any]) -> Any:
        """Run one statement; return something with fetchall() and description."""
        raise NotImplementedError

    def _insert_frame(self, frame: pd.DataFrame, sql: str | tuple[str, ...], like: str) -> None:
        """Run the statement(s) `sql`, which read the frame as the table `incoming` (columns
        typed as in the table `like`)."""
        raise NotImplementedError

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """Keep other processes from migrating at the same time."""
        yield

    def ddl(self, statement: str) -> str:
        """A migration statement in the backend's type names."""
        return statement

    # --- connections ---------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Any]:
        """Hold one connection for a batch of calls; nested sessions share it."""
        if self._conn is None:
            self._conn = self._open()
        self._depth += 1
        try:
            yield self._conn
        finally:
            self._depth -= 1
            if self._depth == 0 and self._conn is not None:
                self._reads.clear()
                self._conn.close()
                self._conn = None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together or not at all; nested blocks join the outer one."""
        with self.session():
            if self._in_transaction:
                yield
                return
            self._run("BEGIN TRANSACTION")
            self._in_transaction = True
            try:
                yield
            except BaseException:
                self._run("ROLLBACK")
                raise
            else:
                self._run("COMMIT")
            finally:
                self._in_transaction = False

    def _run(self, sql: str, params: Iterable[Any] = ()) -> Any:
        if self._reads and not sql.startswith(_UNCHANGING):
            self._reads.clear()  # a write (or a rollback) may change any answer
        with self.session() as conn:
            try:
                return self._execute(conn, sql, list(params))
            except self.errors as e:
                raise StoreError(f"metric store query failed: {e}") from e

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self.session():
            if not (self.exclusive_sessions and sql.startswith("SELECT")):
                return [tuple(row) for row in self._run(sql, params).fetchall()]
            values = list(params)
            key = (sql, repr(values))
            rows = self._reads.get(key)
            if rows is None:
                rows = [tuple(row) for row in self._run(sql, values).fetchall()]
                self._reads[key] = rows
            return list(rows)

    def _frame(self, sql: str, params: Iterable[Any] = ()) -> pd.DataFrame:
        with self.session():
            cursor = self._run(sql, params)
            columns = [d[0] for d in cursor.description]
            return pd.DataFrame.from_records(cursor.fetchall(), columns=columns)

    def _arrays(self, sql: str, params: Iterable[Any] = ()) -> dict[str, np.ndarray]:
        """A result as one numpy array per column (a backend may hand them over directly)."""
        with self.session():
            cursor = self._run(sql, params)
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
            return {
                c: np.array([row[i] for row in rows], dtype=object) for i, c in enumerate(columns)
            }

    # --- schema --------------------------------------------------------------------------

    def migrate(self, migrations: tuple[Migration, ...] | None = None) -> list[str]:
        """Apply every migration newer than the stored version, in order, each at once."""
        migrations = migrations or self.migrations
        applied = []
        with self.session(), self._migration_lock():
            self._run(self.migrations_table)
            current = self.schema_version()
            newest = migrations[-1].version if migrations else 0
            if current > newest:
                raise StoreError(
                    f"the metric store's schema is version {current}, newer than this Vigil"
                    f" knows ({newest}); expected a Vigil release at least as new as the one"
                    " that last migrated it"
                )
            for migration in self.pending(migrations, current):
                try:
                    self._apply_migration(migration)
                except StoreError as e:
                    raise StoreError(f"migration {migration.version} failed: {e}") from e
                applied.append(f"{migration.version}: {migration.name}")
            self._after_migrate()
        return applied

    def _apply_migration(self, migration: Migration) -> None:
        """Run one migration's statements and record it, in one transaction."""
        with self.transaction():
            for statement in migration.statements:
                self._run(self.ddl(statement))
            self._run(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                [migration.version, migration.name, to_naive_utc(self.clock())],
            )

    def _after_migrate(self) -> None:
        """Work a backend does once its schema is current: the hourly and daily views."""
        for statement in rollup_views("sql", self.tz):
            self._run(statement)

    @staticmethod
    def pending(migrations: tuple[Migration, ...], current: int) -> list[Migration]:
        """Migrations newer than `current`, in order."""
        return [m for m in migrations if m.version > current]

    def schema_version(self) -> int:
        """The newest applied migration (0 for an empty store)."""
        try:
            rows = self._rows("SELECT coalesce(max(version), 0) FROM schema_migrations")
        except StoreError:
            return 0  # not created yet
        return int(rows[0][0])

    def prune(
        self, values_before: datetime | None, results_before: datetime | None
    ) -> dict[str, int]:
        """Delete rows older than the cutoffs (by bucket, or start for runs); return counts.

        Values and distributions go by `values_before`. Results, alerts, resolved incidents,
        finished notifications, runs and ended silences go by `results_before`. Named
        references are kept: they are snapshots someone asked for.
        """
        counts: dict[str, int] = {}
        with self.transaction():
            for table, condition, cutoff in prune_targets(values_before, results_before):
                if cutoff is not None:
                    counts[table] = self._delete(table, condition, [to_naive_utc(cutoff)])
        return counts

    def _delete(self, table: str, condition: str, params: list[Any]) -> int:
        """Delete the rows that match; return how many."""
        return len(self._rows(f"DELETE FROM {table} WHERE {condition} RETURNING 1", params))

    # Whether upserts lock rows in key order: where several processes write at once
    # (PostgreSQL), rows taken in one order make concurrent writers wait, never deadlock.
    key_ordered_writes = False

    def _in_key_order(self, columns: str) -> str:
        return f" ORDER BY {columns}" if self.key_ordered_writes else ""

    # --- values --------------------------------------------------------------------------

    def upsert_values(self, frame: pd.DataFrame, granularity: Granularity) -> int:
        """Insert or replace values; late or corrected data overwrites the bucket."""
        if frame.empty:
            return 0
        incoming = frame[["metric", "segment", "bucket", "value"]].copy()
        incoming["granularity"] = granularity.seconds
        incoming["updated_at"] = to_naive_utc(self.clock())
        with self.session():
            self._insert_frame(
                incoming,
                like="metric_values",
                sql=(
                    "INSERT INTO series (metric, segment)"
                    " SELECT DISTINCT metric, segment FROM incoming"
                    + self._in_key_order("metric, segment")
                    + " ON CONFLICT DO NOTHING",
                    "INSERT INTO metric_values"
                    " (metric, segment, granularity, bucket, value, updated_at, series_id)"
                    " SELECT metric, segment, granularity, bucket, value, updated_at, s.id"
                    " FROM incoming JOIN series s USING (metric, segment)"
                    + self._in_key_order("metric, segment, granularity, bucket")
                    + " ON CONFLICT (metric, segment, granularity, bucket)"
                    " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
                    " WHERE metric_values.value IS DISTINCT FROM excluded.value",
                ),
            )
            if "payload" in frame.columns:
                self._upsert_payloads(frame, granularity)
        return len(incoming)

    def _upsert_payloads(self, frame: pd.DataFrame, granularity: Granularity) -> None:
        chosen = frame[frame["payload"].map(lambda p: isinstance(p, dict))]
        if chosen.empty:
            return
        rows = chosen[["metric", "segment", "bucket"]].copy()
        rows["granularity"] = granularity.seconds
        rows["payload"] = chosen["payload"].map(lambda p: json.dumps(p, sort_keys=True))
        self._insert_frame(
            rows,
            like="metric_payloads",
            sql="INSERT INTO metric_payloads"
            " SELECT metric, segment, granularity, bucket, payload FROM incoming"
            + self._in_key_order("metric, segment, granularity, bucket")
            + " ON CONFLICT (metric, segment, granularity, bucket)"
            " DO UPDATE SET payload = excluded.payload",
        )

    def load_payloads(
        self, metrics: list[str], granularity: Granularity, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Distributions with buckets in [start, end): metric, segment, bucket, payload (dict)."""
        frame = self._frame(
            "SELECT metric, segment, bucket, payload FROM metric_payloads"
            " WHERE granularity = ? AND bucket >= ? AND bucket < ? AND metric = ANY(?)"
            " ORDER BY metric, segment, bucket",
            [granularity.seconds, to_naive_utc(start), to_naive_utc(end), metrics],
        )
        frame["payload"] = frame["payload"].map(json.loads)
        return frame

    def save_reference(
        self,
        name: str,
        metrics: list[str],
        granularity: Granularity,
        start: datetime,
        end: datetime,
    ) -> int:
        """Snapshot the stored values and distributions of [start, end) as reference `name`."""
        params = [granularity.seconds, to_naive_utc(start), to_naive_utc(end), metrics]
        with self.transaction():
            self._run("DELETE FROM reference_values WHERE name = ?", [name])
            self._run(
                "INSERT INTO reference_values (name, metric, segment, granularity, bucket,"
                " value, payload, created_at)"
                " SELECT ?, v.metric, v.segment, v.granularity, v.bucket, v.value, p.payload, ?"
                " FROM metric_values v LEFT JOIN metric_payloads p USING"
                " (metric, segment, granularity, bucket)"
                " WHERE v.granularity = ? AND v.bucket >= ? AND v.bucket < ?"
                " AND v.metric = ANY(?)",
                [name, to_naive_utc(self.clock()), *params],
            )
            found = self._rows("SELECT count(*) FROM reference_values WHERE name = ?", [name])
        return int(found[0][0])

    def load_reference(self, name: str, metrics: list[str]) -> pd.DataFrame:
        """A reference's rows for these metrics: metric, segment, bucket, value, payload."""
        frame = self._frame(
            "SELECT metric, segment, bucket, value, payload FROM reference_values"
            " WHERE name = ? AND metric = ANY(?) ORDER BY metric, segment, bucket",
            [name, metrics],
        )
        frame["payload"] = frame["payload"].map(
            lambda p: json.loads(p) if isinstance(p, str) else None
        )
        return frame

    def list_references(self) -> list[dict[str, Any]]:
        """Each reference: name, metrics, series, rows, first and last bucket, created_at."""
        rows = self._rows(
            "SELECT name, count(DISTINCT metric), count(DISTINCT metric || '|' || segment),"
            " count(*),"
            " min(bucket), max(bucket), max(created_at) FROM reference_values"
            " GROUP BY name ORDER BY name"
        )
        keys = ("name", "metrics", "series", "rows", "first", "last", "created_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def delete_reference(self, name: str) -> bool:
        """Remove a reference; False if there was none."""
        with self.transaction():
            found = self._rows("SELECT count(*) FROM reference_values WHERE name = ?", [name])
            self._run("DELETE FROM reference_values WHERE name = ?", [name])
        return bool(found[0][0])

    def load_values(
        self, metrics: list[str], granularity: Granularity, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Values with buckets in [start, end), naive UTC buckets."""
        return self._frame(
            "SELECT metric, segment, bucket, value FROM metric_values"
            " WHERE granularity = ? AND bucket >= ? AND bucket < ? AND metric = ANY(?)"
            " ORDER BY metric, segment, bucket",
            [granularity.seconds, to_naive_utc(start), to_naive_utc(end), metrics],
        )

    def load_cells(
        self,
        metrics: list[str],
        granularity: Granularity,
        start: datetime,
        end: datetime,
        *,
        windows: list[tuple[datetime, datetime]] | None = None,
    ) -> dict[str, Cells]:
        """Each metric's values in [start, end): numbers only (series id, bucket, value), with
        the segment keys read once from the series table. With `windows`, only the values in
        them are read, and the series present in [start, end) come from one distinct scan."""
        where = "granularity = ? AND bucket >= ? AND bucket < ? AND metric = ANY(?)"
        params: list[Any] = [granularity.seconds, to_naive_utc(start), to_naive_utc(end), metrics]
        if windows:
            ranges = " OR ".join(["(bucket >= ? AND bucket < ?)"] * len(windows))
            chosen = [to_naive_utc(t) for window in windows for t in window]
            cols = self._arrays(
                f"SELECT series_id, bucket, value FROM metric_values WHERE {where} AND ({ranges})",
                [*params, *chosen],
            )
            present = self._arrays(
                f"SELECT DISTINCT series_id FROM metric_values WHERE {where}", params
            )["series_id"]
        else:
            cols = self._arrays(
                f"SELECT series_id, bucket, value FROM metric_values WHERE {where}", params
            )
            present = None
        ids = cols["series_id"]
        masked = [a for a in (ids, present) if isinstance(a, np.ma.MaskedArray) and a.mask.any()]
        if masked:
            # Rows written before series ids existed and not migrated: read them the slow way.
            return cells_from_frame(self.load_values(metrics, granularity, start, end), metrics)
        keys = self._rows("SELECT id, metric, segment FROM series WHERE metric = ANY(?)", [metrics])
        return cells_by_id(
            keys,
            np.asarray(ids, dtype=np.int64),
            metrics,
            np.asarray(cols["bucket"], dtype="datetime64[us]"),
            _floats(cols["value"]),
            None if present is None else np.asarray(present, dtype=np.int64),
        )

    def load_series(
        self, metric: str, segment: str, granularity: Granularity, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """One series' values with buckets in [start, end): bucket (naive UTC), value."""
        return self._frame(
            "SELECT bucket, value FROM metric_values WHERE metric = ? AND segment = ?"
            " AND granularity = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
            [metric, segment, granularity.seconds, to_naive_utc(start), to_naive_utc(end)],
        )

    def load_series_results(
        self, metric: str, segment: str, granularity: Granularity, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """One series' results in [start, end) as a frame: analyzer, bucket (naive UTC),
        status, value, expected_lower, expected_upper, deviation, reason."""
        return self._frame(
            "SELECT analyzer, bucket, status, value, expected_lower, expected_upper, deviation,"
            " reason FROM analysis_results WHERE metric = ? AND segment = ?"
            " AND granularity = ? AND bucket >= ? AND bucket < ? ORDER BY bucket, analyzer",
            [metric, segment, granularity.seconds, to_naive_utc(start), to_naive_utc(end)],
        )

    def list_series(self) -> list[dict[str, Any]]:
        """Every stored series: metric, segment, granularity, points, first and last bucket."""
        rows = self._rows(
            "SELECT metric, segment, granularity, count(*), min(bucket), max(bucket)"
            " FROM metric_values GROUP BY metric, segment, granularity"
            " ORDER BY metric, segment, granularity"
        )
        keys = ("metric", "segment", "granularity", "points", "first", "last")
        return [
            {**dict(zip(keys, row, strict=True)), "first": as_utc(row[4]), "last": as_utc(row[5])}
            for row in rows
        ]

    def known_segments(
        self, metrics: list[str], granularity: Granularity, since: datetime
    ) -> dict[str, set[str]]:
        """Segments with a non-zero value since `since` (zero-filled ones fade out)."""
        rows = self._rows(
            "SELECT DISTINCT metric, segment FROM metric_values WHERE granularity = ?"
            " AND bucket >= ? AND metric = ANY(?) AND coalesce(value, 0) <> 0",
            [granularity.seconds, to_naive_utc(since), metrics],
        )
        out: dict[str, set[str]] = {m: set() for m in metrics}
        for metric, segment in rows:
            out[metric].add(segment)
        return out

    def ingested_until(self, dataset: str) -> datetime | None:
        """End of the newest ingested window of the dataset."""
        rows = self._rows("SELECT ingested_until FROM ingest_state WHERE dataset = ?", [dataset])
        return as_utc(rows[0][0]) if rows else None

    def set_ingested_until(self, dataset: str, until: datetime) -> None:
        """Move the dataset's watermark forward (never back)."""
        self._run(
            "INSERT INTO ingest_state VALUES (?, ?, ?) ON CONFLICT (dataset) DO UPDATE SET"
            " ingested_until = greatest(ingest_state.ingested_until, excluded.ingested_until),"
            " updated_at = excluded.updated_at",
            [dataset, to_naive_utc(until), to_naive_utc(self.clock())],
        )

    # --- analysis results ----------------------------------------------------------------

    def analyzed_keys(
        self, metrics: list[str], granularity: Granularity, bucket: datetime
    ) -> dict[tuple[str, str, str], str]:
        """(analyzer, metric, segment) → config hash of final (not partial) results at a bucket."""
        rows = self._rows(
            "SELECT analyzer, metric, segment, config_hash FROM analysis_results"
            " WHERE granularity = ? AND bucket = ? AND metric = ANY(?) AND NOT is_partial",
            [granularity.seconds, to_naive_utc(bucket), metrics],
        )
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    def analyzed_buckets(
        self, metrics: list[str], granularity: Granularity, start: datetime, end: datetime
    ) -> set[datetime]:
        """Buckets in [start, end) with at least one final result for these metrics."""
        rows = self._rows(
            "SELECT DISTINCT bucket FROM analysis_results WHERE granularity = ?"
            " AND bucket >= ? AND bucket < ? AND metric = ANY(?) AND NOT is_partial",
            [granularity.seconds, to_naive_utc(start), to_naive_utc(end), metrics],
        )
        return {as_utc(r[0]) for r in rows}

    def last_analyzed(self, metrics: list[str], granularity: Granularity) -> datetime | None:
        """Newest bucket with any result for these metrics."""
        rows = self._rows(
            "SELECT max(bucket) FROM analysis_results"
            " WHERE granularity = ? AND metric = ANY(?) AND NOT is_partial",
            [granularity.seconds, metrics],
        )
        return as_utc(rows[0][0]) if rows and rows[0][0] is not None else None

    def save_results(self, results: Iterable[AnalysisResult]) -> int:
        """Insert results; a result for the same analyzer, series and bucket is replaced (the
        analysis stage only recomputes partial buckets, changed configs, or on request)."""
        rows = [_result_row(r) for r in results]
        if not rows:
            return 0
        frame = pd.DataFrame(rows, columns=[c.strip() for c in _RESULT_COLUMNS.split(",")])
        frame["created_at"] = to_naive_utc(self.clock())
        self._insert_frame(
            frame,
            like="analysis_results",
            sql=f"INSERT INTO analysis_results ({_RESULT_COLUMNS}, created_at)"
            f" SELECT {_RESULT_COLUMNS}, created_at FROM incoming"
            + self._in_key_order("analyzer, metric, segment, granularity, bucket")
            + " ON CONFLICT (analyzer, metric, segment, granularity, bucket) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in _RESULT_UPDATED),
        )
        return len(rows)

    def list_results(
        self,
        *,
        metric: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        anomalies_only: bool = False,
        segment: str | None = None,
    ) -> list[AnalysisResult]:
        """Results in bucket order, filtered (`segment` is the canonical key)."""
        where, params = _time_filter("bucket", since, until)
        if metric is not None:
            where.append("metric = ?")
            params.append(metric)
        if segment is not None:
            where.append("segment = ?")
            params.append(segment)
        if anomalies_only:
            where.append("status = 'anomaly'")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(
            f"SELECT {_RESULT_COLUMNS} FROM analysis_results {clause}"
            " ORDER BY bucket, metric, segment, analyzer",
            params,
        )
        return [_result_from_row(row, self.tz) for row in rows]

    # --- alerts --------------------------------------------------------------------------

    def save_alerts(self, alerts: Iterable[Alert]) -> int:
        """Insert monitor decisions; existing ones are kept."""
        count = 0
        with self.session():
            for alert in alerts:
                r = alert.result
                self._run(
                    "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [
                        alert.monitor,
                        r.analyzer,
                        r.series.metric,
                        r.series.segment.key,
                        r.bucket.granularity.seconds,
                        to_naive_utc(r.bucket.start),
                        alert.severity.value,
                        alert.status.value,
                        to_naive_utc(alert.created_at),
                    ],
                )
                count += 1
        return count

    def last_notified(
        self, monitor: str, analyzer: str, series: SeriesKey, before: datetime
    ) -> datetime | None:
        """Bucket of the newest sent (or muted) alert for this monitor, analyzer and series."""
        rows = self._rows(
            "SELECT max(bucket) FROM alerts WHERE monitor = ? AND analyzer = ? AND metric = ?"
            " AND segment = ? AND bucket < ? AND status IN ('notify', 'muted')",
            [monitor, analyzer, series.metric, series.segment.key, to_naive_utc(before)],
        )
        return as_utc(rows[0][0]) if rows and rows[0][0] is not None else None

    def recent_messages(
        self, channel: str, since: datetime, before: datetime
    ) -> list[tuple[str, str, str, str]]:
        """(monitor, metric, segment, severity) of alert and incident messages to `channel` in
        [since, before)."""
        rows = self._rows(
            "SELECT DISTINCT monitor, metric, segment, severity FROM notifications"
            " WHERE channel = ? AND kind IN ('alert', 'incident') AND bucket >= ? AND bucket < ?",
            [channel, to_naive_utc(since), to_naive_utc(before)],
        )
        return [(str(m), str(x), str(g), str(s or "")) for m, x, g, s in rows]

    def list_alerts(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[AlertRow]:
        """Alerts with their analysis results, oldest first."""
        where, params = _time_filter("a.bucket", since, until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        columns = ", ".join(f"r.{c.strip()}" for c in _RESULT_COLUMNS.split(","))
        rows = self._rows(
            f"SELECT a.monitor, a.severity, a.status, a.created_at, {columns}"
            " FROM alerts a JOIN analysis_results r USING"
            " (analyzer, metric, segment, granularity, bucket)"
            f" {clause} ORDER BY a.bucket, a.metric, a.segment, a.monitor, a.analyzer",
            params,
        )
        deliveries = self._deliveries(where, params)
        out = []
        for row in rows:
            result = _result_from_row(row[4:], self.tz)
            key = (
                row[0],
                result.series.metric,
                result.series.segment.key,
                to_naive_utc(result.bucket.start),
            )
            out.append(
                AlertRow(
                    row[0], row[1], row[2], as_utc(row[3]), result, tuple(deliveries.get(key, ()))
                )
            )
        return out

    def _deliveries(
        self, where: list[str], params: list[Any]
    ) -> dict[tuple[str, str, str, datetime], list[tuple[str, str, str]]]:
        """Per (monitor, metric, segment, bucket): each channel's delivery status and error."""
        clause = (
            ("WHERE " + " AND ".join(w.replace("a.bucket", "bucket") for w in where))
            if where
            else ""
        )
        rows = self._rows(
            "SELECT monitor, metric, segment, bucket, channel, status, last_error"
            f" FROM notifications {clause}{' AND' if clause else ' WHERE'}"
            " status <> 'merged' ORDER BY channel",
            params,
        )
        out: dict[tuple[str, str, str, datetime], list[tuple[str, str, str]]] = {}
        for monitor, metric, segment, bucket, channel, status, error in rows:
            out.setdefault((monitor, metric, segment, bucket), []).append((channel, status, error))
        return out

    def last_change(
        self, metrics: list[str], granularity: Granularity, bucket: datetime
    ) -> datetime | None:
        """When any value of these metrics at the bucket last changed."""
        rows = self._rows(
            "SELECT max(updated_at) FROM metric_values"
            " WHERE granularity = ? AND bucket = ? AND metric = ANY(?)",
            [granularity.seconds, to_naive_utc(bucket), metrics],
        )
        return as_utc(rows[0][0]) if rows and rows[0][0] is not None else None

    # --- run log, pipeline state, leader lock ---------------------------------------------

    def record_runs(self, records: Iterable[RunRecord]) -> None:
        """Append stage records to the run log (one statement for the lot)."""
        rows = [
            [
                r.run_id,
                r.kind,
                r.dataset,
                r.stage,
                to_naive_utc(r.started_at),
                to_naive_utc(r.finished_at),
                r.status,
                r.rows_in,
                r.rows_out,
                redact(r.error),
            ]
            for r in records
        ]
        for chunk in range(0, len(rows), 100):
            part = rows[chunk : chunk + 100]
            self._run(
                "INSERT INTO runs (run_id, kind, dataset, stage, started_at, finished_at,"
                " status, rows_in, rows_out, error) VALUES "
                + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(part)),
                [v for row in part for v in row],
            )

    def list_runs(self, *, since: datetime | None = None, limit: int = 200) -> list[RunRecord]:
        """The newest run-log records (oldest first among them)."""
        where, params = _time_filter("started_at", since, None)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(
            "SELECT run_id, kind, dataset, stage, started_at, finished_at, status, rows_in,"
            f" rows_out, error FROM runs {clause} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [
            RunRecord(
                r[0], r[1], r[2], r[3], as_utc(r[4]), as_utc(r[5]), r[6], int(r[7]), int(r[8]), r[9]
            )
            for r in reversed(rows)
        ]

    def pipeline_state(self, dataset: str) -> PipelineState:
        """The dataset's failure streak."""
        rows = self._rows(
            "SELECT consecutive_failures, failing_since, alerted, last_error, silent_since,"
            " silence_alerted FROM pipeline_state WHERE dataset = ?",
            [dataset],
        )
        if not rows:
            return PipelineState(dataset)
        failures, since, alerted, error, silent, silence_alerted = rows[0]
        return PipelineState(
            dataset,
            int(failures),
            as_utc(since) if since else None,
            bool(alerted),
            error,
            as_utc(silent) if silent else None,
            bool(silence_alerted),
        )

    def save_pipeline_state(self, state: PipelineState) -> None:
        """Replace the dataset's failure streak."""
        self._run(
            "INSERT INTO pipeline_state (dataset, consecutive_failures, failing_since,"
            " alerted, last_error, updated_at, silent_since, silence_alerted)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dataset) DO UPDATE SET"
            " consecutive_failures = excluded.consecutive_failures,"
            " failing_since = excluded.failing_since, alerted = excluded.alerted,"
            " last_error = excluded.last_error, updated_at = excluded.updated_at,"
            " silent_since = excluded.silent_since, silence_alerted = excluded.silence_alerted",
            [
                state.dataset,
                state.consecutive_failures,
                to_naive_utc(state.failing_since) if state.failing_since else None,
                state.alerted,
                redact(state.last_error) if state.last_error else state.last_error,
                to_naive_utc(self.clock()),
                to_naive_utc(state.silent_since) if state.silent_since else None,
                state.silence_alerted,
            ],
        )

    def acquire_lock(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the named lock unless another owner renewed it within `ttl`.

        One conditional upsert, so two processes racing for the lock cannot both win.
        """
        rows = self._rows(
            "INSERT INTO leader_lock VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
            " owner = excluded.owner, heartbeat_at = excluded.heartbeat_at,"
            " acquired_at = CASE WHEN leader_lock.owner = excluded.owner"
            " THEN leader_lock.acquired_at ELSE excluded.acquired_at END"
            " WHERE leader_lock.owner = excluded.owner OR leader_lock.heartbeat_at <= ?"
            " RETURNING owner",
            [name, owner, to_naive_utc(now), to_naive_utc(now), to_naive_utc(now - ttl)],
        )
        return bool(rows)

    def release_lock(self, name: str, owner: str) -> None:
        """Give the lock up (only if held by `owner`)."""
        self._run("DELETE FROM leader_lock WHERE name = ? AND owner = ?", [name, owner])

    # --- feedback -------------------------------------------------------------------------

    def save_feedback(self, feedback: Feedback) -> None:
        """Record a verdict on an alert; a later one for the same alert replaces it."""
        self._run(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (monitor, analyzer, metric, segment, granularity, bucket) DO UPDATE"
            " SET label = excluded.label, note = excluded.note, author = excluded.author,"
            " created_at = excluded.created_at",
            feedback_values(feedback, self.clock()),
        )

    def list_feedback(
        self, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[Feedback]:
        """Verdicts on alerts with buckets in [since, until), in bucket order."""
        where, params = _time_filter("bucket", since, until)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._rows(
            "SELECT monitor, analyzer, metric, segment, granularity, bucket, label, note, author,"
            f" created_at FROM feedback {clause} ORDER BY bucket, metric, segment, monitor",
            params,
        )
        return [
            Feedback(
                monitor=r[0],
                analyzer=r[1],
                series=SeriesKey(r[2], Segment.from_key(r[3])),
                bucket=Bucket(as_utc(r[5]), Granularity(int(r[4]), self.tz)),
                label=FeedbackLabel(r[6]),
                note=r[7],
                author=r[8],
                created_at=as_utc(r[9]),
            )
            for r in rows
        ]

    # --- incidents ------------------------------------------------------------------------

    def open_incident(self, monitor: str, series: SeriesKey) -> Incident | None:
        """The monitor's open incident on the series, if any."""
        rows = self._rows(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE monitor = ? AND metric = ?"
            " AND segment = ? AND status = 'open' ORDER BY id DESC LIMIT 1",
            [monitor, series.metric, series.segment.key],
        )
        return _incident_from_row(rows[0], self.tz) if rows else None

    def save_incident(self, incident: Incident) -> int:
        """Insert a new incident (id 0) or update one; return its id."""
        values = incident_values(incident)
        if incident.id:
            self._run(
                "UPDATE incidents SET monitor = ?, metric = ?, segment = ?, granularity = ?,"
                " opened_bucket = ?, last_anomaly_bucket = ?, notified_deviation = ?,"
                " normal_streak = ?, status = ?, resolved_bucket = ? WHERE id = ?",
                [*values, incident.id],
            )
            return incident.id
        rows = self._rows(
            f"INSERT INTO incidents ({_INCIDENT_COLUMNS.removeprefix('id, ')})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            values,
        )
        return int(rows[0][0])

    def list_incidents(self, status: str | None = None) -> list[Incident]:
        """Incidents, newest first, optionally only `open` or `resolved` ones."""
        where = "WHERE status = ?" if status else ""
        rows = self._rows(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents {where} ORDER BY id DESC",
            [status] if status else [],
        )
        return [_incident_from_row(r, self.tz) for r in rows]

    # --- silences -------------------------------------------------------------------------

    def add_silence(self, silence: Silence) -> int:
        """Store a silence; return its id."""
        rows = self._rows(
            "INSERT INTO silences (metric, segment, monitor, starts_at, ends_at, reason,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [
                silence.metric,
                json.dumps(silence.segment, sort_keys=True),
                silence.monitor,
                to_naive_utc(silence.starts_at),
                to_naive_utc(silence.ends_at),
                silence.reason,
                to_naive_utc(self.clock()),
            ],
        )
        return int(rows[0][0])

    def list_silences(self, active_at: datetime | None = None) -> list[Silence]:
        """Every silence, or those active at `active_at`, by id."""
        where = ""
        params: list[Any] = []
        if active_at is not None:
            at = to_naive_utc(active_at)
            where = (
                "WHERE starts_at <= ? AND ends_at > ? AND (expired_at IS NULL OR expired_at > ?)"
            )
            params = [at, at, at]
        rows = self._rows(
            "SELECT id, metric, segment, monitor, starts_at, ends_at, reason, expired_at"
            f" FROM silences {where} ORDER BY id",
            params,
        )
        return [
            Silence(
                r[1],
                json.loads(r[2]),
                as_utc(r[4]),
                as_utc(r[5]),
                r[6],
                r[3],
                int(r[0]),
                as_utc(r[7]) if r[7] else None,
            )
            for r in rows
        ]

    def expire_silence(self, silence_id: int, at: datetime) -> bool:
        """End a silence now; False if there is no such unexpired silence."""
        rows = self._rows(
            "UPDATE silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL RETURNING id",
            [to_naive_utc(at), silence_id],
        )
        return bool(rows)

    # --- outbox --------------------------------------------------------------------------

    def enqueue(self, notifications: Iterable[Notification]) -> int:
        """Persist notifications before any is sent; an existing key is not added again."""
        count = 0
        now = to_naive_utc(self.clock())
        with self.session():
            for n in notifications:
                self._run(
                    "INSERT INTO notifications (key, monitor, channel, metric, segment,"
                    " granularity, bucket, title, text, html, image, status, attempts,"
                    " parts_sent, last_error, created_at, updated_at, recipients, severity, kind,"
                    " members, remote_ref, reply_to)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    [
                        n.key,
                        n.monitor,
                        n.channel,
                        n.series.metric,
                        n.series.segment.key,
                        n.bucket.granularity.seconds,
                        to_naive_utc(n.bucket.start),
                        n.title,
                        n.text,
                        n.html,
                        n.image,
                        n.status.value,
                        n.attempts,
                        n.parts_sent,
                        n.last_error,
                        now,
                        now,
                        n.recipients,
                        n.severity,
                        n.kind,
                        members_json(n.members),
                        n.remote_ref,
                        n.reply_to,
                    ],
                )
                count += 1
        return count

    def outbox(
        self, statuses: tuple[DeliveryStatus, ...], due: datetime | None = None
    ) -> Iterator[Notification]:
        """Notifications in the given states (and due for an attempt at `due`), oldest first."""
        due_clause = " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)" if due else ""
        rows = self._rows(
            "SELECT key, monitor, channel, metric, segment, granularity, bucket, title, text,"
            f" html, image, status, attempts, parts_sent, last_error, {_TAIL}"
            f" FROM notifications WHERE status = ANY(?){due_clause}"
            " ORDER BY bucket, created_at, key",
            [[s.value for s in statuses], *([to_naive_utc(due)] if due else [])],
        )
        for row in rows:
            yield self._notification(row)

    def told(self, since: datetime) -> list[Notification]:
        """Sent messages about series (alerts, incidents) for buckets from `since`, with their
        members and the channel's message id: what a resolution edits and answers."""
        rows = self._rows(
            "SELECT key, monitor, channel, metric, segment, granularity, bucket, title, text,"
            f" html, NULL, status, attempts, parts_sent, last_error, {_TAIL}"
            " FROM notifications WHERE status = 'sent' AND bucket >= ? AND members <> ''"
            " AND kind IN ('alert', 'incident')"
            " ORDER BY bucket, key",
            [to_naive_utc(since)],
        )
        return [self._notification(row) for row in rows]

    def pending_messages(self, channel: str, bucket: datetime) -> list[Notification]:
        """Alert and incident messages to `channel` about `bucket` not yet sent (no image):
        what a later dataset of the same cycle joins."""
        rows = self._rows(
            "SELECT key, monitor, channel, metric, segment, granularity, bucket, title, text,"
            f" html, NULL, status, attempts, parts_sent, last_error, {_TAIL}"
            " FROM notifications WHERE status = 'pending' AND channel = ? AND bucket = ?"
            " AND kind IN ('alert', 'incident') AND members <> '' ORDER BY created_at, key",
            [channel, to_naive_utc(bucket)],
        )
        return [self._notification(row) for row in rows]

    def supersede(self, keys: list[str]) -> None:
        """Mark still pending messages `merged`: a later message of the same incident says
        all they said, and they are never sent."""
        for key in keys:
            self._run(
                "UPDATE notifications SET status = 'merged' WHERE key = ? AND status = 'pending'",
                [key],
            )

    def messages_by_ref(self, channel: str, remote_ref: str) -> list[Notification]:
        """Every notification of the channel with that message id."""
        rows = self._rows(
            "SELECT key, monitor, channel, metric, segment, granularity, bucket, title, text,"
            f" html, NULL, status, attempts, parts_sent, last_error, {_TAIL}"
            " FROM notifications WHERE channel = ? AND remote_ref = ? ORDER BY created_at, key",
            [channel, remote_ref],
        )
        return [self._notification(row) for row in rows]

    def set_remote_ref(self, key: str, ref: str) -> None:
        """Remember the channel's id of a sent message (to edit and answer it later)."""
        self._run("UPDATE notifications SET remote_ref = ? WHERE key = ?", [ref, key])

    def _notification(self, row: tuple[Any, ...]) -> Notification:
        granularity = Granularity(int(row[5]), self.tz)
        return Notification(
            key=row[0],
            monitor=row[1],
            channel=row[2],
            series=SeriesKey(row[3], Segment.from_key(row[4])),
            bucket=Bucket(as_utc(row[6]), granularity),
            title=row[7],
            text=row[8],
            html=row[9],
            image=bytes(row[10]) if row[10] is not None else None,
            status=DeliveryStatus(row[11]),
            attempts=int(row[12]),
            parts_sent=int(row[13]),
            last_error=row[14],
            recipients=row[15],
            severity=row[16],
            kind=row[17],
            members=members_from_json(row[18] or ""),
            remote_ref=row[19] or "",
            reply_to=row[20] or "",
        )

    @contextmanager
    def delivery_lock(self, key: str) -> Iterator[bool]:
        """Whether this process may deliver `key` now (no other is sending it). An embedded
        store belongs to one process at a time: always."""
        yield True

    def claim_delivery(self, key: str, status: DeliveryStatus, attempts: int) -> bool:
        """Start an attempt: mark the notification `sending` (one more attempt) if it is still
        in the state it was read in. Of several processes that read it, one wins; the others
        leave it alone (so an alert is sent once, however many `vigil check` overlap)."""
        rows = self._rows(
            "UPDATE notifications SET status = ?, attempts = ?, updated_at = ?"
            " WHERE key = ? AND status = ? AND attempts = ? RETURNING key",
            [
                DeliveryStatus.SENDING.value,
                attempts + 1,
                to_naive_utc(self.clock()),
                key,
                status.value,
                attempts,
            ],
        )
        return bool(rows)

    def update_delivery(
        self,
        key: str,
        status: DeliveryStatus,
        attempts: int,
        parts_sent: int,
        error: str,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Record the outcome of a delivery attempt (and when to try again)."""
        now = to_naive_utc(self.clock())
        retry = to_naive_utc(next_attempt_at) if next_attempt_at else None
        sent = status is DeliveryStatus.SENT
        self._run(
            "UPDATE notifications SET status = ?, attempts = ?, parts_sent = ?, last_error = ?,"
            " updated_at = ?, sent_at = CASE WHEN ? THEN ? ELSE sent_at END,"
            " next_attempt_at = ? WHERE key = ?",
            [status.value, attempts, parts_sent, redact(error), now, sent, now, retry, key],
        )

    def rewrite_pending(
        self, key: str, series: SeriesKey, title: str, text: str, html: str
    ) -> None:
        """Replace what a still pending notification says (and is about)."""
        self._run(
            "UPDATE notifications SET metric = ?, segment = ?, title = ?, text = ?, html = ?"
            " WHERE key = ? AND status = 'pending'",
            [series.metric, series.segment.key, title, text, html, key],
        )

    def notification_rows(self) -> list[dict[str, Any]]:
        """Every notification without its image, for listings and tests."""
        frame = self._frame(
            "SELECT key, monitor, channel, metric, segment, bucket, status, attempts, parts_sent,"
            " last_error, title, recipients, created_at, sent_at, next_attempt_at, severity, kind"
            " FROM notifications"
            " ORDER BY bucket, key"
        )
        return frame.to_dict("records")  # type: ignore[return-value]


_INCIDENT_COLUMNS = (
    "id, monitor, metric, segment, granularity, opened_bucket, last_anomaly_bucket,"
    " notified_deviation, normal_streak, status, resolved_bucket"
)


def prune_targets(
    values_before: datetime | None, results_before: datetime | None
) -> list[tuple[str, str, datetime | None]]:
    """(table, condition on `?`, cutoff) for each table retention applies to."""
    return [
        ("metric_values", "bucket < ?", values_before),
        ("metric_payloads", "bucket < ?", values_before),
        ("analysis_results", "bucket < ?", results_before),
        ("alerts", "bucket < ?", results_before),
        ("incidents", "status = 'resolved' AND last_anomaly_bucket < ?", results_before),
        ("notifications", "status IN ('sent', 'gave_up', 'merged') AND bucket < ?", results_before),
        ("runs", "started_at < ?", results_before),
        ("silences", "ends_at < ?", results_before),
    ]


def feedback_values(feedback: Feedback, now: datetime) -> list[Any]:
    """The feedback table's columns, in order."""
    return [
        feedback.monitor,
        feedback.analyzer,
        feedback.series.metric,
        feedback.series.segment.key,
        feedback.bucket.granularity.seconds,
        to_naive_utc(feedback.bucket.start),
        feedback.label.value,
        feedback.note,
        feedback.author,
        to_naive_utc(feedback.created_at or now),
    ]


def incident_values(incident: Incident) -> list[Any]:
    """The incident's columns after `id`, in `_INCIDENT_COLUMNS` order."""
    return [
        incident.monitor,
        incident.series.metric,
        incident.series.segment.key,
        incident.granularity.seconds,
        to_naive_utc(incident.opened_bucket),
        to_naive_utc(incident.last_anomaly_bucket),
        incident.notified_deviation,
        incident.normal_streak,
        incident.status,
        to_naive_utc(incident.resolved_bucket) if incident.resolved_bucket else None,
    ]


def _incident_from_row(row: tuple[Any, ...], tz: str) -> Incident:
    return Incident(
        monitor=row[1],
        series=SeriesKey(row[2], Segment.from_key(row[3])),
        granularity=Granularity(int(row[4]), tz),
        opened_bucket=as_utc(row[5]),
        last_anomaly_bucket=as_utc(row[6]),
        notified_deviation=row[7],
        normal_streak=int(row[8]),
        status=row[9],
        resolved_bucket=as_utc(row[10]) if row[10] else None,
        id=int(row[0]),
    )


def _time_filter(
    column: str, since: datetime | None, until: datetime | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append(f"{column} >= ?")
        params.append(to_naive_utc(since))
    if until is not None:
        where.append(f"{column} < ?")
        params.append(to_naive_utc(until))
    return where, params


def _floats(column: np.ndarray) -> np.ndarray:
    """A value column as float64 with NaN for null (masked or None)."""
    if isinstance(column, np.ma.MaskedArray):
        return np.ma.filled(column.astype(np.float64), np.nan)
    if column.dtype == object:
        return np.array([np.nan if v is None else float(v) for v in column], dtype=np.float64)
    return column.astype(np.float64, copy=False)


def _clean(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


_TAIL = "recipients, severity, kind, members, remote_ref, reply_to"


def members_json(members: tuple[tuple[str, str, str], ...]) -> str:
    """A message's members as stored: a JSON list of [monitor, metric, segment key]."""
    return json.dumps([list(m) for m in members]) if members else ""


def members_from_json(text: str) -> tuple[tuple[str, str, str], ...]:
    """The inverse of `members_json`."""
    return tuple((str(a), str(b), str(c)) for a, b, c in json.loads(text)) if text else ()


def _result_row(r: AnalysisResult) -> tuple[Any, ...]:
    return (
        r.analyzer,
        r.analyzer_type,
        r.series.metric,
        r.series.segment.key,
        r.bucket.granularity.seconds,
        to_naive_utc(r.bucket.start),
        _clean(r.value),
        r.status.value,
        _clean(r.expected_lower),
        _clean(r.expected_upper),
        _clean(r.deviation),
        json.dumps({k: _clean(v) for k, v in r.baselines.items()}),
        r.reason,
        r.config_hash,
        r.is_partial,
    )


def _result_from_row(row: tuple[Any, ...], tz: str) -> AnalysisResult:
    granularity = Granularity(int(row[4]), tz)
    return AnalysisResult(
        analyzer=row[0],
        analyzer_type=row[1],
        series=SeriesKey(row[2], Segment.from_key(row[3])),
        bucket=Bucket(as_utc(row[5]), granularity),
        value=_clean(row[6]),
        status=Status(row[7]),
        expected_lower=_clean(row[8]),
        expected_upper=_clean(row[9]),
        deviation=_clean(row[10]),
        baselines=json.loads(row[11]),
        reason=row[12],
        config_hash=row[13],
        is_partial=bool(row[14]),
    )
