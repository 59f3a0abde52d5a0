"""A simulated social app: feed and messenger events with cycles, growth, noise and incidents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

STEP = timedelta(minutes=15)
OS_NAMES = ("Android", "iOS")
OS_SHARE = (0.62, 0.38)
PEAK_FEED_USERS = 1400
PEAK_MESSENGER_USERS = 420
BASE_CTR = (0.20, 0.23)


@dataclass(frozen=True)
class Incident:
    """An injected problem: what it affects, from when, for how long, and which metrics show it."""

    name: str
    description: str
    start: datetime
    duration: timedelta
    metrics: tuple[str, ...]

    @property
    def end(self) -> datetime:
        """When the incident is over."""
        return self.start + self.duration


def plan_incidents(end: datetime) -> list[Incident]:
    """Five incidents of different kinds over the last three days before `end`."""
    day = timedelta(days=1)

    def at(days_back: int, hour: int, minute: int = 0) -> datetime:
        return end - days_back * day + timedelta(hours=hour, minutes=minute)

    feed = ("feed_users", "views", "likes")
    messenger = ("messenger_users", "messages")
    return [
        Incident(
            "android_outage",
            "Android app outage: feed and messenger on Android collapse",
            at(3, 13),
            timedelta(hours=1),
            feed + messenger,
        ),
        Incident(
            "like_button",
            "Broken like button: likes and CTR drop, views unchanged",
            at(2, 10, 30),
            timedelta(hours=2),
            ("likes", "ctr", "likes_per_user"),
        ),
        Incident(
            "messenger_outage",
            "Messenger outage: no messages are sent",
            at(2, 19, 15),
            timedelta(minutes=45),
            (*messenger, "messages_per_user"),
        ),
        Incident(
            "traffic_spike",
            "Traffic spike from a push campaign",
            at(1, 11, 30),
            timedelta(hours=1),
            feed,
        ),
        Incident(
            "pipeline_stall",
            "Data pipeline stall: no events arrive at all",
            at(1, 16),
            timedelta(minutes=45),
            feed + messenger,
        ),
    ]


def _shape(times: pd.DatetimeIndex, start: datetime) -> np.ndarray:
    """Relative activity: daily cycle (low at 4:00, high in the evening), weekends, growth."""
    hours = times.hour + times.minute / 60
    daily = (
        0.55 - 0.45 * np.cos(2 * np.pi * (hours - 4) / 24) + 0.08 * np.exp(-((hours - 21) ** 2) / 4)
    )
    weekend = np.where(times.day_of_week >= 5, 1.12, 1.0)
    days = (times - times[0]).total_seconds() / 86400
    growth = 1 + 0.008 * days
    return np.asarray(daily * weekend * growth)


def _factors(times: pd.DatetimeIndex, incidents: list[Incident]) -> dict[str, np.ndarray]:
    """Per-bucket multipliers of each simulated quantity, set by the incidents."""
    n = len(times)
    f = {
        k: np.ones(n)
        for k in (
            "feed_android",
            "feed_ios",
            "msg_android",
            "msg_ios",
            "like",
            "feed_all",
            "msg_all",
            "rows",
        )
    }
    for incident in incidents:
        start, end = pd.Timestamp(incident.start), pd.Timestamp(incident.end)
        mask = (times >= start) & (times < end)
        if incident.name == "android_outage":
            f["feed_android"][mask] *= 0.06
            f["msg_android"][mask] *= 0.06
        elif incident.name == "like_button":
            f["like"][mask] *= 0.3
        elif incident.name == "messenger_outage":
            f["msg_all"][mask] *= 0.0
        elif incident.name == "traffic_spike":
            f["feed_all"][mask] *= 2.6
        elif incident.name == "pipeline_stall":
            f["rows"][mask] = 0.0
    return f


def simulate(
    path: Path, start: datetime, end: datetime, seed: int, scale: float = 1.0
) -> list[Incident]:
    """Write feed_actions and message_actions for [start, end) into a DuckDB file.

    `scale` multiplies the number of users (a small copy for loading into other engines).
    """
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, end, freq=STEP, inclusive="left", tz="UTC")
    incidents = plan_incidents(end)
    shape = _shape(times, start)
    factors = _factors(times, incidents)
    feed_parts, message_parts = [], []
    for os_index, os_name in enumerate(OS_NAMES):
        key = os_name.lower()
        feed_users = rng.poisson(
            PEAK_FEED_USERS
            * scale
            * OS_SHARE[os_index]
            * shape
            * factors[f"feed_{key}"]
            * factors["feed_all"]
            * factors["rows"]
        )
        feed_parts.append(_feed_rows(rng, times, feed_users, os_index, factors["like"]))
        msg_users = rng.poisson(
            PEAK_MESSENGER_USERS
            * scale
            * OS_SHARE[os_index]
            * shape
            * factors[f"msg_{key}"]
            * factors["msg_all"]
            * factors["rows"]
        )
        message_parts.append(_message_rows(rng, times, msg_users, os_index))
    feed = pd.concat(feed_parts, ignore_index=True).sort_values("time", kind="stable")
    messages = pd.concat(message_parts, ignore_index=True).sort_values("time", kind="stable")
    _write(path, feed, messages)
    return incidents


def _spread(rng: np.random.Generator, times: pd.DatetimeIndex, counts: np.ndarray) -> np.ndarray:
    """A timestamp inside its bucket for each of `counts[i]` events of bucket i."""
    starts = np.repeat(times.tz_localize(None).values.astype("datetime64[us]"), counts)
    offsets = rng.integers(0, int(STEP.total_seconds() * 1e6), size=len(starts))
    return np.asarray(starts + offsets.astype("timedelta64[us]"))


def _feed_rows(
    rng: np.random.Generator,
    times: pd.DatetimeIndex,
    users: np.ndarray,
    os_index: int,
    like_factor: np.ndarray,
) -> pd.DataFrame:
    pool = 60_000
    user_ids = rng.integers(0, pool, size=users.sum()) * 2 + os_index
    views_per_user = 1 + rng.poisson(3.0, size=len(user_ids))
    bucket_of_user = np.repeat(np.arange(len(times)), users)
    bucket_of_view = np.repeat(bucket_of_user, views_per_user)
    ctr = BASE_CTR[os_index] * like_factor[bucket_of_view]
    liked = rng.random(len(bucket_of_view)) < ctr
    counts = np.bincount(bucket_of_view, minlength=len(times))
    return pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, views_per_user),
            "post_id": rng.integers(1, 5000, size=len(bucket_of_view)),
            "action": np.where(liked, "like", "view"),
            "time": _spread(rng, times, counts),
            "os_code": os_index,
        }
    ).pipe(_views_and_likes)


def _views_and_likes(frame: pd.DataFrame) -> pd.DataFrame:
    """Every liked post was viewed first: a like adds a view row too."""
    likes = frame[frame["action"] == "like"].copy()
    likes["action"] = "view"
    return pd.concat([frame, likes], ignore_index=True)


def _message_rows(
    rng: np.random.Generator, times: pd.DatetimeIndex, users: np.ndarray, os_index: int
) -> pd.DataFrame:
    pool = 30_000
    user_ids = rng.integers(0, pool, size=users.sum()) * 2 + os_index
    per_user = 1 + rng.poisson(1.5, size=len(user_ids))
    bucket = np.repeat(np.repeat(np.arange(len(times)), users), per_user)
    counts = np.bincount(bucket, minlength=len(times))
    return pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, per_user),
            "receiver_id": rng.integers(0, pool * 2, size=len(bucket)),
            "time": _spread(rng, times, counts),
            "os_code": os_index,
        }
    )


_USER_COLUMNS = """
    ['Android', 'iOS'][os_code + 1] AS os,
    ['Russia', 'Russia', 'Russia', 'Ukraine', 'Belarus', 'Kazakhstan', 'Finland'][user_id % 7 + 1]
        AS country,
    CASE WHEN user_id % 3 = 0 THEN 'ads' ELSE 'organic' END AS source,
    14 + (user_id * 7919) % 50 AS age,
    (user_id // 2) % 2 AS gender,
    ['Moscow', 'Saint Petersburg', 'Kazan', 'Minsk', 'Kyiv', 'Almaty'][user_id % 6 + 1] AS city,
    (user_id // 2) % 5 AS exp_group
"""


def _write(path: Path, feed: pd.DataFrame, messages: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as conn:
        conn.register("feed_raw", feed)
        conn.register("message_raw", messages)
        conn.execute(f"""CREATE TABLE feed_actions AS SELECT user_id, post_id, action,
            CAST(time AS TIMESTAMP) AS time, {_USER_COLUMNS} FROM feed_raw ORDER BY time""")
        conn.execute(f"""CREATE TABLE message_actions AS SELECT user_id, receiver_id,
            CAST(time AS TIMESTAMP) AS time, {_USER_COLUMNS} FROM message_raw ORDER BY time""")
