"""The configuration schema: every key declared once with its type, default and help."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    field_validator,
    model_validator,
)

from vigil.model import Direction, Severity
from vigil.timeutil import Granularity, format_duration, get_zone, parse_clock, parse_duration

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")


def _to_duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"{value} has no unit; expected a duration like 15m, 3h, 1d")
    return value


def _to_clock(value: object) -> object:
    return parse_clock(value) if isinstance(value, str) else value


def _check_identifier(value: str) -> str:
    if not IDENTIFIER.match(value):
        raise ValueError(
            f"'{value}' is not a valid name;"
            " expected letters, digits and _ (not starting with a digit)"
        )
    return value


def _check_granularity(value: str) -> str:
    Granularity.parse(value)
    return value


def _check_cron(value: str) -> str:
    if not croniter.is_valid(value):
        raise ValueError(
            f"'{value}' is not a cron expression; expected five fields like '0 * * * *'"
        )
    return value


def _check_zone(value: str) -> str:
    get_zone(value)
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_to_duration),
    PlainSerializer(format_duration, return_type=str),
]
ClockTime = Annotated[
    time,
    BeforeValidator(_to_clock),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
]
Name = Annotated[str, BeforeValidator(lambda v: _check_identifier(v) if isinstance(v, str) else v)]
GranularityName = Annotated[
    str, BeforeValidator(lambda v: _check_granularity(v) if isinstance(v, str) else v)
]
Cron = Annotated[str, BeforeValidator(lambda v: _check_cron(v) if isinstance(v, str) else v)]
ZoneName = Annotated[str, BeforeValidator(lambda v: _check_zone(v) if isinstance(v, str) else v)]
Fill = Literal["zero", "missing"]


class Base(BaseModel):
    """Strict base: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --- stores and sources -------------------------------------------------------------------


class Retention(Base):
    """How long the store keeps rows; null keeps them forever."""

    values: int | None = Field(
        None, ge=1, description="Days of metric values and distributions (by bucket)."
    )
    results: int | None = Field(
        None,
        ge=1,
        description="Days of analysis results, alerts, incidents, sent notifications and runs.",
    )


def _retention(value: object) -> object:
    """`retention_days: 90` keeps values and results 90 days."""
    return {"values": value, "results": value} if isinstance(value, int) else value


class _StoreBase(Base):
    retention_days: Annotated[Retention, BeforeValidator(_retention)] = Field(
        default_factory=lambda: Retention(),
        description="Days to keep values and results: one number for both, or"
        " {values: 400, results: 90}. Pruned once a day by `vigil run`, or by"
        " `vigil store prune`.",
    )


class DuckDBStoreConfig(_StoreBase):
    """The embedded DuckDB metric store: one file holds values, results and notifications."""

    type: Literal["duckdb"] = Field("duckdb", description="Store backend.")
    path: str = Field(
        "vigil.duckdb", description="Database file, relative to the project directory."
    )


class PostgresStoreConfig(_StoreBase):
    """A PostgreSQL metric store, shared by several Vigil processes (one leads at a time)."""

    type: Literal["postgres"] = Field(description="Store backend.")
    url: SecretStr = Field(
        description="Connection URL, credentials from ${ENV_VAR}:"
        " postgresql://vigil:${VIGIL_DB_PASSWORD}@db:5432/vigil."
    )
    schema_name: str = Field(
        "vigil",
        alias="schema",
        description="Schema holding Vigil's tables (created if missing).",
    )


class ClickHouseStoreConfig(_StoreBase):
    """A ClickHouse metric store, for very many series: a server, or an embedded directory."""

    type: Literal["clickhouse"] = Field(description="Store backend.")
    url: SecretStr | None = Field(
        None,
        description="HTTP interface, credentials from ${ENV_VAR}:"
        " http://vigil:${CH_PASSWORD}@clickhouse:8123.",
    )
    path: str | None = Field(
        None,
        description="Embedded engine (chDB) data directory, relative to the project; a"
        " ClickHouse source embedded in the same process must use the same directory.",
    )
    database: str = Field("vigil", description="Database holding Vigil's tables (created).")

    @model_validator(mode="after")
    def _url_or_path(self) -> ClickHouseStoreConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("give either url (a server) or path (embedded chDB), not both")
        return self


StoreConfig = Annotated[
    DuckDBStoreConfig | PostgresStoreConfig | ClickHouseStoreConfig, Field(discriminator="type")
]


class DuckDBSourceConfig(Base):
    """Read raw data from a DuckDB database file (or an in-memory one for tests)."""

    type: Literal["duckdb"] = Field(description="Source backend.")
    path: str = Field(description="Database file, relative to the project directory.")
    timezone: ZoneName = Field(
        "UTC", description="Time zone of naive (zone-less) timestamp columns in this source."
    )
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )


class PythonSourceConfig(Base):
    """Call a Python function that returns a DataFrame of metric values."""

    type: Literal["python"] = Field(description="Source backend.")
    function: str = Field(
        description=(
            "`package.module:function` or `path/to/file.py:function` (relative to the project)."
            " Called as f(start, end) with UTC datetimes; returns a DataFrame with metric_name,"
            " metric_value, metric_timestamp and optional dimension columns."
        )
    )

    @field_validator("function")
    @classmethod
    def _has_colon(cls, value: str) -> str:
        if ":" not in value:
            raise ValueError(f"'{value}' names no function; expected module:function")
        return value


class _ServerSource(Base):
    """Fields shared by the SQL servers Vigil connects to."""

    url: SecretStr = Field(
        description="Connection URL with credentials from ${ENV_VAR}, e.g."
        " postgresql://vigil:${PG_PASSWORD}@db:5432/analytics."
    )
    timezone: ZoneName = Field(
        "UTC", description="Time zone of naive (zone-less) timestamp columns in this source."
    )
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )
    pool_size: int = Field(4, ge=1, description="Most connections kept open to the server.")


class PostgresSourceConfig(_ServerSource):
    """Read raw data from PostgreSQL (psycopg 3, pooled, read-only sessions)."""

    type: Literal["postgres"] = Field(description="Source backend.")


class MySQLSourceConfig(_ServerSource):
    """Read raw data from MySQL 8 or MariaDB (url mysql://user:password@host:3306/db)."""

    type: Literal["mysql", "mariadb"] = Field(description="Source backend.")


