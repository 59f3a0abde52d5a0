"""What a channel was already told about an incident: earlier buckets (held, grown or new)
and the same bucket's message still in the outbox, which a later dataset's anomalies join.

Each dataset of a cycle is analysed and composed in its own transaction, and the outbox is
delivered once after them all. An outage that shows in two datasets (feed and messenger on
Android) would be two messages; instead the second dataset's members join the first's message
while it is still pending — under `group: dataset` when the two share an anomalous slice (or
the totals), under `group: monitor` or a `group_by` split when they are the same bundle. The
pending message is marked `merged` and one message with every member replaces it, in the
second dataset's transaction. A crash between the two leaves the first message pending, and
the second dataset joins it on restart just the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.config.project import Project
from vigil.model import Alert, AlertStatus, Bucket, Notification, Segment, Severity
from vigil.notify import grouping
from vigil.notify.actions import acknowledged
from vigil.store.base import Store


@dataclass(frozen=True)
class Earlier:
    """The same bucket's pending messages that a bundle joins: their keys (to supersede),
    their members' alerts (as saved), their monitors and bundles, and whether one was a
    follow-up."""

    keys: list[str]
    members: list[list[Alert]]
    monitors: list[str]
    names: list[str]
    growing: bool


def earlier_in_bucket(
    project: Project,
    store: Store,
    channel: str,
    name: str,
    bucket: Bucket,
    members: list[list[Alert]],
    monitors: list[str],
) -> Earlier | None:
    """The pending messages to `channel` about this bucket that the bundle joins, with the
    members they tell about that are not among `members`; None when there are none.

    A pending message is joined when it is about the same bundle, or — for monitors grouping
    by dataset — about another dataset's anomalies on a slice these members share (an outage
    on Android shows in the feed and the messenger at once: one incident)."""
    by_dataset = all(_by_dataset(project, m) for m in monitors)
    slices = {g[0].result.series.segment.key for g in members}
    pending: list[Notification] = []
    names: list[str] = []
    for n in store.pending_messages(channel, bucket.start):
        told = [
            (m, metric, key, bundle_of_told(project, m, metric, key))
            for m, metric, key in n.members
            if m in project.monitors
        ]
        if n.bucket.granularity != bucket.granularity or not told:
            continue
        same = any(b == name for *_, b in told)
        correlated = (
            by_dataset
            and all(_by_dataset(project, m) for m, *_ in told)
            and any(key in slices for _, _, key, _ in told)
        )
        if same or correlated:
            pending.append(n)
            names.extend(b for *_, b in told if b is not None and b not in names)
    if not pending:
        return None
    present = {(g[0].result.series.metric, g[0].result.series.segment.key) for g in members}
    wanted = {
        (m, metric, key)
        for n in pending
        for m, metric, key in n.members
        if (metric, key) not in present
    }
    groups: dict[tuple[str, str], list[Alert]] = {}
    for row in store.list_alerts(since=bucket.start, until=bucket.end):
        series = row.result.series
        if (
            row.status != AlertStatus.NOTIFY.value
            or row.result.bucket.granularity != bucket.granularity
            or (row.monitor, series.metric, series.segment.key) not in wanted
        ):
            continue
        alert = Alert(
            row.monitor, Severity(row.severity), row.result, AlertStatus.NOTIFY, row.created_at
        )
        groups.setdefault((series.metric, series.segment.key), []).append(alert)
    return Earlier(
        keys=[n.key for n in pending],
        members=list(groups.values()),
        monitors=sorted({m for n in pending for m, _, _ in n.members if m in project.monitors}),
        names=[n for n in names if n != name],
        growing=any(n.title.startswith("Growing: ") for n in pending),
    )


def _by_dataset(project: Project, monitor: str) -> bool:
    config = project.monitors[monitor]
    return config.group == "dataset" and not config.group_by


def already_told(
    project: Project,
    store: Store,
    channel: str,
    monitors: list[str],
    name: str,
    bucket: Bucket,
    members: list[list[Alert]],
) -> str:
    """`new` when no message about this incident went to the channel within the cooldown;
    else `held` (it updates that incident, no new message) — unless it is more severe than
    what was said (`new`) or has at least doubled, by three series or more (`grown`: one
    follow-up; the next needs another doubling)."""
    configs = [project.monitors[m] for m in monitors]
    cooldown = max((project.cooldown_for(m) for m in configs), default=None)
    if not cooldown:
        return "new"
    since = bucket.start - cooldown
    told = store.recent_messages(channel, since, bucket.start)
    order = list(Severity)
    known = {s.value for s in Severity}
    before = [
        order.index(Severity(s)) if s in known else len(order)
        for monitor_id, metric, segment, s in told
        if monitor_id in project.monitors
        and bundle_of_told(project, monitor_id, metric, segment) == name
    ]
    if not before:
        return "new"
    now = min(order.index(a.severity) for g in members for a in g)
    if now < min(before):
        return "new"  # more severe than what was already said
    sent = {
        (row.result.series.metric, row.result.series.segment.key)
        for row in store.list_alerts(since=since, until=bucket.start)
        if row.status == AlertStatus.NOTIFY.value
        and row.monitor in project.monitors
        and bundle_of_told(
            project, row.monitor, row.result.series.metric, row.result.series.segment.key
        )
        == name
    }
    size = len(
        sent | {(g[0].result.series.metric, g[0].result.series.segment.key) for g in members}
    )
    if sent and size >= max(2 * len(sent), len(sent) + 3):
        # Someone pressed Acknowledge on the message: they know; no "Growing" follow-up.
        keys = [
            n.key
            for n in store.told(since)
            if n.channel == channel
            and any(
                m in project.monitors and bundle_of_told(project, m, x, key) == name
                for m, x, key in n.members
            )
        ]
        return "held" if acknowledged(store, keys) else "grown"
    return "held"


def bundle_of_told(project: Project, monitor: str, metric: str, segment: str) -> str | None:
    """The bundle a told series (monitor, metric, segment key) belongs to."""
    return grouping.bundle_name(
        project, project.monitors[monitor], metric, Segment.from_key(segment)
    )
