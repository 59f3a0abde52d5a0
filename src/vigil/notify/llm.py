"""A second opinion on an alert from a language model (off unless `llm:` is configured).

For each message a monitor with `llm: annotate` or `confirm` would send, the model gets the
series' recent values, the expected band and the detector's own explanation (the message
text), and is asked whether this is anomalous and why, answering in JSON. `annotate` adds its
view to the message (`🤖 Second opinion: likely a real drop (0.9) — …`); `confirm` also sends
the message only when the model agrees, and logs the alerts it refused as `llm_rejected`.
The endpoint is any OpenAI-compatible `POST {base_url}/chat/completions`. A timeout, an
error or an answer that is not the JSON asked for never blocks an alert: it goes out as it
is, saying that no second opinion came. The key is a secret (masked in every output).
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pandas as pd

from vigil.config.project import Project
from vigil.config.schema import LLMConfig
from vigil.model import Notification
from vigil.store.base import Store

log = logging.getLogger(__name__)

SYSTEM = (
    "You review alerts from a monitoring system for business and product metrics. Given a"
    " time series and the detector's explanation, say whether the newest value is a real"
    " anomaly that a person on call should look at, or normal variation (a daily or weekly"
    " pattern, noise on small numbers). Answer only with JSON:"
    ' {"anomalous": true or false, "confidence": 0 to 1, "why": "one short sentence"}.'
)


@dataclass(frozen=True)
class Opinion:
    """The model's view of one message (None fields: no answer came)."""

    anomalous: bool | None
    confidence: float | None
    why: str

    def line(self) -> str:
        """The message's added line."""
        if self.anomalous is None:
            return f"🤖 No second opinion ({self.why})"
        verdict = "likely a real anomaly" if self.anomalous else "likely normal"
        sure = f" ({self.confidence:.1f})" if self.confidence is not None else ""
        return f"🤖 Second opinion: {verdict}{sure} — {self.why}"


def mode_of(project: Project, monitor: str) -> str:
    """off, annotate or confirm for the monitor's messages."""
    config = project.settings.llm
    if config is None:
        return "off"
    chosen = project.monitors[monitor].llm if monitor in project.monitors else None
    return chosen or config.mode


def prompt(project: Project, store: Store, message: Notification, points: int) -> str:
    """The series' recent values (and the same times a day earlier) and the message."""
    series, bucket = message.series, message.bucket
    g = bucket.granularity
    start = g.shift(bucket.start, -(points - 1))
    frame: pd.DataFrame | None
    earlier: pd.DataFrame | None
    try:
        frame = store.load_series(series.metric, series.segment.key, g, start, bucket.end)
        earlier = store.load_series(
            series.metric,
            series.segment.key,
            g,
            start - timedelta(days=1),
            bucket.end - timedelta(days=1),
        )
    except (KeyError, ValueError):
        frame = earlier = None
    lines = [f"Metric: {series.label()} ({g.name} buckets, times in UTC)"]
    for heading, found in (
        ("Recent values (bucket start, value):", frame),
        ("The same times a day earlier:", earlier),
    ):
        if found is not None and len(found):
            lines.append(heading)
            pairs = zip(found["bucket"], found["value"], strict=True)
            lines += [f"{b:%Y-%m-%d %H:%M}, {v:g}" for b, v in pairs]
    lines += ["The detector's alert:", message.text]
    return "\n".join(lines)


def ask(config: LLMConfig, text: str) -> Opinion:
    """One chat-completions request; never raises."""
    headers = {}
    if config.api_key is not None:
        headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
    body = {
        "model": config.model,
        "temperature": 0,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
    }
    url = config.base_url.rstrip("/") + "/chat/completions"
    import httpx  # on first use: a cycle without an LLM second opinion never loads it

    try:
        with httpx.Client(timeout=config.timeout.total_seconds()) as client:
            response = client.post(url, json=body, headers=headers)
    except httpx.TimeoutException:
        return Opinion(None, None, f"no answer within {config.timeout.total_seconds():g} s")
    except httpx.HTTPError as e:
        return Opinion(None, None, f"the model's endpoint failed: {type(e).__name__}")
    if not response.is_success:
        return Opinion(None, None, f"the model's endpoint answered HTTP {response.status_code}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
        return _parsed(str(content))
    except (ValueError, KeyError, IndexError, TypeError):
        return Opinion(None, None, "the model's answer was not the JSON asked for")


def _parsed(content: str) -> Opinion:
    found = re.search(r"\{.*\}", content, re.DOTALL)
    if found is None:
        raise ValueError(content)
    data: Any = json.loads(found.group(0))
    anomalous = data.get("anomalous")
    if not isinstance(anomalous, bool):
        raise ValueError(content)
    confidence = data.get("confidence")
    sure = float(confidence) if isinstance(confidence, int | float) else None
    return Opinion(anomalous, sure, str(data.get("why", "")).strip()[:300] or "no reason given")


def second_opinions(
    project: Project, store: Store, notifications: list[Notification]
) -> tuple[list[Notification], set[tuple[str, str, str]]]:
    """The messages with the model's view (annotate) or without those it refused (confirm),
    and the members of the refused ones. One question per message, whatever its channels."""
    config = project.settings.llm
    if config is None:
        return notifications, set()
    asked: dict[tuple[str, str, str], Opinion] = {}
    out: list[Notification] = []
    refused: set[tuple[str, str, str]] = set()
    for n in notifications:
        mode = mode_of(project, n.monitor)
        if mode == "off" or n.kind not in ("alert", "incident"):
            out.append(n)
            continue
        key = (n.monitor, n.series.label(), n.bucket.start.isoformat())
        if key not in asked:
            asked[key] = ask(config, prompt(project, store, n, config.points))
            log.info("second opinion on %s: %s", n.title, asked[key].line())
        opinion = asked[key]
        if mode == "confirm" and opinion.anomalous is False:
            refused.update(n.members)
            continue
        line = opinion.line()
        out.append(
            replace(n, text=f"{n.text}\n{line}", html=f"{n.html}\n{html.escape(line, quote=False)}")
        )
    return out, refused
