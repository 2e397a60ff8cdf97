"""How serious each alert type is, and how long an unacknowledged alert waits before it climbs.

Escalation levels: 0 the patient's caregivers, 1 their village health volunteer
(อสม.), 2 the care managers, 3 the district hospital. The delays are the time
spent at each level before the next one is told; an SOS nobody answers in two
minutes reaches the volunteer, a low battery never climbs at all.

A rung of nobody never holds a patient's alert (`past_empty`): it opens at
the lowest rung with someone, and a climb that reaches an empty rung goes on
at once to the next rung with someone (rung27).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from chumphae.values import AlertType, Severity

SEVERITY_BY_TYPE: dict[AlertType, Severity] = {
    AlertType.SOS: Severity.CRITICAL,
    AlertType.FALL: Severity.CRITICAL,
    AlertType.WANDER: Severity.HIGH,
    AlertType.LEFT_COVERAGE: Severity.HIGH,
    AlertType.BAND_REMOVED: Severity.MEDIUM,
    AlertType.BAND_SILENT: Severity.MEDIUM,
    AlertType.GATEWAY_OFFLINE: Severity.MEDIUM,
    AlertType.GATEWAY_RADIO: Severity.MEDIUM,
    AlertType.BATTERY_LOW: Severity.LOW,
}

LEVELS = ("caregiver", "volunteer", "care_manager", "hospital")
MAX_LEVEL = len(LEVELS) - 1

# Seconds spent at level 0, 1, 2 before the next level is told (None: stop climbing).
ESCALATION_DELAYS_S: dict[Severity, tuple[float | None, ...]] = {
    Severity.CRITICAL: (120.0, 300.0, 600.0),
    Severity.HIGH: (300.0, 900.0, 1800.0),
    Severity.MEDIUM: (1800.0, 3600.0, None),
    Severity.LOW: (None,),
    Severity.INFO: (None,),
}

RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.INFO: 0}


def severity_for(alert_type: str) -> Severity:
    """The server's severity for a type; an unknown type is treated as high, never ignored."""
    try:
        return SEVERITY_BY_TYPE[AlertType(alert_type)]
    except ValueError:
        return Severity.HIGH


def delay_at(severity: str, level: int) -> float | None:
    """Seconds an alert of `severity` waits at `level` before climbing; None: it stays."""
    delays = ESCALATION_DELAYS_S.get(Severity(severity), (None,))
    if level >= MAX_LEVEL or level >= len(delays):
        return None
    return delays[level]


def next_escalation_at(severity: str, level: int, since: datetime) -> datetime | None:
    """When an alert that reached `level` at `since` climbs again, or None."""
    delay = delay_at(severity, level)
    return None if delay is None else since + timedelta(seconds=delay)


def past_empty(level: int, filled: set[int] | frozenset[int]) -> tuple[int, list[int]]:
    """The rung an alert reaching `level` stays at, and the rungs of nobody it passed over.

    `filled`: the rungs with at least one active person. From `level` up, the first rung in `filled`;
    when no rung from `level` up has anyone, `level` itself (nobody anywhere above: it climbs by the clock).
    """
    if not any(lv >= level for lv in filled):
        return level, []
    skipped = []
    while level not in filled:
        skipped.append(level)
        level += 1
    return level, skipped