class ClickHouseSourceConfig(Base):
    """Read raw data from ClickHouse: a server over HTTP, or an embedded chDB directory."""

    type: Literal["clickhouse"] = Field(description="Source backend.")
    url: SecretStr | None = Field(
        None,
        description="HTTP interface, e.g. http://default:${CH_PASSWORD}@clickhouse:8123.",
    )
    path: str | None = Field(
        None, description="Embedded engine (chDB) data directory, relative to the project."
    )
    database: str = Field("default", description="Database of unqualified table names.")
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )

    @model_validator(mode="after")
    def _url_or_path(self) -> ClickHouseSourceConfig:
        if (self.url is None) == (self.path is None):
            raise ValueError("give either url (a server) or path (embedded chDB), not both")
        return self


class SQLiteSourceConfig(Base):
    """Read raw data from a SQLite file (times as UTC ISO-8601 text)."""

    type: Literal["sqlite"] = Field(description="Source backend.")
    path: str = Field(description="Database file, relative to the project directory.")
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )


class FilesSourceConfig(Base):
    """Query CSV, Parquet or JSON files (or globs of them) through DuckDB, as tables."""

    type: Literal["files"] = Field(description="Source backend.")
    tables: dict[Name, str] = Field(
        description="Table name → file or glob relative to the project, e.g."
        " {events: data/events/*.parquet}; the format follows the extension"
        " (.csv, .tsv, .parquet, .json, .jsonl, optionally .gz)."
    )
    timezone: ZoneName = Field(
        "UTC", description="Time zone of naive (zone-less) timestamp columns in these files."
    )
    query_timeout: Duration = Field(
        timedelta(minutes=5), description="Abort a source query that runs longer than this."
    )

    @field_validator("tables")
    @classmethod
    def _known_formats(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            if file_format(pattern) is None:
                raise ValueError(
                    f"table '{name}': cannot tell the format of '{pattern}';"
                    " expected a name ending in .csv, .tsv, .parquet, .json or .jsonl"
                )
        return value


def file_format(pattern: str) -> str | None:
    """csv, parquet or json, from a file name or glob."""
    name = pattern.lower().removesuffix(".gz").removesuffix(".zst")
    for suffix, kind in ((".csv", "csv"), (".tsv", "csv"), (".parquet", "parquet")):
        if name.endswith(suffix):
            return kind
    if name.endswith((".json", ".jsonl", ".ndjson")):
        return "json"
    return None


class PrometheusSourceConfig(Base):
    """Query the Prometheus HTTP API (query_range); each returned label set is a segment."""

    type: Literal["prometheus"] = Field(description="Source backend.")
    url: str = Field(description="Base URL, e.g. http://prometheus:9090.")
    token: SecretStr | None = Field(None, description="Bearer token, from ${ENV_VAR}.")
    query_timeout: Duration = Field(
        timedelta(minutes=1), description="Abort a query that runs longer than this."
    )


SourceConfig = Annotated[
    DuckDBSourceConfig
    | PostgresSourceConfig
    | MySQLSourceConfig
    | ClickHouseSourceConfig
    | SQLiteSourceConfig
    | FilesSourceConfig
    | PrometheusSourceConfig
    | PythonSourceConfig,
    Field(discriminator="type"),
]


# --- channels -----------------------------------------------------------------------------


class ConsoleChannelConfig(Base):
    """Print alerts to standard output."""

    type: Literal["console"] = Field(description="Channel backend.")


class TelegramChannelConfig(Base):
    """Telegram Bot API: sendMessage with the alert text, sendPhoto with the chart."""

    type: Literal["telegram"] = Field(description="Channel backend.")
    token: SecretStr = Field(description="Bot token; give it as ${ENV_VAR}, never inline.")
    chat_id: str = Field(description="Chat, group or channel id (or @channelname).")
    api_url: str = Field(
        "https://api.telegram.org", description="Bot API base URL (a local stand-in in tests)."
    )
    message_thread_id: int | None = Field(
        None, description="Forum topic to post in (supergroups with topics)."
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")
    max_attempts: int = Field(
        10, ge=1, description="Give up on a notification after this many failed deliveries."
    )

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class WebhookChannelConfig(Base):
    """POST a JSON document per notification (see docs/channels.md), optionally HMAC-signed."""

    type: Literal["webhook"] = Field(description="Channel backend.")
    url: str = Field(description="Endpoint; use ${ENV_VAR} if it carries a token.")
    secret: SecretStr | None = Field(
        None, description="Signs the body: header X-Vigil-Signature: sha256=<hex HMAC-SHA256>."
    )
    include_chart: bool = Field(True, description="Add the chart as base64 PNG.")
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")


class SlackChannelConfig(Base):
    """Slack: a bot token (message plus chart upload) or an incoming webhook (message only)."""

    type: Literal["slack"] = Field(description="Channel backend.")
    token: SecretStr | None = Field(None, description="Bot token (xoxb-…), from ${ENV_VAR}.")
    channel: str | None = Field(None, description="Channel id for the bot (e.g. C0123456).")
    webhook_url: SecretStr | None = Field(None, description="Incoming webhook URL instead.")
    api_url: str = Field("https://slack.com/api", description="Web API base URL.")
    mentions: dict[str, str] = Field(
        default_factory=dict,
        description="Owner handle → this channel's mention syntax, e.g. '@ann': '<@U024BE7LH>'.",
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")

    @model_validator(mode="after")
    def _token_or_webhook(self) -> SlackChannelConfig:
        if (self.token is None) == (self.webhook_url is None):
            raise ValueError("give either token (with channel) or webhook_url")
        if self.token is not None and not self.channel:
            raise ValueError("a bot token needs a channel id")
        return self


class EmailChannelConfig(Base):
    """Email over SMTP: HTML and plain-text parts, the chart inline."""

    type: Literal["email"] = Field(description="Channel backend.")
    host: str = Field(description="SMTP server.")
    port: int = Field(587, description="SMTP port (587 STARTTLS, 465 SSL, 25 none).")
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls", description="Transport security."
    )
    username: str | None = Field(None, description="Login name, if the server needs one.")
    password: SecretStr | None = Field(None, description="Login password, from ${ENV_VAR}.")
    sender: str = Field(description="From address.")
    to: list[str] = Field(min_length=1, description="Recipient addresses.")
    ca_file: str | None = Field(
        None, description="CA bundle to trust (an internal CA); default: the system's."
    )
    timeout: Duration = Field(timedelta(seconds=30), description="SMTP timeout.")


class PagerDutyChannelConfig(Base):
    """PagerDuty Events API v2: one incident per monitor and series (stable dedup_key)."""

    type: Literal["pagerduty"] = Field(description="Channel backend.")
    routing_key: SecretStr = Field(description="Integration key, from ${ENV_VAR}.")
    api_url: str = Field(
        "https://events.pagerduty.com/v2/enqueue", description="Events API endpoint."
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")


class TeamsChannelConfig(Base):
    """Microsoft Teams incoming webhook (a message card)."""

    type: Literal["teams"] = Field(description="Channel backend.")
    webhook_url: SecretStr = Field(description="Incoming webhook URL, from ${ENV_VAR}.")
    mentions: dict[str, str] = Field(
        default_factory=dict,
        description="Owner handle → this channel's mention syntax, e.g. '@ann': '<@U024BE7LH>'.",
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")


class MattermostChannelConfig(Base):
    """Mattermost incoming webhook (markdown text)."""

    type: Literal["mattermost"] = Field(description="Channel backend.")
    webhook_url: SecretStr = Field(description="Incoming webhook URL, from ${ENV_VAR}.")
    channel: str | None = Field(None, description="Override the webhook's channel.")
    username: str | None = Field(None, description="Override the poster's name.")
    mentions: dict[str, str] = Field(
        default_factory=dict,
        description="Owner handle → this channel's mention syntax, e.g. '@ann': '<@U024BE7LH>'.",
    )
    timeout: Duration = Field(timedelta(seconds=15), description="HTTP timeout per request.")


ChannelConfig = Annotated[
    ConsoleChannelConfig
    | TelegramChannelConfig
    | WebhookChannelConfig
    | SlackChannelConfig
    | EmailChannelConfig
    | PagerDutyChannelConfig
    | TeamsChannelConfig
    | MattermostChannelConfig,
    Field(discriminator="type"),
]


# --- shared blocks ------------------------------------------------------------------------


class QuietHours(Base):
    """A daily window (project time zone) in which anomalies are logged but not sent."""

    start: ClockTime = Field(description="Start of the window, HH:MM.")
    end: ClockTime = Field(description="End of the window, HH:MM (may be past midnight).")


class SegmentOwners(Base):
    """Extra owners to @mention for series of one slice."""

    segment: dict[str, str] = Field(description="Slice values, e.g. {os: iOS}; `*` = any value.")
    owners: list[str] = Field(description="Handles to @mention, e.g. ['@ios_lead'].")


class Defaults(Base):
    """Settings every dataset and metric inherits unless it sets its own."""

    granularity: GranularityName = Field("15m", description="Bucket width: 5m, 15m, 1h, 1d, 1w.")
    delay: Duration = Field(
        timedelta(minutes=2), description="Wait this long after a bucket ends for late data."
    )
    lookback: int = Field(
        4, ge=0, description="Buckets before the newest that each cycle re-reads (late rows)."
    )
    fill: Fill = Field(
        "zero",
        description=(
            "A known series with no rows in a bucket: `zero` (counts: nothing happened) or"
            " `missing` (ratios: undefined)."
        ),
    )
    owners: list[str] = Field(default_factory=list, description="Handles to @mention.")
    links: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Named URL templates; placeholders {metric}, {segment}, {bucket}, {bucket_end},"
            " {granularity}, {dataset}."
        ),
    )
    cooldown: Duration = Field(
        timedelta(hours=3),
        description="After an alert, the same analyzer and series stay quiet this long.",
    )
    quiet_hours: QuietHours | None = Field(
        None, description="Daily window with no notifications (still logged)."
    )
    history: Duration = Field(
        timedelta(days=8),
        description="How much history the first cycle ingests when the store has none.",
    )
    backfill_grace_period: Duration | None = Field(
        None,
        description=(
            "After downtime, analyse missed buckets up to this far back (backfillGracePeriod"
            "Duration); null: 30d for hourly and daily data, 190d for weekly and monthly."
        ),
    )
    allow_partial: bool = Field(
        False,
        description=(
            "Also analyse the current, incomplete bucket (allowPartialTargetBatches); its"
            " result is redone each cycle until the bucket is complete."
        ),
    )
    batch_cooldown: Duration | None = Field(
        None,
        description=(
            "Analyse a bucket only once its values have not changed for this long"
            " (batchCoolDownPeriod)."
        ),
    )
    retries: int = Field(3, ge=1, description="Attempts per cycle to read a failing source.")
    retry_backoff: Duration = Field(
        timedelta(seconds=2), description="Wait before the first retry; doubles each time."
    )
    failure_alert_after: int = Field(
        3,
        ge=1,
        description="Consecutive failed cycles of a dataset before a pipeline-failure alert.",
    )
    dataset_timestamp_offset: Duration | None = Field(
        timedelta(days=1),
        description=(
            "Do not notify for buckets that ended longer ago than this (no alert storm after"
            " an outage; still logged). null: no limit."
        ),
    )


# --- datasets and metrics -----------------------------------------------------------------


def _parse_slice(value: object) -> object:
    """Accept `os`, `[os, country]` or `{os: [iOS, Android], country: '*'}`."""
    if isinstance(value, str):
        return {"dimensions": {value: "*"}}
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError("a slice list names columns; expected strings like [os, country]")
        return {"dimensions": dict.fromkeys(value, "*")}
    if isinstance(value, dict) and "dimensions" not in value:
        return {"dimensions": value}
    return value


class SliceConfig(Base):
    """A slice: one or more dimension columns, each with all values (`*`) or a list."""

    dimensions: dict[str, Literal["*"] | list[str | int | bool]] = Field(
        description="Dimension column → `*` or the values to keep."
    )

    @field_validator("dimensions")
    @classmethod
    def _valid_columns(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not value:
            raise ValueError("a slice needs at least one dimension column")
        for column in value:
            if not QUALIFIED_NAME.match(column):
                raise ValueError(f"'{column}' is not a column name")
        return value


Slice = Annotated[SliceConfig, BeforeValidator(_parse_slice)]


def _distinct_slices(slices: list[SliceConfig]) -> list[SliceConfig]:
    """The same slice twice would compute the same segments twice."""
    seen: set[str] = set()
    for index, found in enumerate(slices):
        key = repr(sorted((k, repr(v)) for k, v in found.dimensions.items()))
        if key in seen:
            raise ValueError(
                f"slice {index + 1} ({', '.join(found.dimensions)}) is listed twice;"
                " list each slice once"
            )
        seen.add(key)
    return slices


ProfileStat = Literal[
    "count",
    "null_count",
    "null_ratio",
    "mean",
    "median",
    "min",
    "max",
    "stddev",
    "unique_est",
    "unique_est_ratio",
    "count_integral",
    "count_fractional",
    "count_bool",
    "count_string",
    "inferred_type",
    "histogram",
    "frequent_items",
]
DatasetStat = Literal["missing_datapoint", "seconds_since_last_upload"]
CONTINUOUS_STATS: tuple[str, ...] = (
    "count",
    "null_ratio",
    "mean",
    "median",
    "min",
    "max",
    "stddev",
    "unique_est",
    "histogram",
)
DISCRETE_STATS: tuple[str, ...] = (
    "count",
    "null_ratio",
    "unique_est",
    "unique_est_ratio",
    "inferred_type",
    "frequent_items",
)


class ProfileColumn(Base):
    """Profile one column of the dataset's table per bucket and segment, inside the source."""

    column: str = Field(description="Column to profile.")
    kind: Literal["continuous", "discrete"] = Field(
        "continuous",
        description="continuous (numbers: quantile histogram) or discrete (categories: items).",
    )
    stats: list[ProfileStat] | None = Field(
        None,
        description=(
            "Statistics to compute; each becomes the metric `<column>.<stat>`. Default:"
            f" continuous {', '.join(CONTINUOUS_STATS)}; discrete {', '.join(DISCRETE_STATS)}."
        ),
    )
    owners: list[str] | None = Field(None, description="Handles to @mention (default: dataset's).")

    @field_validator("column")
    @classmethod
    def _valid_column(cls, value: str) -> str:
        if not QUALIFIED_NAME.match(value):
            raise ValueError(f"'{value}' is not a valid column name")
        return value

    @property
    def effective_stats(self) -> list[str]:
        """The stats asked for, or the kind's defaults."""
        if self.stats is not None:
            return list(dict.fromkeys(self.stats))
        return list(CONTINUOUS_STATS if self.kind == "continuous" else DISCRETE_STATS)


class MetricConfig(Base):
    """One metric: an aggregate formula in the source's SQL dialect."""

    name: Name = Field(description="Unique metric name (letters, digits, _).")
    formula: str | None = Field(
        None,
        description=(
            "Aggregate SQL expression in the source's dialect, e.g. count(DISTINCT user_id)."
            " Not used with Python sources."
        ),
    )
    title: str | None = Field(None, description="Human title for alerts and charts.")
    description: str = Field("", description="What the metric means.")
    owners: list[str] | None = Field(None, description="Handles to @mention (default: dataset's).")
    links: dict[str, str] | None = Field(None, description="URL templates (default: dataset's).")
    fill: Fill | None = Field(None, description="Missing-bucket policy (default: dataset's).")
    rollup: Literal["sum", "mean", "min", "max", "last"] | None = Field(
        None,
        description=(
            "How coarser buckets derive from this metric's stored values, for analyzers with a"
            " coarser granularity. Only for aggregates that roll up (counts, sums, min, max)."
            " Without it, a SQL or files source recomputes the metric at the coarser granularity"
            " (right for distinct counts, ratios and medians); a Python or Prometheus source"
            " needs it."
        ),
    )
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Analyzer id → parameters that differ for this metric, e.g. {threshold: 0.5}.",
    )
    skip_analyzers: list[str] = Field(
        default_factory=list, description="Analyzer ids that must not run on this metric."
    )


class DatasetConfig(Base):
    """A group of metrics read from one table in one query per window."""

    name: Name = Field(description="Unique dataset name.")
    source: str = Field(description="Name of a source defined in vigil.yaml.")
    table: str | None = Field(None, description="Table (or schema.table) to read.")
    query: str | None = Field(None, description="A SELECT to read instead of a table.")
    time_column: str | None = Field(None, description="Event time column (required for SQL).")
    granularity: GranularityName | None = Field(None, description="Bucket width.")
    delay: Duration | None = Field(None, description="Wait after a bucket ends for late data.")
    lookback: int | None = Field(None, ge=0, description="Buckets re-read each cycle.")
    fill: Fill | None = Field(None, description="Missing-bucket policy for its metrics.")
    schedule: Cron | None = Field(
        None,
        description=(
            "Cron (project time zone) of when to run; default: as each bucket completes."
            " A run analyses every bucket completed since the last."
        ),
    )
    allow_partial: bool | None = Field(None, description="Overrides defaults.allow_partial.")
    batch_cooldown: Duration | None = Field(None, description="Overrides defaults.batch_cooldown.")
    filters: list[str] = Field(
        default_factory=list, description="SQL predicates ANDed into the WHERE clause."
    )
    slices: Annotated[list[Slice], AfterValidator(_distinct_slices)] = Field(
        default_factory=list,
        description="Slices computed besides the total: `os`, `[os, country]`, {os: [iOS]}.",
    )
    include_total: bool = Field(True, description="Also compute the unsliced total.")
    owners: list[str] | None = Field(None, description="Handles to @mention.")
    segment_owners: list[SegmentOwners] = Field(
        default_factory=list, description="Extra owners per slice value."
    )
    links: dict[str, str] | None = Field(None, description="URL templates.")
    metrics: list[MetricConfig] = Field(default_factory=list, description="The metrics.")
    profile: list[ProfileColumn] = Field(
        default_factory=list,
        description="Columns to profile per bucket (metrics named `<column>.<stat>`).",
    )
    dataset_stats: list[DatasetStat] = Field(
        default_factory=list,
        description="Dataset-level metrics: missing_datapoint (1 when a bucket has no rows),"
        " seconds_since_last_upload (age of the newest row at the bucket's end).",
    )

    @field_validator("table")
    @classmethod
    def _valid_table(cls, value: str | None) -> str | None:
        if value is not None and not QUALIFIED_NAME.match(value):
            raise ValueError(f"'{value}' is not a table name; expected name or schema.name")
        return value

    @field_validator("time_column")
    @classmethod
    def _valid_time_column(cls, value: str | None) -> str | None:
        if value is not None and not QUALIFIED_NAME.match(value):
            raise ValueError(f"'{value}' is not a column name")
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> DatasetConfig:
        if self.table and self.query:
            raise ValueError("give either table or query, not both")
        return self


# --- analyzers ----------------------------------------------------------------------------


class TimeRange(Base):
    """A fixed span of time, ISO 8601 (naive = project time zone)."""

    start: datetime = Field(description="Start (inclusive).")
    end: datetime = Field(description="End (exclusive).")


# --- baselines ----------------------------------------------------------------------------


class TrailingWindowBaseline(Base):
    """The `size` buckets before the target (skipping `offset` buckets right before it)."""

    type: Literal["trailing_window"] = Field(description="Baseline type.")
    size: int = Field(ge=1, description="Buckets in the window.")
    offset: int = Field(
        0, ge=0, description="Buckets left out between the window and the target (0: adjacent)."
    )
    exclusion_ranges: list[TimeRange] = Field(
        default_factory=list, description="Buckets starting in these ranges are left out."
    )
    exclusion_cron: list[Cron] = Field(
        default_factory=list,
        description="Buckets whose start matches a cron (project zone) are left out (weekends).",
    )


class TimeRangeBaseline(Base):
    """A fixed span of history, e.g. a known-good launch week."""

    type: Literal["time_range"] = Field(description="Baseline type.")
    start: datetime = Field(description="Start (inclusive), ISO 8601; naive = project zone.")
    end: datetime = Field(description="End (exclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> TimeRangeBaseline:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ReferenceBaseline(Base):
    """A named snapshot saved with `vigil reference create` (values and distributions)."""

    type: Literal["reference"] = Field(description="Baseline type.")
    name: Name = Field(description="Name of the stored reference.")


class LaggedBaseline(Base):
    """The same bucket N periods ago, one baseline value per lag (seasonal same-time)."""

    type: Literal["lagged"] = Field(description="Baseline type.")
    lags: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=1), timedelta(days=7)],
        min_length=1,
        description="How long ago each baseline bucket is.",
    )


