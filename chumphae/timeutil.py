"""Time in one place: store UTC, show Asia/Bangkok."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

BANGKOK = ZoneInfo("Asia/Bangkok")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(t: datetime) -> datetime:
    """Naive datetimes (as SQLite returns them) are taken to be UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def to_bangkok(t: datetime) -> datetime:
    return as_utc(t).astimezone(BANGKOK)


def bangkok_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants at which a Bangkok calendar day starts and ends."""
    start = datetime.combine(day, time(0), tzinfo=BANGKOK)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def iso_bangkok(t: datetime | None) -> str | None:
    return None if t is None else to_bangkok(t).isoformat(timespec="seconds")
