"""Which channels a user is told on for one alert: preferences per severity, contact points, quiet hours.

Pure: the caller loads the rows. The live feed is always included (it costs
nothing and the page shows it). During a user's quiet hours (Asia/Bangkok)
only the feed is used for non-critical alerts; critical alerts (SOS, fall)
are never silenced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, time

from chumphae.models import ChannelName
from chumphae.timeutil import to_bangkok
from chumphae.values import Severity

PUSH = (ChannelName.LINE.value, ChannelName.SMS.value, ChannelName.WEBHOOK.value)
CHANNELS = (*PUSH, ChannelName.FEED.value)

DEFAULTS: dict[str, tuple[str, ...]] = {
    Severity.CRITICAL.value: ("line", "sms", "webhook", "feed"),
    Severity.HIGH.value: ("line", "webhook", "feed"),
    Severity.MEDIUM.value: ("line", "webhook", "feed"),
    Severity.LOW.value: ("feed",),
    Severity.INFO.value: ("feed",),
}


def parse_hhmm(value: str) -> time:
    """'22:00' → time(22, 0); a clear ValueError otherwise."""
    try:
        hh, mm = value.split(":")
        return time(int(hh), int(mm))
    except (ValueError, TypeError):
        raise ValueError(f"not a time of day HH:MM: {value!r}") from None


def in_quiet_hours(now: datetime, start: str | None, end: str | None) -> bool:
    """Whether Bangkok local `now` falls in [start, end) (which may wrap past midnight)."""
    if not start or not end:
        return False
    t = to_bangkok(now).time()
    a, b = parse_hhmm(start), parse_hhmm(end)
    if a == b:
        return False
    return a <= t < b if a < b else (t >= a or t < b)


def wanted(severity: str, prefs: Mapping[str, list[str]] | None) -> tuple[str, ...]:
    """The channels the user asked for at this severity (defaults where they said nothing)."""
    if prefs and severity in prefs:
        return tuple(c for c in prefs[severity] if c in CHANNELS)
    return DEFAULTS.get(severity, DEFAULTS[Severity.HIGH.value])


def channels_for(*, severity: str, prefs: Mapping[str, list[str]] | None, contacts: Iterable[str],
                 quiet_start: str | None, quiet_end: str | None, now: datetime) -> list[str]:
    """Channels to use: wanted ∩ reachable (+ feed), push channels dropped in quiet hours unless critical."""
    reachable = set(contacts)
    out = [c for c in wanted(severity, prefs) if c in PUSH and c in reachable]
    if severity != Severity.CRITICAL.value and in_quiet_hours(now, quiet_start, quiet_end):
        out = []
    return [*out, ChannelName.FEED.value]
