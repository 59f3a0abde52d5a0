"""The ClickHouse metric store: for very many series, on a server or embedded (chDB).

Same interface and reads as the SQL stores; what ClickHouse does differently:

- Tables are MergeTree; values, distributions, results and alerts are partitioned by month
  and ordered by metric, segment, granularity and bucket. Every table but the run log is a
  ReplacingMergeTree keyed like the other stores' primary keys, with a `_version` column;
  reads apply FINAL (the `final` setting), so the newest version of a key is the row. An
  upsert is an insert, an UPDATE inserts the changed rows as new versions.
- ClickHouse has no multi-table transactions, so `transaction()` keeps a log: a block gets
  an id, every row written inside it carries that id in `_txn`, and the block is recorded as
  open, then committed. A block that raises deletes its rows, which uncovers the versions
  before it (a rollback). A process that dies inside a block leaves it open; the next process
  that opens the store (`migrate`) rolls it back when its owner is gone (same host: the pid is
  not running; another host: open for longer than an hour). Until then its rows are visible,
  so a cycle killed mid-way on one machine is undone by the next start, as on the other stores.
- The leader lock is a read-then-write: two schedulers starting in the same instant can both
  run one cycle before one of them sees the other's lock. For several schedulers on one
  store, prefer the PostgreSQL store; on ClickHouse run one `vigil run`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.clickhouse import ClickHouseClient, ClickHouseQueryError, bind, quote_identifier
from vigil.errors import StoreError
from vigil.model import (
    Alert,
    AnalysisResult,
    ChatAction,
    DeliveryStatus,
    Feedback,
    Incident,
    Notification,
    Silence,
)
from vigil.secrets import redact
from vigil.sources.dialects import redact_url
from vigil.store.actions import action_row
from vigil.store.base import Cells, cells_from_frame
from vigil.store.migrations import Migration
from vigil.store.sql import (
    _INCIDENT_COLUMNS,
    _RESULT_COLUMNS,
    Clock,
    SQLStore,
    _result_row,
    _utc_now,
    feedback_values,
    incident_values,
    members_json,
)
from vigil.store.views import rollup_views
from vigil.timeutil import Granularity, to_naive_utc

_VALUES = "ENGINE = ReplacingMergeTree(_version) PARTITION BY toYYYYMM(bucket)"

CLICKHOUSE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            f"""CREATE TABLE metric_values (
                metric String, segment String, granularity Int64, bucket DateTime64(6),
                value Nullable(Float64), updated_at DateTime64(6), _version UInt64, _txn UInt64
            ) {_VALUES} ORDER BY (metric, segment, granularity, bucket)""",
            f"""CREATE TABLE metric_payloads (
                metric String, segment String, granularity Int64, bucket DateTime64(6),
                payload String, _version UInt64, _txn UInt64
            ) {_VALUES} ORDER BY (metric, segment, granularity, bucket)""",
            """CREATE TABLE reference_values (
                name String, metric String, segment String, granularity Int64,
                bucket DateTime64(6), value Nullable(Float64), payload Nullable(String),
                created_at DateTime64(6),
                _version UInt64 DEFAULT toUnixTimestamp64Nano(now64(9)), _txn UInt64 DEFAULT 0
            ) ENGINE = ReplacingMergeTree(_version)
            ORDER BY (name, metric, segment, granularity, bucket)""",
            """CREATE TABLE ingest_state (
                dataset String, ingested_until DateTime64(6), updated_at DateTime64(6),
                _version UInt64, _txn UInt64
            ) ENGINE = ReplacingMergeTree(_version) ORDER BY dataset""",
            f"""CREATE TABLE analysis_results (
                analyzer String, analyzer_type String, metric String, segment String,
                granularity Int64, bucket DateTime64(6), value Nullable(Float64), status String,
                expected_lower Nullable(Float64), expected_upper Nullable(Float64),
                deviation Nullable(Float64), baselines String, reason String,
                config_hash String, is_partial Bool, created_at DateTime64(6), _version UInt64,
                _txn UInt64
            ) {_VALUES} ORDER BY (metric, segment, granularity, bucket, analyzer)""",
            f"""CREATE TABLE alerts (
                monitor String, analyzer String, metric String, segment String,
                granularity Int64, bucket DateTime64(6), severity String, status String,
                created_at DateTime64(6), _version UInt64, _txn UInt64
            ) {_VALUES} ORDER BY (monitor, analyzer, metric, segment, granularity, bucket)""",
            """CREATE TABLE notifications (
                key String, monitor String, channel String, metric String, segment String,
                granularity Int64, bucket DateTime64(6), title String, text String,
                html String, image Nullable(String), status String, attempts Int64,
                parts_sent Int64, last_error String, created_at DateTime64(6),
                updated_at DateTime64(6), recipients String, sent_at Nullable(DateTime64(6)),
                next_attempt_at Nullable(DateTime64(6)), severity String, kind String,
                _version UInt64, _txn UInt64
            ) ENGINE = ReplacingMergeTree(_version) ORDER BY key""",
            """CREATE TABLE runs (
                id Int64, run_id String, kind String, dataset String, stage String,
                started_at DateTime64(6), finished_at DateTime64(6), status String,
                rows_in Int64, rows_out Int64, error String, _txn UInt64
            ) ENGINE = MergeTree ORDER BY id""",
            """CREATE TABLE pipeline_state (
                dataset String, consecutive_failures Int64,
                failing_since Nullable(DateTime64(6)), alerted Bool, last_error String,
                updated_at DateTime64(6), silent_since Nullable(DateTime64(6)),
                silence_alerted Bool, _version UInt64, _txn UInt64
            ) ENGINE = ReplacingMergeTree(_version) ORDER BY dataset""",
            """CREATE TABLE leader_lock (
                name String, owner String, acquired_at DateTime64(6),
                heartbeat_at DateTime64(6), _version UInt64, _txn UInt64
            ) ENGINE = ReplacingMergeTree(_version) ORDER BY name""",
            """CREATE TABLE silences (
                id Int64, metric String, segment String, monitor Nullable(String),
                starts_at DateTime64(6), ends_at DateTime64(6), reason String,
                created_at DateTime64(6), expired_at Nullable(DateTime64(6)),
                _version UInt64, _txn UInt64
            ) ENGINE = ReplacingMergeTree(_version) ORDER BY id""",
            """CREATE TABLE incidents (
                id Int64, monitor String, metric String, segment String, granularity Int64,
                opened_bucket DateTime64(6), last_anomaly_bucket DateTime64(6),
                notified_deviation Nullable(Float64), normal_streak Int64, status String,
                resolved_bucket Nullable(DateTime64(6)), _version UInt64, _txn UInt64
            ) ENGINE = ReplacingMergeTree(_version) ORDER BY id""",
            """CREATE TABLE transactions (
                id UInt64, owner String, status String, started_at DateTime64(6),
                _version UInt64
            ) ENGINE = ReplacingMergeTree(_version) ORDER BY id""",
        ),
    ),
)

CLICKHOUSE_MIGRATIONS += (
    Migration(
        2,
        "feedback on alerts",
        (
            """CREATE TABLE feedback (
                monitor String, analyzer String, metric String, segment String,
                granularity Int64, bucket DateTime64(6), label String, note String,
                author String, created_at DateTime64(6), _version UInt64, _txn UInt64
            ) ENGINE = ReplacingMergeTree(_version)
            ORDER BY (monitor, analyzer, metric, segment, granularity, bucket)""",
        ),
    ),
    Migration(
        3,
        "messages know their members, the channel's message id and what they answer",
        (
            "ALTER TABLE notifications ADD COLUMN members String DEFAULT ''",
            "ALTER TABLE notifications ADD COLUMN remote_ref String DEFAULT ''",
            "ALTER TABLE notifications ADD COLUMN reply_to String DEFAULT ''",
        ),
    ),
    Migration(
        4,
        "buttons pressed in chats: acknowledge, silence, false alarm, expected",
        (
            """CREATE TABLE chat_actions (
                id String, channel String, seq Int64, message_key String, action String,
                actor String, outcome String, created_at DateTime64(6), _version UInt64,
                _txn UInt64
            ) ENGINE = ReplacingMergeTree(_version) ORDER BY id""",
        ),
    ),
)

# Per-query settings: newest versions only, NULL (not 0) from aggregates of nothing and from
# unmatched joins, numbers as JSON numbers, and mutations that finish before they return.
_SETTINGS = {
    "final": "1",
    "aggregate_functions_null_for_empty": "1",
    "join_use_nulls": "1",
    "output_format_json_quote_64bit_integers": "0",
    "output_format_json_quote_denormals": "0",
    "mutations_sync": "1",
}

_ANY = re.compile(r"([\w.]+) = ANY\(\?\)")
_UPDATE = re.compile(r"^UPDATE (\w+) SET (.*)$", re.DOTALL)


class _Result:
    """Rows of one statement, read like a DB-API cursor."""

    def __init__(self, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        self.description = [(c,) for c in columns]
        self._rows = rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class ClickHouseStore(SQLStore):
    """Metric store in a ClickHouse database."""

    errors = (ClickHouseQueryError,)
    migrations = CLICKHOUSE_MIGRATIONS
    migrations_table = (
        "CREATE TABLE IF NOT EXISTS schema_migrations (version Int64, name String,"
        " applied_at DateTime64(6)) ENGINE = MergeTree ORDER BY version"
    )

    def __init__(
        self,
        *,
        url: str | None = None,
        path: Path | None = None,
        database: str = "vigil",
        tz: str = "UTC",
        clock: Clock = _utc_now,
    ) -> None:
        super().__init__(tz, clock)
        self.url = url
        self.path = path
        self.database = database
        try:
            self.client = ClickHouseClient(url=url, path=path, database=database)
        except ValueError as e:
            raise StoreError(f"metric store: {e}") from e
        self._txn = 0
        self._created = False
        self._column_cache: dict[str, list[str]] = {}

    # --- connections and statements ------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[Any]:
        """The client stays open for the store's lifetime."""
        self._ensure_database()
        yield self.client

    def close(self) -> None:
        """Release the HTTP client or the embedded engine."""
        self.client.close()

    def _ensure_database(self) -> None:
        if self._created:
            return
        try:
            self.client.query(
                f"CREATE DATABASE IF NOT EXISTS {quote_identifier(self.database)}",
                output="TSV",
                database="default",
            )
        except ClickHouseQueryError as e:
            raise StoreError(f"cannot open metric store: {redact_url(str(e))}") from e
        self._created = True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Rows written inside carry the block's id; if the block raises, they are deleted."""
        if self._in_transaction:
            yield
            return
        txn = time.time_ns()
        self._log_transaction(txn, "open")
        self._txn, self._in_transaction = txn, True
        try:
            yield
        except BaseException:
            self._txn, self._in_transaction = 0, False
            self._roll_back(txn)
            raise
        self._txn, self._in_transaction = 0, False
        self._log_transaction(txn, "committed")

    def _log_transaction(self, txn: int, status: str, owner: str | None = None) -> None:
        self._insert(
            "transactions",
            [
                {
                    "id": txn,
                    "owner": owner or f"{socket.gethostname()}:{os.getpid()}",
                    "status": status,
                    "started_at": to_naive_utc(datetime.fromtimestamp(txn / 1e9, UTC)),
                }
            ],
        )

    def _roll_back(self, txn: int) -> None:
        """Delete every row the block wrote, uncovering the versions before it."""
        for table in _TXN_TABLES:
            self._run(f"DELETE FROM {table} WHERE _txn = ?", [txn])
        self._insert(
            "transactions",
            [
                {
                    "id": txn,
                    "owner": "",
                    "status": "rolled_back",
                    "started_at": to_naive_utc(datetime.fromtimestamp(txn / 1e9, UTC)),
                }
            ],
        )

    def recover(self, now: datetime | None = None) -> list[int]:
        """Roll back blocks left open by processes that died; return their ids.

        An owner on this host is gone when its pid no longer runs; on another host, when its
        block has been open for longer than an hour.
        """
        now = now or self.clock()
        host = socket.gethostname()
        undone = []
        rows = self._rows(
            "SELECT id, owner, started_at FROM transactions WHERE status = 'open' ORDER BY id"
        )
        for txn, owner, started in rows:
            owner_host, _, pid = str(owner).rpartition(":")
            if owner_host == host and pid.isdigit():
                dead = not _running(int(pid))
            else:
                dead = to_naive_utc(now) - started > ABANDONED_AFTER
            if dead:
                self._roll_back(int(txn))
                undone.append(int(txn))
        return undone

    def _execute(self, conn: Any, sql: str, params: list[Any]) -> Any:
        text, named = _translate(sql, params)
        update = _UPDATE.match(text)
        if update:
            text = self._update_as_insert(update.group(1), update.group(2), named)
        output = conn.query(text, named, "JSONCompact", _SETTINGS)
        if not output.strip():
            return _Result([], [])
        document = json.loads(output)
        meta = document["meta"]
        converters = [_converter(m["name"], m["type"]) for m in meta]
        rows = [
            tuple(convert(v) for convert, v in zip(converters, row, strict=True))
            for row in document["data"]
        ]
        return _Result([m["name"] for m in meta], rows)

    def load_cells(
        self,
        metrics: list[str],
        granularity: Granularity,
        start: datetime,
        end: datetime,
        *,
        windows: list[tuple[datetime, datetime]] | None = None,
    ) -> dict[str, Cells]:
        """Column-wise reads of the long rows, split per metric (the whole range: `windows`
        only narrows what is needed)."""
        return cells_from_frame(self.load_values(metrics, granularity, start, end), metrics)

    def _frame(self, sql: str, params: Iterable[Any] = ()) -> pd.DataFrame:
        """Column-wise reads for frames: one JSON array per column, converted in bulk."""
        text, named = _translate(sql, list(params))
        with self.session() as conn:
            try:
                output = conn.query(text, named, "JSONColumnsWithMetadata", _SETTINGS)
            except ClickHouseQueryError as e:
                raise StoreError(f"metric store query failed: {e}") from e
        document = json.loads(output) if output.strip() else {"meta": [], "data": {}}
        columns = {}
        for meta in document["meta"]:
            values = document["data"].get(meta["name"], [])
            if "DateTime" in meta["type"]:
                columns[meta["name"]] = pd.to_datetime(pd.Series(values, dtype=object))
            elif "Float" in meta["type"]:
                columns[meta["name"]] = pd.Series(values, dtype="float64")
            else:
                columns[meta["name"]] = pd.Series(values)
        return pd.DataFrame(columns, columns=[m["name"] for m in document["meta"]])

    def _update_as_insert(self, table: str, rest: str, named: dict[str, str]) -> str:
        """`UPDATE t SET a = x WHERE c` as an insert of new versions of the matching rows."""
        assignments, _, where = rest.rpartition(" WHERE ")
        changed = dict(_split_assignments(assignments))
        named["_version"] = str(time.time_ns())
        named["_txn"] = str(self._txn)
        columns = self._columns(table)
        select = [
            "{_version:UInt64}"
            if c == "_version"
            else "{_txn:UInt64}"
            if c == "_txn"
            else changed.get(c, c)
            for c in columns
        ]
        return (
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(select)}"
            f" FROM {table} WHERE {where}"
        )

    def _columns(self, table: str) -> list[str]:
        if table not in self._column_cache:
            rows = self._rows(
                "SELECT name FROM system.columns WHERE database = ? AND table = ?"
                " ORDER BY position",
                [self.database, table],
            )
            self._column_cache[table] = [r[0] for r in rows]
        return self._column_cache[table]

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Append rows (JSONEachRow); each gets a `_version` newer than any before it and
        the id of the transaction block it is written in."""
        if not rows:
            return
        version = time.time_ns()
        lines = []
        for i, row in enumerate(rows):
            if table in _VERSIONED:
                row = {**row, "_version": version + i}
            if table in _TXN_TABLES:
                row = {**row, "_txn": self._txn}
            lines.append(json.dumps({k: _json_value(k, v) for k, v in row.items()}))
        sql = f"INSERT INTO {table} FORMAT JSONEachRow\n" + "\n".join(lines) + "\n"
        with self.session():
            try:
                self.client.query(sql, {}, "TSV", {"mutations_sync": "1"})
            except ClickHouseQueryError as e:
                raise StoreError(f"metric store query failed: {e}") from e

    def _insert_frame(self, frame: pd.DataFrame, sql: str | tuple[str, ...], like: str) -> None:
        """Insert the frame's rows into `like` as tab-separated text (the key's newest
        version wins)."""
        if frame.empty:
            return
        columns = {name: _tsv_column(frame[name]) for name in frame.columns}
        if like in _VERSIONED:
            versions = time.time_ns() + np.arange(len(frame))
            columns["_version"] = pd.Series(versions.astype(str), index=frame.index)
        if like in _TXN_TABLES:
            columns["_txn"] = pd.Series(str(self._txn), index=frame.index)
        names = list(columns)
        others: list[Any] = [columns[n] for n in names[1:]]
        body = columns[names[0]].str.cat(others, sep="\t")
        text = "\n".join(body.tolist())
        sql = f"INSERT INTO {like} FORMAT TabSeparatedWithNames\n{chr(9).join(names)}\n{text}\n"
        with self.session():
            try:
                self.client.query(sql, {}, "TSV")
            except ClickHouseQueryError as e:
                raise StoreError(f"metric store query failed: {e}") from e

    # --- schema --------------------------------------------------------------------------

    def _apply_migration(self, migration: Migration) -> None:
        """Create the migration's tables (again, if a run was cut short), then record it."""
        for statement in migration.statements:
            self._run(statement.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
        applied_at = to_naive_utc(self.clock())
        row = {"version": migration.version, "name": migration.name, "applied_at": applied_at}
        self._insert("schema_migrations", [row])

    def _after_migrate(self) -> None:
        """Roll back blocks that processes which died left open; the hourly and daily views."""
        self.recover()
        for statement in rollup_views("clickhouse", self.tz):
            self._run(statement)

    def schema_version(self) -> int:
        """The newest applied migration (0 for an empty store)."""
        try:
            rows = self._rows("SELECT max(version) FROM schema_migrations")
        except StoreError:
            return 0
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def _delete(self, table: str, condition: str, params: list[Any]) -> int:
        """Count, then delete (ClickHouse's DELETE returns no rows)."""
        found = int(self._rows(f"SELECT count() FROM {table} WHERE {condition}", params)[0][0])
        if found:
            self._run(f"DELETE FROM {table} WHERE {condition}", params)
        return found

    # --- writes that other stores do with ON CONFLICT, UPDATE … RETURNING or sequences ----

    def upsert_values(self, frame: pd.DataFrame, granularity: Granularity) -> int:
        """Insert or replace values; an unchanged value keeps its `updated_at`."""
        if frame.empty:
            return 0
        incoming = frame[["metric", "segment", "bucket", "value"]].copy()
        incoming["bucket"] = pd.to_datetime(incoming["bucket"])
        incoming["granularity"] = granularity.seconds
        incoming["updated_at"] = to_naive_utc(self.clock())
        first, last = incoming["bucket"].min(), incoming["bucket"].max()
        stored = self.load_values(
            sorted(incoming["metric"].unique()),
            granularity,
            first.to_pydatetime(),
            last.to_pydatetime() + timedelta(microseconds=1),
        )
        if not stored.empty:
            stored = stored.assign(bucket=pd.to_datetime(stored["bucket"]))
            merged = incoming.merge(
                stored,
                on=["metric", "segment", "bucket"],
                how="left",
                suffixes=("", "_old"),
                indicator=True,
            )
            found = (merged["_merge"] == "both").to_numpy()
            equal = (merged["value"] == merged["value_old"]).to_numpy()
            both_null = (merged["value"].isna() & merged["value_old"].isna()).to_numpy()
            incoming = incoming[~(found & (equal | both_null))]
        self._insert_frame(incoming, "", "metric_values")
        if "payload" in frame.columns:
            self._upsert_payloads(frame, granularity)
        return len(frame)

    def set_ingested_until(self, dataset: str, until: datetime) -> None:
        """Move the dataset's watermark forward (never back)."""
        current = self.ingested_until(dataset)
        newest = until if current is None or until > current else current
        self._insert(
            "ingest_state",
            [
                {
                    "dataset": dataset,
                    "ingested_until": to_naive_utc(newest),
                    "updated_at": to_naive_utc(self.clock()),
                }
            ],
        )

    def save_results(self, results: Iterable[AnalysisResult]) -> int:
        """Insert results; a result for the same analyzer, series and bucket is replaced."""
        chosen = list(results)
        if not chosen:
            return 0
        names = [c.strip() for c in _RESULT_COLUMNS.split(",")]
        created = to_naive_utc(self.clock())
        rows = [
            {**dict(zip(names, _result_row(r), strict=True)), "created_at": created} for r in chosen
        ]
        self._insert("analysis_results", rows)
        return len(chosen)

    def save_alerts(self, alerts: Iterable[Alert]) -> int:
        """Insert monitor decisions; existing ones are kept."""
        rows: list[dict[str, Any]] = []
        for alert in alerts:
            r = alert.result
            rows.append(
                {
                    "monitor": alert.monitor,
                    "analyzer": r.analyzer,
                    "metric": r.series.metric,
                    "segment": r.series.segment.key,
                    "granularity": r.bucket.granularity.seconds,
                    "bucket": to_naive_utc(r.bucket.start),
                    "severity": alert.severity.value,
                    "status": alert.status.value,
                    "created_at": to_naive_utc(alert.created_at),
                }
            )
        if rows:
            key = ("monitor", "analyzer", "metric", "segment", "granularity", "bucket")
            buckets: list[datetime] = [r["bucket"] for r in rows]
            existing = {
                tuple(r)
                for r in self._rows(
                    "SELECT monitor, analyzer, metric, segment, granularity, bucket FROM alerts"
                    " WHERE bucket >= ? AND bucket <= ?",
                    [min(buckets), max(buckets)],
                )
            }
            self._insert("alerts", [r for r in rows if tuple(r[k] for k in key) not in existing])
        return len(rows)

    def record_runs(self, records: Iterable[Any]) -> None:
        """Append stage records to the run log (ids in the order written)."""
        rows = []
        base = time.time_ns()
        for i, r in enumerate(records):
            rows.append(
                {
                    "id": base + i,
                    "run_id": r.run_id,
                    "kind": r.kind,
                    "dataset": r.dataset,
                    "stage": r.stage,
                    "started_at": to_naive_utc(r.started_at),
                    "finished_at": to_naive_utc(r.finished_at),
                    "status": r.status,
                    "rows_in": r.rows_in,
                    "rows_out": r.rows_out,
                    "error": redact(r.error),
                }
            )
        self._insert("runs", rows)

    def save_pipeline_state(self, state: Any) -> None:
        """Replace the dataset's failure streak."""
        self._insert(
            "pipeline_state",
            [
                {
                    "dataset": state.dataset,
                    "consecutive_failures": state.consecutive_failures,
                    "failing_since": _naive(state.failing_since),
                    "alerted": state.alerted,
                    "last_error": redact(state.last_error or ""),
                    "updated_at": to_naive_utc(self.clock()),
                    "silent_since": _naive(state.silent_since),
                    "silence_alerted": state.silence_alerted,
                }
            ],
        )

    def acquire_lock(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lock unless another owner renewed it within `ttl`."""
        rows = self._rows(
            "SELECT owner, acquired_at, heartbeat_at FROM leader_lock WHERE name = ?", [name]
        )
        if rows:
            holder, acquired, heartbeat = rows[0]
            if holder != owner and heartbeat > to_naive_utc(now - ttl):
                return False
            acquired_at = acquired if holder == owner else to_naive_utc(now)
        else:
            acquired_at = to_naive_utc(now)
        self._insert(
            "leader_lock",
            [
                {
                    "name": name,
                    "owner": owner,
                    "acquired_at": acquired_at,
                    "heartbeat_at": to_naive_utc(now),
                }
            ],
        )
        after = self._rows("SELECT owner FROM leader_lock WHERE name = ?", [name])
        return bool(after) and after[0][0] == owner

    def save_incident(self, incident: Incident) -> int:
        """Insert a new incident (id 0) or update one; return its id."""
        if incident.id:
            return super().save_incident(incident)
        new_id = self._next_id("incidents")
        names = [c.strip() for c in _INCIDENT_COLUMNS.split(",")]
        values = [new_id, *incident_values(incident)]
        self._insert("incidents", [dict(zip(names, values, strict=True))])
        return new_id

    def add_silence(self, silence: Silence) -> int:
        """Store a silence; return its id."""
        new_id = self._next_id("silences")
        self._insert(
            "silences",
            [
                {
                    "id": new_id,
                    "metric": silence.metric,
                    "segment": json.dumps(silence.segment, sort_keys=True),
                    "monitor": silence.monitor,
                    "starts_at": to_naive_utc(silence.starts_at),
                    "ends_at": to_naive_utc(silence.ends_at),
                    "reason": silence.reason,
                    "created_at": to_naive_utc(self.clock()),
                    "expired_at": None,
                }
            ],
        )
        return new_id

    def release_lock(self, name: str, owner: str) -> None:
        """Give the lock up (only if held by `owner`)."""
        rows = self._rows("SELECT owner FROM leader_lock WHERE name = ?", [name])
        if rows and rows[0][0] == owner:
            self._run("DELETE FROM leader_lock WHERE name = ?", [name])

    def expire_silence(self, silence_id: int, at: datetime) -> bool:
        """End a silence now; False if there is no such unexpired silence."""
        found = self._rows(
            "SELECT count() FROM silences WHERE id = ? AND expired_at IS NULL", [silence_id]
        )
        if not int(found[0][0]):
            return False
        self._run("UPDATE silences SET expired_at = ? WHERE id = ?", [to_naive_utc(at), silence_id])
        return True

    def claim_delivery(self, key: str, status: DeliveryStatus, attempts: int) -> bool:
        """Start an attempt. ClickHouse has no conditional UPDATE … RETURNING: this marks the
        notification `sending` unconditionally, so processes sharing a ClickHouse store must
        not deliver at the same time (one `vigil run` per store; see docs/channels.md)."""
        found = self._rows(
            "SELECT parts_sent FROM notifications WHERE key = ? AND status = ? AND attempts = ?",
            [key, status.value, attempts],
        )
        if not found:
            return False
        self.update_delivery(key, DeliveryStatus.SENDING, attempts + 1, int(found[0][0]), "")
        return True

    def enqueue(self, notifications: Iterable[Notification]) -> int:
        """Persist notifications before any is sent; an existing key is not added again."""
        chosen = list(notifications)
        if not chosen:
            return 0
        keys = [n.key for n in chosen]
        existing = {
            r[0] for r in self._rows("SELECT key FROM notifications WHERE key = ANY(?)", [keys])
        }
        now = to_naive_utc(self.clock())
        rows = []
        for n in chosen:
            if n.key in existing:
                continue
            existing.add(n.key)
            rows.append(
                {
                    "key": n.key,
                    "monitor": n.monitor,
                    "channel": n.channel,
                    "metric": n.series.metric,
                    "segment": n.series.segment.key,
                    "granularity": n.bucket.granularity.seconds,
                    "bucket": to_naive_utc(n.bucket.start),
                    "title": n.title,
                    "text": n.text,
                    "html": n.html,
                    "image": n.image,
                    "status": n.status.value,
                    "attempts": n.attempts,
                    "parts_sent": n.parts_sent,
                    "last_error": n.last_error,
                    "created_at": now,
                    "updated_at": now,
                    "recipients": n.recipients,
                    "sent_at": None,
                    "next_attempt_at": None,
                    "severity": n.severity,
                    "kind": n.kind,
                    "members": members_json(n.members),
                    "remote_ref": n.remote_ref,
                    "reply_to": n.reply_to,
                }
            )
        self._insert("notifications", rows)
        return len(chosen)

    def save_feedback(self, feedback: Feedback) -> None:
        """Record a verdict on an alert; a later one for the same alert replaces it."""
        names = [
            "monitor",
            "analyzer",
            "metric",
            "segment",
            "granularity",
            "bucket",
            "label",
            "note",
            "author",
            "created_at",
        ]
        values = feedback_values(feedback, self.clock())
        self._insert("feedback", [dict(zip(names, values, strict=True))])

    def record_action(self, action: ChatAction) -> bool:
        """Record a press once (one process delivers per ClickHouse store, see channels.md)."""
        if self._rows("SELECT 1 FROM chat_actions WHERE id = ?", [action.id]):
            return False
        self._insert("chat_actions", [action_row(action)])
        return True

    def _next_id(self, table: str) -> int:
        rows = self._rows(f"SELECT max(id) FROM {table}")
        return int(rows[0][0] or 0) + 1


# Tables whose rows are versions of a key (ReplacingMergeTree).
_VERSIONED = frozenset(
    {
        "metric_values",
        "metric_payloads",
        "reference_values",
        "ingest_state",
        "analysis_results",
        "alerts",
        "notifications",
        "pipeline_state",
        "leader_lock",
        "silences",
        "incidents",
        "feedback",
        "chat_actions",
        "transactions",
    }
)
# Tables whose rows carry the transaction block that wrote them.
_TXN_TABLES = tuple(sorted((_VERSIONED | {"runs"}) - {"transactions"}))
# A block open this long, by a process on another host, is taken as abandoned.
ABANDONED_AFTER = timedelta(hours=1)


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _split_assignments(text: str) -> list[tuple[str, str]]:
    """`a = x, b = CASE … END` → [(a, x), (b, CASE … END)], splitting at top-level commas."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    out = []
    for part in parts:
        name, _, expression = part.strip().partition(" = ")
        out.append((name.strip(), expression.strip()))
    return out


def _translate(sql: str, params: list[Any]) -> tuple[str, dict[str, str]]:
    """The shared SQL in ClickHouse's terms: has() for `= ANY(?)`, typed {pN:Type} markers."""
    try:
        return bind(_ANY.sub(r"has(?, \1)", sql), params, "?")
    except ValueError as e:
        raise StoreError(f"metric store: {e}") from e


def _converter(name: str, kind: str) -> Any:
    """Turn a JSONCompact value of this column type into the Python value the readers expect."""
    if "DateTime" in kind:
        return lambda v: None if v is None else datetime.fromisoformat(v)
    if name == "image":
        return lambda v: None if v is None else base64.b64decode(v)
    if "Float" in kind:
        return lambda v: None if v is None else float(v)
    return lambda v: v


def _json_value(column: str, value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return to_naive_utc(value).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and value != value:
        return None
    return value


def _tsv_column(column: pd.Series) -> pd.Series:
    """A column as ClickHouse's tab-separated text: escaped strings, \\N for missing."""
    missing = column.isna()
    if pd.api.types.is_datetime64_any_dtype(column):
        codes, uniques = pd.factorize(column, use_na_sentinel=True)  # buckets repeat too
        stamps = pd.DatetimeIndex(uniques).strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
        text = pd.Series(np.array([*stamps, "\\N"], dtype=object)[codes], index=column.index)
    elif pd.api.types.is_bool_dtype(column):
        text = column.map({True: "true", False: "false"})
    elif pd.api.types.is_float_dtype(column) or pd.api.types.is_integer_dtype(column):
        text = column.astype(str)  # the shortest text that reads back the same number
    else:
        # Keys repeat (metrics, segments): escape each distinct value once.
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        escaped = np.array([_tsv_text(u) for u in uniques] + ["\\N"], dtype=object)
        text = pd.Series(escaped[codes], index=column.index)
    out: pd.Series = text.where(~missing, "\\N").astype(str)
    return out


def _tsv_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | pd.Timestamp):
        return to_naive_utc(pd.Timestamp(value).to_pydatetime()).strftime("%Y-%m-%d %H:%M:%S.%f")
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _naive(value: datetime | None) -> datetime | None:
    return to_naive_utc(value) if value is not None else None