BaselineConfig = Annotated[
    TrailingWindowBaseline | TimeRangeBaseline | ReferenceBaseline | LaggedBaseline,
    Field(discriminator="type"),
]


def _trailing(size: int) -> Any:
    return Field(
        default_factory=lambda: TrailingWindowBaseline(type="trailing_window", size=size),
        description=f"Baseline (default: trailing_window of {size} buckets).",
    )


# --- targets ------------------------------------------------------------------------------

SegmentSelector = dict[str, str]


class TargetMatrix(Base):
    """Which columns or dataset metrics, and which segments, an analyzer checks."""

    type: Literal["column", "dataset"] = Field(
        "dataset",
        description="`column`: profiled columns (with the analyzer's `metric` stat);"
        " `dataset`: dataset-level metrics (formulas, missing_datapoint, …).",
    )
    include: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Column or metric names, globs (`*`), or groups: group:continuous,"
        " group:discrete.",
    )
    exclude: list[str] = Field(default_factory=list, description="Names, globs or groups to skip.")
    segments: list[SegmentSelector] | None = Field(
        None,
        description="Segments: {} = overall, {os: iOS} exact, {os: '*'} every value as its own"
        " series (default: the analyzer's `segments`).",
    )
    exclude_segments: list[SegmentSelector] = Field(
        default_factory=list, description="Segments to skip (same forms)."
    )


