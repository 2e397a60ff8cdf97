"""Events that arrive late: stored with their true time, but not rung as if new.

A gateway that was offline for an hour flushes its queue when it comes back.
Its alerts are real history and are kept, with the time they happened; but
phones must not ring for a wander that the caregiver already handled. The
rule: a late event rings only if the alert it lands on is still open and
unacknowledged (someone still has to act). A fresh re-trigger of an alert
someone already acknowledged rings only when it is critical (SOS pressed
again, a second fall): someone is on the way, the rest is noise. A late event from before the last
resolution of its condition is history of that resolved alert, not a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chumphae.models import AlertStatus

LATE_AFTER = timedelta(seconds=120)  # older than this on arrival: delivered late


def is_late(t: datetime, received_at: datetime, *, late_after: timedelta = LATE_AFTER) -> bool:
    return received_at - t > late_after


@dataclass(frozen=True, slots=True)
class Verdict:
    late: bool
    ring: bool  # tell people now (phones, feed attention)
    belongs_to_resolved: bool = False  # history of an alert already resolved after it happened


def judge(*, t: datetime, received_at: datetime, existing_status: str | None,
          last_resolved_at: datetime | None, critical: bool = False) -> Verdict:
    """Decide for one incoming detection.

    `existing_status`: the unresolved alert it would update (None: none open).
    `last_resolved_at`: when the newest resolved alert of the same kind was resolved.
    """
    late = is_late(t, received_at)
    if existing_status is None:
        if late and last_resolved_at is not None and t <= last_resolved_at:
            return Verdict(late=True, ring=False, belongs_to_resolved=True)
        return Verdict(late=late, ring=True)  # new and unacknowledged: someone must act
    if existing_status == AlertStatus.OPEN:
        return Verdict(late=late, ring=True)
    return Verdict(late=late, ring=critical and not late)  # acknowledged: someone is on it
