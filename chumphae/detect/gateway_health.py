"""Gateway offline: a gateway silent (no message, no heartbeat) for `gateway_offline_s`.

Per gateway, not per patient: while a gateway is down its bands' alerts
cannot reach anyone, so the caregivers of the area must know. One detection
per outage; hearing the gateway again ends the outage (the alert state
downstream resolves it).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from chumphae.detect.thresholds import Thresholds
from chumphae.values import AlertType, Detection


@dataclass(frozen=True, slots=True)
class GatewayHealth:
    gateway_id: str
    last_seen: datetime | None = None
    alerted: bool = False


def step(state: GatewayHealth, t: datetime) -> tuple[GatewayHealth, list[Detection]]:
    """The gateway was heard at `t` (any message or heartbeat)."""
    if state.last_seen is not None and t <= state.last_seen:
        return state, []
    return replace(state, last_seen=t, alerted=False), []


def tick(state: GatewayHealth, th: Thresholds, now: datetime) -> tuple[GatewayHealth, list[Detection]]:
    if state.last_seen is None or state.alerted:
        return state, []
    silent = (now - state.last_seen).total_seconds()
    if silent < th.gateway_offline_s:
        return state, []
    minutes = int(silent // 60)
    d = Detection(type=AlertType.GATEWAY_OFFLINE, t=state.last_seen, address=None, patient_id=None,
                  details={"gateway_id": state.gateway_id, "silent_for_s": round(silent),
                           "summary_th": f"เกตเวย์ {state.gateway_id} ขาดการติดต่อ {minutes} นาที",
                           "summary_en": f"Gateway {state.gateway_id} silent for {minutes} min"})
    return replace(state, alerted=True), [d]