class AnalyzerBase(Base):
    """Fields every analyzer has: its id and which series it checks."""

    id: Name = Field(description="Unique analyzer id, referenced by monitors.")
    metrics: list[str] = Field(
        default_factory=lambda: ["*"], description="Metric names or globs (`likes*`) to check."
    )
    segments: Literal["all", "total", "slices"] | list[SegmentSelector] = Field(
        "all",
        description="`all`, `total`, `slices`, or a list of selectors ({os: iOS}, {os: '*'}).",
    )
    target_matrix: TargetMatrix | None = Field(
        None, description="WhyLabs-style target (replaces `metrics` when given)."
    )
    metric: str | None = Field(
        None,
        description="With a column target: the profile stat checked on each column (mean,"
        " histogram, frequent_items, …).",
    )
    granularity: GranularityName | None = Field(
        None,
        description=(
            "Analyse coarser buckets than the dataset's (e.g. 1h over 15m data), rolled up with"
            " each metric's `rollup`; default: the dataset's granularity."
        ),
    )
    exclusion_ranges: list[TimeRange] = Field(
        default_factory=list,
        description="Target buckets starting in these ranges are not analysed (holidays).",
    )
    exclusion_cron: list[Cron] = Field(
        default_factory=list,
        description="Target buckets whose start matches a cron (project zone) are not analysed.",
    )

    @model_validator(mode="after")
    def _column_target_has_metric(self) -> AnalyzerBase:
        matrix = self.target_matrix
        if matrix is not None and matrix.type == "column" and self.metric is None:
            raise ValueError(
                "a column target_matrix needs `metric`: the profile stat to check (e.g. mean)"
            )
        return self


