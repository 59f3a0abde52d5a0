"""Small typed records shared by every stage: series keys, buckets, results, alerts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from functools import cached_property

from vigil.timeutil import Granularity


@dataclass(frozen=True, order=True)
class Segment:
    """The slice a series belongs to: sorted (dimension, value) pairs; empty for the total."""

    tags: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, tags: Mapping[str, object]) -> Segment:
        """Build a segment from a mapping of dimension to value."""
        return cls(tuple(sorted((str(k), str(v)) for k, v in tags.items())))

    @classmethod
    def from_key(cls, key: str) -> Segment:
        """Parse the canonical JSON form used in the store."""
        return cls.of(json.loads(key)) if key else cls()

    @cached_property
    def key(self) -> str:
        """Canonical JSON form, stable across processes; `{}` for the total (computed once:
        every result and alert of the series asks for it)."""
        return json.dumps(dict(self.tags), sort_keys=True, ensure_ascii=False)

    @property
    def is_total(self) -> bool:
        """Whether this is the overall (unsliced) segment."""
        return not self.tags

    def as_dict(self) -> dict[str, str]:
        """The tags as a plain dict."""
        return dict(self.tags)

    def label(self) -> str:
        """Human-readable form: `os=iOS, country=RU`, or `total`."""
        return ", ".join(f"{k}={v}" for k, v in self.tags) if self.tags else "total"

    @classmethod
    def from_label(cls, text: str) -> Segment:
        """Parse `os=iOS, country=RU` (or `total`, or nothing); ValueError if malformed."""
        text = text.strip()
        if text in ("", "total"):
            return cls()
        tags: dict[str, str] = {}
        for part in text.split(","):
            name, sep, value = part.strip().partition("=")
            if not sep or not name.strip():
                raise ValueError(
                    f"segment '{text}': expected dimension=value pairs separated by commas,"
                    " e.g. os=iOS, country=RU (or total)"
                )
            tags[name.strip()] = value.strip()
        return cls.of(tags)

    def matches(self, selector: Mapping[str, str]) -> bool:
        """Whether every key of `selector` has the given value in this segment (`*` = any)."""
        tags = dict(self.tags)
        return all(k in tags and (v == "*" or tags[k] == v) for k, v in selector.items())


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One time series: a metric in one segment."""

    metric: str
    segment: Segment = field(default_factory=Segment)

    def label(self) -> str:
        """Human-readable `metric [segment]`."""
        return f"{self.metric} [{self.segment.label()}]"


@dataclass(frozen=True, order=True)
class Bucket:
    """A time bucket: its start (UTC) and its granularity."""

    start: datetime
    granularity: Granularity

    @property
    def end(self) -> datetime:
        """The exclusive end of the bucket."""
        return self.granularity.next(self.start)


class Status(StrEnum):
    """Outcome of one analysis of one series at one bucket."""

    OK = "ok"
    ANOMALY = "anomaly"
    INSUFFICIENT = "insufficient_baseline"
    NO_DATA = "no_data"


class Direction(StrEnum):
    """Which side of the expectation counts as anomalous."""

    UP = "up"
    DOWN = "down"
    BOTH = "both"


class Severity(StrEnum):
    """How urgent an alert is."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


@dataclass(frozen=True)
class AnalysisResult:
    """One check of one series at one bucket by one analyzer: the alert log's row."""

    analyzer: str
    analyzer_type: str
    series: SeriesKey
    bucket: Bucket
    value: float | None
    status: Status
    expected_lower: float | None = None
    expected_upper: float | None = None
    deviation: float | None = None
    baselines: dict[str, float | None] = field(default_factory=dict)
    reason: str = ""
    config_hash: str = ""
    is_partial: bool = False

    @property
    def is_anomaly(self) -> bool:
        """Whether this result flags an anomaly."""
        return self.status is Status.ANOMALY


class AlertStatus(StrEnum):
    """What a monitor decided to do with an anomaly."""

    NOTIFY = "notify"
    COOLDOWN = "cooldown"
    QUIET_HOURS = "quiet_hours"
    MUTED = "muted"
    STALE = "stale"
    SILENCED = "silenced"
    MUTE_WINDOW = "mute_window"
    EXPECTED = "expected"  # someone marked this series at this time of day as expected
    LLM_REJECTED = "llm_rejected"  # `llm: confirm` and the model thought it normal


