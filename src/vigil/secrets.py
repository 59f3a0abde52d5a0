"""Secrets never leave memory: one registry of secret values, masked in every output.

Every value a project reads from the environment into its configuration is registered when
the project loads, and so is every environment variable whose name says it holds a secret
(`*TOKEN*`, `*PASSWORD*`, `*SECRET*`, `*KEY*`, …). `redact` masks all of them, plus two shapes
that are secrets wherever they appear: the password in a URL (`scheme://user:pass@host`) and a
Telegram bot token in a Bot API path (`/bot123:abc/`). The CLI installs `RedactingFilter` on
the log handlers, so third-party logs (the HTTP client prints request URLs at -v) are masked
too; error messages that are printed, stored (run log, delivery errors) or answered by the
API pass through `redact`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping

MASK = "***"
# Shorter values are too likely to occur in ordinary text to be masked everywhere.
MIN_LENGTH = 4

_SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|PRIVATE|CREDENTIAL|DSN", re.I)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)", re.I)
_BOT_TOKEN = re.compile(r"(?P<head>/bot)\d+:[A-Za-z0-9_-]+")

_known: set[str] = set()
_ordered: list[str] = []
_lock = threading.Lock()


def register(values: Iterable[str]) -> None:
    """Remember secret values; each is masked from now on in everything `redact` sees."""
    fresh = {v for v in values if isinstance(v, str) and len(v.strip()) >= MIN_LENGTH}
    global _ordered
    with _lock:
        if fresh - _known:
            _known.update(fresh)
            # Longest first, so a secret containing another is masked whole.
            _ordered = sorted(_known, key=len, reverse=True)


def register_environment(env: Mapping[str, str] | None = None) -> None:
    """Register every environment variable whose name marks it as a secret."""
    source = os.environ if env is None else env
    register(v for k, v in source.items() if _SECRET_NAME.search(k))


_SECRET_KEY = re.compile(r"token|password|passwd|secret|api_?key|private_key|webhook|dsn", re.I)


def register_config(data: object) -> None:
    """Register the string values of every secret-looking key (`token`, `password`,
    `webhook_url`, …) in a parsed configuration tree, lists included."""
    stack: list[tuple[object, bool]] = [(data, False)]
    found: list[str] = []
    seen = 0
    while stack and seen < 1_000_000:
        node, secret = stack.pop()
        seen += 1
        if isinstance(node, Mapping):
            for key, value in node.items():
                stack.append((value, secret or bool(_SECRET_KEY.search(str(key)))))
        elif isinstance(node, list | tuple):
            stack.extend((item, secret) for item in node)
        elif secret and isinstance(node, str):
            found.append(node)
    register(found)


def redact(text: str) -> str:
    """`text` with every known secret, URL password and bot token replaced by ***."""
    if not text:
        return text
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _BOT_TOKEN.sub(lambda m: m.group("head") + MASK, text)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message once, masked; keep the record."""
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: keep its raw text
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of `logger` (the root logger by default)."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