class SameTimeComparisonConfig(AnalyzerBase):
    """Now vs the same buckets k days earlier: mean of the last N buckets against each lag."""

    type: Literal["same_time_comparison"] = Field(description="Analysis type.")
    buckets: int = Field(3, ge=1, description="Average the last N buckets (smooths noise).")
    lags: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=1), timedelta(days=7)],
        description="Compare with the same buckets this long ago (each lag).",
        min_length=1,
    )
    threshold: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="Symmetric relative deviation (x−b)/max(|x|,|b|) needed against every lag.",
    )
    direction: Direction = Field(Direction.BOTH, description="up, down or both.")
    min_value: float = Field(
        0.0,
        ge=0,
        description="Ignore the series while both now and every baseline are below this.",
    )


class FixedConfig(AnalyzerBase):
    """Static bounds: anomaly when the value is above `upper` or below `lower`."""

    type: Literal["fixed"] = Field(description="Analysis type.")
    upper: float | None = Field(None, description="Upper bound (inclusive is fine).")
    lower: float | None = Field(None, description="Lower bound.")
    n_consecutive: int = Field(
        1, ge=1, description="Anomaly only when this many buckets in a row (ending now) breach."
    )

    @model_validator(mode="after")
    def _has_bound(self) -> FixedConfig:
        if self.upper is None and self.lower is None:
            raise ValueError("a fixed analyzer needs upper, lower or both")
        if self.upper is not None and self.lower is not None and self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) is above upper ({self.upper})")
        return self


