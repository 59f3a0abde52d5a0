"""Write the demo's ready-made project: vigil.yaml, metric files and monitors."""

from __future__ import annotations

import os
from pathlib import Path

VIGIL_YAML = """\
# Vigil demo: a social app's feed and messenger, checked every 15 minutes.
name: social-app demo
timezone: UTC

store:
  type: duckdb
  path: vigil.duckdb

sources:
  app:
    type: duckdb
    path: data/app.duckdb

channels:
  console:
    type: console
{telegram}
defaults:
  granularity: 15m
  delay: 2m
  lookback: 4
  cooldown: 3h
  quiet_hours: {{start: "00:00", end: "01:00"}}
  owners: ["@product_analyst"]
  links:
    dashboard: "https://bi.example.com/d/app?metric={{metric}}&segment={{segment}}&at={{bucket}}"

charts_dir: charts
"""

TELEGRAM = """\
  telegram:
    type: telegram
    token: ${TELEGRAM_BOT_TOKEN}
    chat_id: ${TELEGRAM_CHAT_ID}
    api_url: ${TELEGRAM_API_URL:-https://api.telegram.org}
"""

FEED_YAML = """\
# Feed: one query per window computes every metric, for the total and per OS.
datasets:
  - name: feed
    source: app
    table: feed_actions
    time_column: time
    slices:
      - os: [iOS, Android]
    owners: ["@feed_team"]
    segment_owners:
      - segment: {os: iOS}
        owners: ["@ios_lead"]
      - segment: {os: Android}
        owners: ["@android_lead"]
    # Profile the action column: which actions occur, counted inside DuckDB.
    profile:
      - column: action
        kind: discrete
        stats: [frequent_items]
    metrics:
      - name: feed_users
        title: Active feed users
        formula: count(DISTINCT user_id)
      - name: views
        title: Views
        formula: count(*) FILTER (WHERE action = 'view')
      - name: likes
        title: Likes
        formula: count(*) FILTER (WHERE action = 'like')
      - name: ctr
        title: CTR (likes / views)
        format: percent
        formula: >-
          count(*) FILTER (WHERE action = 'like')
          / nullif(count(*) FILTER (WHERE action = 'view'), 0)
        fill: missing
        owners: ["@feed_team", "@ranking_team"]
      - name: likes_per_user
        title: Likes per user
        formula: count(*) FILTER (WHERE action = 'like') / count(DISTINCT user_id)
        fill: missing
      - name: views_per_user
        title: Views per user
        formula: count(*) FILTER (WHERE action = 'view') / count(DISTINCT user_id)
        fill: missing
"""

MESSENGER_YAML = """\
datasets:
  - name: messenger
    source: app
    table: message_actions
    time_column: time
    slices:
      - os: [iOS, Android]
    owners: ["@messenger_team"]
    metrics:
      - name: messenger_users
        title: Messenger users
        formula: count(DISTINCT user_id)
      - name: messages
        title: Messages sent
        formula: count(*)
      - name: messages_per_user
        title: Messages per user
        formula: count(*) / count(DISTINCT user_id)
        fill: missing
"""

MONITORS_YAML = """\
analyzers:
  # Now vs the same 45 minutes a day and a week ago, for every metric and slice.
  - id: day_week
    type: same_time_comparison
    metrics: ["*"]
    buckets: 3
    lags: [1d, 7d]
    threshold: 0.3
  # CTR must never fall below 10%.
  - id: ctr_floor
    type: fixed
    metrics: [ctr]
    lower: 0.1
  # Ratios have no daily cycle: a band around the last six hours fits them.
  - id: ratio_band
    type: stddev
    metrics: [ctr, views_per_user]
    window: 24
    factor: 5
  # A new kind of feed action (an unreleased feature leaking, a client bug) is worth a look.
  - id: new_actions
    type: frequent_string_comparison
    metrics: [action.frequent_items]
    operator: baseline_includes_all_target
    baseline: {{type: trailing_window, size: 96}}

monitors:
  - id: product
    analyzers: [day_week, ratio_band, new_actions]
    channels: [{channels}]
    severity: high
  - id: ctr_guard
    analyzers: [ctr_floor]
    channels: [{channels}]
    severity: critical
"""


def write_project(directory: Path) -> None:
    """Write (or overwrite) the demo configuration; Telegram is added when its env vars are set."""
    has_telegram = bool(os.environ.get("TELEGRAM_BOT_TOKEN") and os.environ.get("TELEGRAM_CHAT_ID"))
    channels = "console, telegram" if has_telegram else "console"
    files = {
        "vigil.yaml": VIGIL_YAML.format(telegram=TELEGRAM if has_telegram else ""),
        "metrics/feed.yaml": FEED_YAML,
        "metrics/messenger.yaml": MESSENGER_YAML,
        "monitors/product.yaml": MONITORS_YAML.format(channels=channels),
    }
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
