"""Numbers as people read them in alerts, charts and the dashboard."""

from __future__ import annotations


def format_number(value: float | None) -> str:
    """Readable number: thousands separators, at most 4 significant decimals."""
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
        return f"{format_number(value * 100)}%"
    return format_number(value)