class AutoConfig(AnalyzerBase):
    """A detector that needs no tuning: daily and weekly seasons, level shifts, trends,
    spikes and dips, from a few days of history; a score in [0, 1]."""

    type: Literal["auto"] = Field(description="Analysis type.")
    threshold: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Anomaly when the score is at least this (0–1). The score is −log10 of how"
        " rare the surprise is in the series' own history, over 4.4: 0.5 is rarer than 1 in"
        " about 160, 0.6 than 1 in 440, 0.7 than 1 in 1,200. Past 500 buckets of history the"
        " bar rises slowly (twice as rare at 5,000, three times at 20,000).",
    )
    window: int | None = Field(
        None,
        ge=10,
        description="Buckets of history the detector learns from before each target"
        " (default: 14 days' worth, at least 60).",
    )


class StaticLimits(Base):
    """Static thresholds that bound a computed band."""

    max_upper_threshold: float | None = Field(
        None, description="Static ceiling for the computed upper bound (see limit_type)."
    )
    min_lower_threshold: float | None = Field(
        None, description="Static floor for the computed lower bound (see limit_type)."
    )
    limit_type: Literal["or", "and"] = Field(
        "or",
        description="`or`: the static thresholds cap the computed bounds; `and`: an anomaly"
        " must be beyond both the computed and the static bound.",
    )


class StddevConfig(AnalyzerBase, StaticLimits):
    """Band: baseline mean ± factor · sample stddev."""

    type: Literal["stddev"] = Field(description="Analysis type.")
    factor: float = Field(3.0, gt=0, description="Width of the band in standard deviations.")
    window: int | None = Field(
        None, ge=2, description="Shorthand for baseline: {type: trailing_window, size: N}."
    )
    baseline: BaselineConfig = _trailing(96)
    min_batch_size: int = Field(
        8, ge=2, description="Fewer non-missing baseline values gives insufficient_baseline."
    )
    direction: Direction = Field(Direction.BOTH, description="up, down or both.")

    @model_validator(mode="before")
    @classmethod
    def _window_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("window") is not None:
            if data.get("baseline") is not None:
                raise ValueError("give either window or baseline, not both")
            data = {**data, "baseline": {"type": "trailing_window", "size": data["window"]}}
        return data


class DiffConfig(AnalyzerBase):
    """Difference from the baseline aggregate, in percent (pct) or absolute units (abs)."""

    type: Literal["diff"] = Field(description="Analysis type.")
    mode: Literal["pct", "abs"] = Field("pct", description="pct: |B−T|/|B|·100; abs: |B−T|.")
    threshold: float = Field(gt=0, description="Anomaly when the difference is above this.")
    direction: Direction = Field(
        Direction.BOTH, description="up (target above baseline), down, or both."
    )
    aggregate: Literal["mean", "sum", "median", "min", "max"] = Field(
        "mean",
        description="How the baseline values become B: the mean per bucket (default) or the sum"
        " over the window (a merged count).",
    )
    baseline: BaselineConfig = _trailing(7)
    min_batch_size: int = Field(1, ge=1, description="Fewer baseline values: insufficient.")


class SeasonalConfig(AnalyzerBase, StaticLimits):
    """SARIMA one-step forecast with a (1 − alpha) interval from a trailing window."""

    type: Literal["seasonal"] = Field(description="Analysis type.")
    algorithm: Literal["arima"] = Field("arima", description="Forecasting algorithm.")
    order: tuple[int, int, int] = Field(
        (1, 0, 0), description="Non-seasonal (p, d, q); q must be 0 (autoregressive terms only)."
    )
    seasonal_order: tuple[int, int, int, int] = Field(
        (2, 1, 0, 7),
        description="Seasonal (P, D, Q, s); Q must be 0. s = 7 is weekly for daily data,"
        " 24 daily for hourly data.",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="The band is the (1 − alpha) interval.")
    stddev_factor: float | None = Field(
        None,
        gt=0,
        description="Caps the band's half-width at this many stddevs of the last"
        " `stddev_max_batch_size` baseline values.",
    )
    stddev_max_batch_size: int = Field(30, ge=2, description="Values used for stddev_factor.")
    stddev_time_ranges: list[TimeRange] = Field(
        default_factory=list,
        description="Known event periods: their values are left out of the baseline fit.",
    )
    baseline: TrailingWindowBaseline = Field(
        default_factory=lambda: TrailingWindowBaseline(type="trailing_window", size=90),
        description="Trailing window to fit on (default 90 buckets).",
    )
    min_batch_size: int = Field(
        30,
        ge=3,
        description="Fewer observed values: a fallback band mean ± z·stddev instead of SARIMA.",
    )
    direction: Direction = Field(Direction.BOTH, description="up, down or both.")

    @model_validator(mode="after")
    def _autoregressive(self) -> SeasonalConfig:
        if self.order[2] or self.seasonal_order[2]:
            raise ValueError(
                "moving-average orders are not supported; expected q = 0 and Q = 0"
                " (use more autoregressive terms instead)"
            )
        if self.seasonal_order[3] < 2 and (self.seasonal_order[0] or self.seasonal_order[1]):
            raise ValueError("seasonal period s must be at least 2")
        if min(*self.order, *self.seasonal_order) < 0:
            raise ValueError("orders must not be negative")
        if self.baseline.offset:
            raise ValueError("a seasonal baseline forecasts the next bucket; expected offset 0")
        return self


DRIFT_THRESHOLDS = {"hellinger": 0.7, "jensenshannon": 0.1, "kl_divergence": 0.1, "psi": 0.2}