# The alerts a person was told of (or would have been, notifications off), and the filters
# that lists of alerts (the CLI, the API, the alerts page) take: those, one decision, or all.
SENT_STATUSES = (AlertStatus.NOTIFY, AlertStatus.MUTED)
ALERT_FILTERS = ("sent", *(s.value for s in AlertStatus if s is not AlertStatus.NOTIFY), "all")


@dataclass(frozen=True)
class Alert:
    """A monitor's decision about one anomalous result."""

    monitor: str
    severity: Severity
    result: AnalysisResult
    status: AlertStatus
    created_at: datetime


class DeliveryStatus(StrEnum):
    """Where a notification is in the outbox."""

    PENDING = "pending"
    SENDING = "sending"  # a part is on its way: if the process dies now, it may have arrived
    SENT = "sent"
    FAILED = "failed"
    GAVE_UP = "gave_up"
    MERGED = "merged"  # a later message of the same incident and bucket says it all


@dataclass(frozen=True)
class Notification:
    """One message for one channel about one series at one bucket (one or more alerts)."""

    key: str
    monitor: str
    channel: str
    series: SeriesKey
    bucket: Bucket
    title: str
    text: str
    html: str
    image: bytes | None
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    parts_sent: int = 0
    last_error: str = ""
    recipients: str = ""
    severity: str = ""
    kind: str = "alert"
    resent: bool = False  # an earlier attempt died mid-send: the part in flight may repeat
    # The series (monitor, metric, segment key) the message tells about, for its resolution.
    members: tuple[tuple[str, str, str], ...] = ()
    # The channel's id of the sent message (Telegram message_id, Slack "channel ts").
    remote_ref: str = ""
    # For a resolution: the key of the message it edits and answers.
    reply_to: str = ""


@dataclass(frozen=True)
class ChatAction:
    """A button pressed under a message in a chat (or refused), recorded once per press."""

    id: str  # unique per press: the channel and its update id (Telegram) or action ts (Slack)
    channel: str
    seq: int  # the channel's update number, to resume polling after it (0 when it has none)
    message_key: str  # the notification acted on ("" when it was refused before finding one)
    action: str  # ack, silence_1h, silence_4h, silence_tomorrow, false_alarm, expected, refused
    actor: str  # who pressed it, as the chat names them (@anna)
    outcome: str  # what was done, or why it was refused
    created_at: datetime


@dataclass(frozen=True)
class RunRecord:
    """One stage of one job run, for the run log."""

    run_id: str
    kind: str
    dataset: str
    stage: str
    started_at: datetime
    finished_at: datetime
    status: str
    rows_in: int = 0
    rows_out: int = 0
    error: str = ""


@dataclass(frozen=True)
class PipelineState:
    """Whether a dataset's source keeps failing, and whether that was alerted."""

    dataset: str
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    alerted: bool = False
    last_error: str = ""
    silent_since: datetime | None = None
    silence_alerted: bool = False


@dataclass(frozen=True)
class Silence:
    """A manual mute: matching anomalies are still logged, just not sent."""

    metric: str
    segment: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    reason: str
    monitor: str | None = None
    id: int = 0
    expired_at: datetime | None = None

    def covers(self, monitor: str, series: SeriesKey, at: datetime) -> bool:
        """Whether this silence applies to the monitor's anomaly on the series at `at`."""
        end = min(self.ends_at, self.expired_at) if self.expired_at else self.ends_at
        return (
            self.starts_at <= at < end
            and (self.monitor is None or self.monitor == monitor)
            and fnmatchcase(series.metric, self.metric)
            and series.segment.matches(self.segment)
        )


class FeedbackLabel(StrEnum):
    """What a person says an alert was."""

    TRUE_ANOMALY = "true_anomaly"
    EXPECTED = "expected"
    FALSE_ALARM = "false_alarm"


@dataclass(frozen=True)
class Feedback:
    """A person's verdict on one alert (monitor, analyzer, series, bucket); the latest wins."""

    monitor: str
    analyzer: str
    series: SeriesKey
    bucket: Bucket
    label: FeedbackLabel
    note: str = ""
    author: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class Incident:
    """A run of anomalies of one series under one monitor, from opening to resolution."""

    monitor: str
    series: SeriesKey
    granularity: Granularity
    opened_bucket: datetime
    last_anomaly_bucket: datetime
    notified_deviation: float | None = None
    normal_streak: int = 0
    status: str = "open"
    resolved_bucket: datetime | None = None
    id: int = 0
