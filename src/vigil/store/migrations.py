"""Versioned schema migrations of the metric store; each runs once, in order."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE metric_values (
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                granularity INTEGER NOT NULL,
                bucket TIMESTAMP NOT NULL,
                value DOUBLE,
                updated_at TIMESTAMP NOT NULL,
                PRIMARY KEY (metric, segment, granularity, bucket)
            )""",
            """CREATE TABLE ingest_state (
                dataset VARCHAR PRIMARY KEY,
                ingested_until TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE analysis_results (
                analyzer VARCHAR NOT NULL,
                analyzer_type VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                granularity INTEGER NOT NULL,
                bucket TIMESTAMP NOT NULL,
                value DOUBLE,
                status VARCHAR NOT NULL,
                expected_lower DOUBLE,
                expected_upper DOUBLE,
                deviation DOUBLE,
                baselines VARCHAR NOT NULL,
                reason VARCHAR NOT NULL,
                config_hash VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                PRIMARY KEY (analyzer, metric, segment, granularity, bucket)
            )""",
            """CREATE TABLE alerts (
                monitor VARCHAR NOT NULL,
                analyzer VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                granularity INTEGER NOT NULL,
                bucket TIMESTAMP NOT NULL,
                severity VARCHAR NOT NULL,
                status VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                PRIMARY KEY (monitor, analyzer, metric, segment, granularity, bucket)
            )""",
            """CREATE TABLE notifications (
                key VARCHAR PRIMARY KEY,
                monitor VARCHAR NOT NULL,
                channel VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                granularity INTEGER NOT NULL,
                bucket TIMESTAMP NOT NULL,
                title VARCHAR NOT NULL,
                text VARCHAR NOT NULL,
                html VARCHAR NOT NULL,
                image BLOB,
                status VARCHAR NOT NULL,
                attempts INTEGER NOT NULL,
                parts_sent INTEGER NOT NULL,
                last_error VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                updated_at TIMESTAMP NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "notifications record recipients and send time",
        (
            "ALTER TABLE notifications ADD COLUMN recipients VARCHAR DEFAULT ''",
            "ALTER TABLE notifications ADD COLUMN sent_at TIMESTAMP",
        ),
    ),
    Migration(
        3,
        "run log, pipeline state, leader lock, partial results",
        (
            "ALTER TABLE analysis_results ADD COLUMN is_partial BOOLEAN DEFAULT false",
            "CREATE SEQUENCE runs_id",
            """CREATE TABLE runs (
                id BIGINT PRIMARY KEY DEFAULT nextval('runs_id'),
                run_id VARCHAR NOT NULL,
                kind VARCHAR NOT NULL,
                dataset VARCHAR NOT NULL,
                stage VARCHAR NOT NULL,
                started_at TIMESTAMP NOT NULL,
                finished_at TIMESTAMP NOT NULL,
                status VARCHAR NOT NULL,
                rows_in BIGINT NOT NULL,
                rows_out BIGINT NOT NULL,
                error VARCHAR NOT NULL
            )""",
            """CREATE TABLE pipeline_state (
                dataset VARCHAR PRIMARY KEY,
                consecutive_failures INTEGER NOT NULL,
                failing_since TIMESTAMP,
                alerted BOOLEAN NOT NULL,
                last_error VARCHAR NOT NULL,
                updated_at TIMESTAMP NOT NULL
            )""",
            """CREATE TABLE leader_lock (
                name VARCHAR PRIMARY KEY,
                owner VARCHAR NOT NULL,
                acquired_at TIMESTAMP NOT NULL,
                heartbeat_at TIMESTAMP NOT NULL
            )""",
        ),
    ),
    Migration(
        4,
        "pipeline state tracks datasets gone silent",
        (
            "ALTER TABLE pipeline_state ADD COLUMN silent_since TIMESTAMP",
            "ALTER TABLE pipeline_state ADD COLUMN silence_alerted BOOLEAN DEFAULT false",
        ),
    ),
    Migration(
        5,
        "outbox backoff and notification severity",
        (
            "ALTER TABLE notifications ADD COLUMN next_attempt_at TIMESTAMP",
            "ALTER TABLE notifications ADD COLUMN severity VARCHAR DEFAULT ''",
        ),
    ),
    Migration(
        6,
        "silences",
        (
            "CREATE SEQUENCE silences_id",
            """CREATE TABLE silences (
                id BIGINT PRIMARY KEY DEFAULT nextval('silences_id'),
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                monitor VARCHAR,
                starts_at TIMESTAMP NOT NULL,
                ends_at TIMESTAMP NOT NULL,
                reason VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                expired_at TIMESTAMP
            )""",
        ),
    ),
    Migration(
        7,
        "incidents, and the kind of each notification",
        (
            "CREATE SEQUENCE incidents_id",
            """CREATE TABLE incidents (
                id BIGINT PRIMARY KEY DEFAULT nextval('incidents_id'),
                monitor VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                granularity INTEGER NOT NULL,
                opened_bucket TIMESTAMP NOT NULL,
                last_anomaly_bucket TIMESTAMP NOT NULL,
                notified_deviation DOUBLE,
                normal_streak INTEGER NOT NULL,
                status VARCHAR NOT NULL,
                resolved_bucket TIMESTAMP
            )""",
            "ALTER TABLE notifications ADD COLUMN kind VARCHAR DEFAULT 'alert'",
        ),
    ),
    Migration(
        8,
        "distributions of profile metrics, and named reference snapshots",
        (
            """CREATE TABLE metric_payloads (
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                granularity INTEGER NOT NULL,
                bucket TIMESTAMP NOT NULL,
                payload VARCHAR NOT NULL,
                PRIMARY KEY (metric, segment, granularity, bucket)
            )""",
            """CREATE TABLE reference_values (
                name VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                granularity INTEGER NOT NULL,
                bucket TIMESTAMP NOT NULL,
                value DOUBLE,
                payload VARCHAR,
                created_at TIMESTAMP NOT NULL,
                PRIMARY KEY (name, metric, segment, granularity, bucket)
            )""",
        ),
    ),
    Migration(
        9,
        "feedback on alerts",
        (
            """CREATE TABLE feedback (
                monitor VARCHAR NOT NULL,
                analyzer VARCHAR NOT NULL,
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                granularity INTEGER NOT NULL,
                bucket TIMESTAMP NOT NULL,
                label VARCHAR NOT NULL,
                note VARCHAR NOT NULL,
                author VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL,
                PRIMARY KEY (monitor, analyzer, metric, segment, granularity, bucket)
            )""",
        ),
    ),
    Migration(
        10,
        "series ids: the analysis path reads numbers, not segment strings",
        (
            "CREATE SEQUENCE series_ids",
            """CREATE TABLE series (
                id BIGINT PRIMARY KEY DEFAULT nextval('series_ids'),
                metric VARCHAR NOT NULL,
                segment VARCHAR NOT NULL,
                UNIQUE (metric, segment)
            )""",
            "INSERT INTO series (metric, segment)"
            " SELECT DISTINCT metric, segment FROM metric_values ORDER BY metric, segment",
            "ALTER TABLE metric_values ADD COLUMN series_id BIGINT",
            "UPDATE metric_values SET series_id = series.id FROM series"
            " WHERE series.metric = metric_values.metric"
            " AND series.segment = metric_values.segment",
        ),
    ),
    Migration(
        11,
        "messages know their members, the channel's message id and what they answer",
        (
            "ALTER TABLE notifications ADD COLUMN members VARCHAR DEFAULT ''",
            "ALTER TABLE notifications ADD COLUMN remote_ref VARCHAR DEFAULT ''",
            "ALTER TABLE notifications ADD COLUMN reply_to VARCHAR DEFAULT ''",
        ),
    ),
    Migration(
        12,
        "buttons pressed in chats: acknowledge, silence, false alarm, expected",
        (
            """CREATE TABLE chat_actions (
                id VARCHAR PRIMARY KEY,
                channel VARCHAR NOT NULL,
                seq BIGINT NOT NULL,
                message_key VARCHAR NOT NULL,
                action VARCHAR NOT NULL,
                actor VARCHAR NOT NULL,
                outcome VARCHAR NOT NULL,
                created_at TIMESTAMP NOT NULL
            )""",
        ),
    ),
)