class DriftConfig(AnalyzerBase):
    """Distance between the target bucket's distribution and the baseline's."""

    type: Literal["drift"] = Field(description="Analysis type.")
    algorithm: Literal["hellinger", "jensenshannon", "kl_divergence", "psi"] = Field(
        "hellinger", description="Distance: hellinger, jensenshannon, kl_divergence or psi."
    )
    threshold: float | None = Field(
        None,
        gt=0,
        description="Anomaly above this distance (default: hellinger 0.7, jensenshannon 0.1,"
        " kl_divergence 0.1, psi 0.2).",
    )
    bins: int = Field(20, ge=2, description="Histogram bins for numeric columns.")
    baseline: BaselineConfig = _trailing(7)
    min_batch_size: int = Field(1, ge=1, description="Fewer baseline buckets: insufficient.")

    @property
    def effective_threshold(self) -> float:
        """The threshold, or the algorithm's default."""
        return self.threshold if self.threshold is not None else DRIFT_THRESHOLDS[self.algorithm]


ExpectedValue = float | int | str


class ListComparisonConfig(AnalyzerBase):
    """The value must (in) or must not (not_in) be one of the expected values."""

    type: Literal["list_comparison"] = Field(description="Analysis type.")
    operator: Literal["in", "not_in"] = Field(
        description="in: anomaly when the value is not listed; not_in: anomaly when it is."
    )
    expected: list[ExpectedValue] | None = Field(
        None, description="Expected values; absent: the baseline's values."
    )
    baseline: BaselineConfig = _trailing(7)


class FrequentStringComparisonConfig(AnalyzerBase):
    """Compare the frequent items of a discrete column with the baseline's."""

    type: Literal["frequent_string_comparison"] = Field(description="Analysis type.")
    operator: Literal["eq", "target_includes_all_baseline", "baseline_includes_all_target"] = Field(
        description="What must hold between the target's and the baseline's items."
    )
    sample_size: int = Field(5, ge=1, description="Differing items quoted in the result.")
    baseline: BaselineConfig = _trailing(7)
    min_batch_size: int = Field(1, ge=1, description="Fewer baseline buckets: insufficient.")


