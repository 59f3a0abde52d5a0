"""Numbers as people read them in alerts, charts and the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The format of the metric whose numbers are being written (analyzer reasons are written in
# the metric's own format: a CTR's band reads 16.1% – 24.2%, not 0.161 – 0.242).
_WRITING: ContextVar[str] = ContextVar("vigil_number_format", default="number")


@contextmanager
def written_as(fmt: str) -> Iterator[None]:
    """Within the block, `format_number` writes values in the metric format `fmt`."""
    token = _WRITING.set(fmt)
    try:
        yield
    finally:
        _WRITING.reset(token)


def format_number(value: float | None) -> str:
    """Readable number: thousands separators, at most 4 significant decimals (as a percent
    inside `written_as("percent")`)."""
    if _WRITING.get() == "percent":
        return format_value(value, "percent")
    return _plain(value)


def _plain(value: float | None) -> str:
    if value is None or value != value:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}".rstrip("0").rstrip(".")
    return f"{value:.4g}"


def format_value(value: float | None, fmt: str = "number") -> str:
    """`format_number`, or for `percent` the ratio times 100 with a % sign."""
    if fmt == "percent" and value is not None and value == value:
        return f"{_plain(value * 100)}%"
    return _plain(value)
