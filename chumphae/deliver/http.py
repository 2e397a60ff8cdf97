"""What an HTTP provider's answer means for a notice: accepted, retry (when), or refused for good."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from chumphae.deliver.notify import Result


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify(response: httpx.Response, *, provider_id: str | None = None) -> Result:
    """2xx accepted; 409 (this idempotency key was accepted before) accepted; 408/425/429/5xx retry; other 4xx refused."""
    code = response.status_code
    if 200 <= code < 300:
        return Result("accepted", provider_id=provider_id, detail=str(code))
    if code == 409:
        return Result("accepted", provider_id=provider_id, detail="409 accepted before (same idempotency key)")
    if code in (408, 425, 429) or code >= 500:
        return Result("retry", retry_after_s=retry_after_s(response.headers.get("Retry-After")),
                      detail=f"{code} {response.reason_phrase}"[:200])
    return Result("refused", detail=f"{code} {response.reason_phrase}"[:200])


def transport_failure(exc: httpx.HTTPError) -> Result:
    """A time-out or a broken connection: the provider may or may not have it; retry with the same key."""
    return Result("retry", detail=type(exc).__name__)