class MonotonicConfig(AnalyzerBase):
    """Steady growth or decline: counts the steps in `direction` over the recent buckets."""

    type: Literal["monotonic"] = Field(description="Analysis type.")
    direction: Annotated[
        Literal["increasing", "decreasing"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = Field(description="increasing or decreasing (INCREASING / DECREASING accepted).")
    num_buckets: int = Field(
        ge=1, description="Anomaly when at least this many steps go in `direction`."
    )
    target_size: int = Field(1, ge=1, description="Buckets ending at the target that are checked.")
    window: int | None = Field(
        None,
        ge=1,
        description="Buckets before the target buckets (default: num_buckets − target_size + 1,"
        " so that default settings mean num_buckets steps in a row).",
    )


class ComparisonConfig(AnalyzerBase):
    """The value must satisfy `value <operator> expected`, else an anomaly."""

    type: Literal["comparison"] = Field(description="Analysis type.")
    operator: Literal["eq", "gt", "lt", "ge", "le"] = Field(
        description="The healthy relation of the value to `expected`."
    )
    expected: ExpectedValue | None = Field(
        None, description="Expected value; absent: the baseline's mean."
    )
    baseline: BaselineConfig = _trailing(1)


class CompositeConfig(AnalyzerBase):
    """Combine other analyzers' results for the same series and bucket."""

    type: Literal["conjunction", "disjunction"] = Field(
        description="conjunction: anomaly when all are; disjunction: when any is."
    )
    analyzers: list[Name] = Field(min_length=2, description="Ids of the combined analyzers.")


AnalyzerConfig = Annotated[
    SameTimeComparisonConfig
    | AutoConfig
    | FixedConfig
    | StddevConfig
    | DiffConfig
    | SeasonalConfig
    | DriftConfig
    | ListComparisonConfig
    | FrequentStringComparisonConfig
    | MonotonicConfig
    | ComparisonConfig
    | CompositeConfig,
    Field(discriminator="type"),
]


# --- monitors -----------------------------------------------------------------------------


class MuteWindow(Base):
    """A recurring mute: from each fire time of `cron` (project zone), for `duration`."""

    cron: Cron = Field(description="When each window starts, e.g. '0 2 * * 0' (Sunday 02:00).")
    duration: Duration = Field(description="How long each window lasts.")


class MessageTemplate(Base):
    """Jinja2 templates (sandboxed) for a message; a part left out keeps the default."""

    title: str | None = Field(None, description="Title (chart caption, email subject).")
    text: str | None = Field(None, description="Plain text (console, Slack, Teams, webhook).")
    html: str | None = Field(None, description="HTML (Telegram, email); values are escaped.")


class Escalation(Base):
    """Raise an alert's severity when its deviation is large."""

    min_deviation: float = Field(gt=0, description="|deviation| (fraction) at least this…")
    severity: Severity = Field(description="…gives this severity.")


class MonitorConfig(Base):
    """Which analyzers' anomalies reach which channels, and when to stay quiet."""

    id: Name = Field(description="Unique monitor id.")
    analyzers: list[str] = Field(description="Analyzer ids, or ['*'] for all.")
    channels: list[str] = Field(
        default_factory=lambda: ["console"], description="Channel names from vigil.yaml."
    )
    severity: Severity = Field(Severity.HIGH, description="critical, high, medium, low, info.")
    escalations: list[Escalation] = Field(
        default_factory=list,
        description="Severity by deviation, e.g. [{min_deviation: 0.5, severity: critical}].",
    )
    routes: dict[Severity, list[str]] = Field(
        default_factory=dict,
        description="Severity → channels; a severity not listed uses `channels`.",
    )
    mode: Annotated[
        Literal["every_anomaly", "digest"],
        BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v),
    ] = Field(
        "every_anomaly",
        description=(
            "`every_anomaly`: a message per series; `digest`: one message per run summarising"
            " all anomalies, grouped by metric and segment (EVERY_ANOMALY / DIGEST accepted)."
        ),
    )
    digest_top: int = Field(5, ge=1, description="Anomalies shown in detail in a digest.")
    group: Literal["dataset", "monitor", "none"] = Field(
        "dataset",
        description=(
            "One message per incident: the anomalies of one bucket in one `dataset` (or all"
            " the `monitor` routes) are one message, across metrics, slices and analyzers;"
            " `none`: a message per series."
        ),
    )
    template: MessageTemplate | None = Field(
        None, description="Custom message for every channel (docs/templates.md)."
    )
    channel_templates: dict[str, MessageTemplate] = Field(
        default_factory=dict, description="Channel name → custom message for that channel."
    )
    cooldown: Duration | None = Field(None, description="Overrides defaults.cooldown.")
    quiet_hours: QuietHours | Literal["off"] | None = Field(
        None, description="Overrides defaults.quiet_hours; `off` disables them."
    )
    dataset_timestamp_offset: Duration | None = Field(
        None, description="Overrides defaults.dataset_timestamp_offset for this monitor."
    )
    mention_owners: bool = Field(True, description="@mention metric and slice owners.")
    chart: bool = Field(True, description="Attach the today/yesterday/week-ago chart.")
    metrics: list[str] = Field(
        default_factory=lambda: ["*"], description="Only anomalies of these metrics (globs)."
    )
    exclude_metrics: list[str] = Field(
        default_factory=list, description="Never anomalies of these metrics (globs)."
    )
    segments: Literal["all", "total", "slices"] | list[dict[str, str]] = Field(
        "all", description="Only these segments: `all`, `total`, `slices` or selectors."
    )
    direction: Direction = Field(
        Direction.BOTH, description="Only anomalies above (`up`) or below (`down`) expectation."
    )
    min_severity: Severity | None = Field(
        None, description="Only alerts at least this severe (after escalations)."
    )
    renotify_factor: float | None = Field(
        None,
        gt=1,
        description=(
            "Notify again within the cooldown when an open incident's deviation grows to this"
            " many times the last notified one (e.g. 1.5)."
        ),
    )
    resolve_after: int | None = Field(
        None,
        ge=1,
        description="Send a 'resolved' message once the series has been normal this many buckets.",
    )
    mute_windows: list[MuteWindow] = Field(
        default_factory=list,
        description="Recurring windows with no notifications (logged as mute_window).",
    )
    exclusion_ranges: list[TimeRange] = Field(
        default_factory=list, description="Fixed spans (holidays) with no notifications."
    )


# --- files --------------------------------------------------------------------------------


class DefinitionsFile(Base):
    """An included file: datasets, analyzers and monitors (any of them)."""

    datasets: list[DatasetConfig] = Field(default_factory=list, description="Datasets.")
    analyzers: list[AnalyzerConfig] = Field(default_factory=list, description="Analyzers.")
    monitors: list[MonitorConfig] = Field(default_factory=list, description="Monitors.")


class SchedulerConfig(Base):
    """How `vigil run` behaves."""

    lock_ttl: Duration = Field(
        timedelta(minutes=10),
        description="A leader that has not renewed its lock for this long is replaced.",
    )
    hot_reload: bool = Field(True, description="Reload the configuration when its files change.")


class WebToken(Base):
    """A bearer token for the API and dashboard, and the role it grants."""

    token: SecretStr = Field(description="The token, from ${ENV_VAR}.")
    role: Literal["viewer", "admin"] = Field(
        "viewer",
        description="viewer reads; admin also creates silences, gives feedback and"
        " sees the configuration.",
    )

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        return _credential(value, "token", MIN_TOKEN_LENGTH)


MIN_TOKEN_LENGTH = 16
MIN_PASSWORD_LENGTH = 8


def _credential(value: SecretStr, what: str, minimum: int) -> SecretStr:
    """An empty, blank or short credential (an unset ${VAR:-}) would let anyone in."""
    text = value.get_secret_value()
    if not text.strip():
        raise ValueError(f"{what} is empty; expected a secret from an environment variable")
    if len(text.strip()) < minimum:
        raise ValueError(f"{what} is shorter than {minimum} characters; expected a longer secret")
    return value


class WebUser(Base):
    """A user for HTTP basic auth, and the role it grants."""

    name: str = Field(description="User name.")
    password: SecretStr = Field(description="Password, from ${ENV_VAR}.")
    role: Literal["viewer", "admin"] = Field("viewer", description="viewer or admin.")

    @field_validator("password")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        return _credential(value, "password", MIN_PASSWORD_LENGTH)


class WebConfig(Base):
    """The dashboard and REST API (`vigil serve`, and `vigil run` alongside the scheduler)."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0: any free one).")
    tokens: list[WebToken] = Field(
        default_factory=list, description="Bearer tokens (Authorization: Bearer …)."
    )
    users: list[WebUser] = Field(default_factory=list, description="Basic-auth users.")
    with_run: bool = Field(True, description="Whether `vigil run` also serves the dashboard.")

    @property
    def has_auth(self) -> bool:
        """Whether any credentials are configured."""
        return bool(self.tokens or self.users)


def _console_only() -> dict[str, ChannelConfig]:
    return {"console": ConsoleChannelConfig(type="console")}


class ProjectFile(DefinitionsFile):
    """vigil.yaml: the project's settings, plus optionally its own definitions."""

    name: str = Field("vigil", description="Project name, shown in alerts.")
    timezone: ZoneName = Field("UTC", description="IANA zone for days, quiet hours and charts.")
    store: StoreConfig = Field(
        default_factory=lambda: DuckDBStoreConfig(), description="Metric store."
    )
    sources: dict[str, SourceConfig] = Field(default_factory=dict, description="Data sources.")
    channels: dict[str, ChannelConfig] = Field(
        default_factory=lambda: _console_only(),
        description="Notification channels by name.",
    )
    defaults: Defaults = Field(default_factory=lambda: Defaults(), description="Inherited.")
    include: list[str] = Field(
        default_factory=lambda: ["metrics/*.yaml", "monitors/*.yaml"],
        description="Glob patterns (relative to the project) of definition files.",
    )
    charts_dir: str | None = Field(
        "charts", description="Where alert charts are also saved as PNG; null to not save."
    )
    public_url: str | None = Field(
        None, description="Base URL of the Vigil dashboard, used in the default chart link."
    )
    scheduler: SchedulerConfig = Field(
        default_factory=lambda: SchedulerConfig(), description="`vigil run` settings."
    )
    web: WebConfig = Field(
        default_factory=lambda: WebConfig(),
        description="Dashboard and API. Without tokens or users it serves only on a loopback"
        " address, to anyone there, as admin.",
    )
