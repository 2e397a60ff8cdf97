"""A gateway whose radio cannot scan: the rule, and the words of its `gateway_radio` alert.

The gateway says how its radio is in every heartbeat (docs/gateway-protocol.md §3.4, §4 "The radio
fails"): `scanner_state` and `adverts_per_s`. A heartbeat is *deaf* when the scanner is not scanning
(`failed`, `retrying`, `stopping`, `stopped`: the adapter removed, BlueZ down or not answering). The
ingest step keeps, in the gateway's health, when an unbroken run of deaf heartbeats began and when the
latest came (`backend_radio_deaf_since`, `backend_radio_deaf_last`, backend times); any other heartbeat
ends the run. The server clock (`chumphae.alert.escalate`) raises one `gateway_radio` alert once the run
spans `dead_after_s`; a heartbeat that *hears* (`scanning` with `adverts_per_s` above 0) resolves it.

Never called dead: `scanner_state` `simulated` (a simulation), `unknown` (a replay), absent (an older
gateway), and `scanning` with `adverts_per_s: 0`, which a healthy radio in a quiet village at night sends
exactly as a deaf one does (its watchdog restarts a silent scanner either way).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chumphae.timeutil import to_bangkok

DEAF_STATES = frozenset({"failed", "retrying", "stopping", "stopped"})
SINCE, LAST = "backend_radio_deaf_since", "backend_radio_deaf_last"  # health keys the backend writes


def deaf(heartbeat: dict[str, Any]) -> bool:
    """Whether this heartbeat says the radio is not scanning (a `scanner_state` that is not text says nothing:
    the heartbeat keeps any field whole, and a list or object is not hashable)."""
    state = heartbeat.get("scanner_state")
    return isinstance(state, str) and state in DEAF_STATES


def hears(heartbeat: dict[str, Any]) -> bool:
    """Whether this heartbeat says the radio scans and hears adverts."""
    rate = heartbeat.get("adverts_per_s")
    return (heartbeat.get("scanner_state") == "scanning" and isinstance(rate, int | float)
            and not isinstance(rate, bool) and rate > 0)


def track(previous: dict[str, Any], heartbeat: dict[str, Any], now: datetime) -> dict[str, str]:
    """The backend's deaf-run keys to keep with a new heartbeat received at `now` (empty: no run)."""
    if not deaf(heartbeat):
        return {}
    since = previous.get(SINCE) if isinstance(previous.get(SINCE), str) else None
    return {SINCE: since or now.isoformat(), LAST: now.isoformat()}


def deaf_span(health: dict[str, Any] | None) -> tuple[datetime, float] | None:
    """When the run of deaf heartbeats began and how many seconds it spans; None without one."""
    if not health:
        return None
    since, last = health.get(SINCE), health.get(LAST)
    if not isinstance(since, str) or not isinstance(last, str):
        return None
    try:
        t0, t1 = datetime.fromisoformat(since), datetime.fromisoformat(last)
    except ValueError:
        return None
    return t0, (t1 - t0).total_seconds()


def summary(slug: str, site: str, since: datetime, state: str) -> dict[str, str]:
    """The words to show: which gateway, since when (Bangkok time), what its scanner says."""
    at = to_bangkok(since).strftime("%H:%M")
    return {"summary_th": f"เกตเวย์ {slug} ({site}) ยังเชื่อมต่ออยู่ แต่วิทยุบลูทูธไม่ทำงานตั้งแต่ {at} น. "
                          f"(สถานะ {state}): ไม่ได้ยินสายรัดข้อมือของผู้ป่วยในพื้นที่นี้ ควรตรวจเครื่อง",
            "summary_en": f"Gateway {slug} ({site}) is connected but its Bluetooth radio has not been scanning "
                          f"since {at} (Bangkok time; scanner {state}): patients' bands in its area are not "
                          "heard; the gateway needs a visit"}
