"""What an HTTP provider's answer means for a notice: accepted, retry (when), or refused for good."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from chumphae.deliver.notify import Result

# A longer wait is read as this one (RFC 9111 §1.2.2 does so for a delta-seconds too large to hold): it still
# "reaches past" any give-up time, and adding it to now stays inside what a datetime holds (a larger value, such
# as `99999999999999` or `inf`, overflowed there and left the notice `sending`, re-sent at every lease, never
# given up nor escalated).
RETRY_AFTER_MAX_S = 2.0**31


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date, at most RETRY_AFTER_MAX_S; None when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else min(RETRY_AFTER_MAX_S, max(0.0, seconds))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(RETRY_AFTER_MAX_S, max(0.0, (when - (now or datetime.now(UTC))).total_seconds()))


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
