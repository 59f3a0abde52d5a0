"""HTTP delivery shared by the web channels: one POST, errors classified for the outbox."""

from __future__ import annotations

from typing import Any

import httpx

from vigil.errors import NotifyError


def post(
    client: httpx.Client, url: str, what: str, parts_sent: int = 0, **kwargs: Any
) -> httpx.Response:
    """POST and return a 2xx response; otherwise raise NotifyError.

    5xx, 429 and network errors are retryable (honouring Retry-After); other statuses are not.
    The URL is never put in the message: webhook URLs and tokens are secrets.
    """
    try:
        response = client.post(url, **kwargs)
    except httpx.HTTPError as e:
        raise NotifyError(f"{what}: {type(e).__name__}", parts_sent=parts_sent) from None
    if response.is_success:
        return response
    status = response.status_code
    raise NotifyError(
        f"{what}: HTTP {status}: {response.text[:200]}",
        retryable=status >= 500 or status == 429,
        parts_sent=parts_sent,
        retry_after=retry_after(response),
    )


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header given in seconds (dates are not used by these APIs)."""
    header = response.headers.get("Retry-After", "")
    try:
        return float(header) if header else None
    except ValueError:
        return None
