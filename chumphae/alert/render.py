"""An alert as JSON: the one shape the REST API, the live feed and the phone app all show.

Times are UTC ISO 8601, each with its Asia/Bangkok twin (`*_local`) so a
client in any language can show local time without a time-zone database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chumphae.alert.severity import LEVELS
from chumphae.models import Alert
from chumphae.timeutil import as_utc, iso_bangkok

TYPE_LABELS: dict[str, tuple[str, str]] = {
    "wander": ("ออกนอกเขตปลอดภัย", "Left the safe zone"),
    "left_coverage": ("ออกนอกพื้นที่สัญญาณ", "Left coverage"),
    "fall": ("หกล้ม", "Fall"),
    "sos": ("กดขอความช่วยเหลือ", "SOS pressed"),
    "band_removed": ("ถอดสายรัดข้อมือ", "Wristband removed"),
    "battery_low": ("แบตเตอรี่ใกล้หมด", "Battery low"),
    "gateway_offline": ("เกตเวย์ขาดการติดต่อ", "Gateway offline"),
    "band_silent": ("ไม่ได้รับสัญญาณสายรัด", "Wristband silent"),
    "gateway_radio": ("วิทยุของเกตเวย์ไม่ทำงาน", "Gateway radio down"),
}

SEVERITY_LABELS: dict[str, tuple[str, str]] = {
    "critical": ("วิกฤต", "Critical"),
    "high": ("สูง", "High"),
    "medium": ("ปานกลาง", "Medium"),
    "low": ("ต่ำ", "Low"),
    "info": ("แจ้งให้ทราบ", "Info"),
}


def iso(t: datetime | None) -> str | None:
    return None if t is None else as_utc(t).isoformat()


def alert_dict(alert: Alert, *, names: dict[int, str] | None = None) -> dict[str, Any]:
    """Everything needed to show the alert at a glance. `names`: user id → display name."""
    names = names or {}
    type_th, type_en = TYPE_LABELS.get(alert.type, (alert.type, alert.type))
    sev_th, sev_en = SEVERITY_LABELS.get(alert.severity, (alert.severity, alert.severity))
    return {
        "id": alert.id,
        "patient_id": alert.patient_id,
        "gateway_id": alert.gateway_id,
        "type": alert.type,
        "type_th": type_th,
        "type_en": type_en,
        "severity": alert.severity,
        "severity_th": sev_th,
        "severity_en": sev_en,
        "status": alert.status,
        "opened_at": iso(alert.opened_at),
        "opened_at_local": iso_bangkok(alert.opened_at),
        "last_triggered_at": iso(alert.last_triggered_at),
        "last_triggered_at_local": iso_bangkok(alert.last_triggered_at),
        "received_at": iso(alert.received_at),
        "count": alert.count,
        "late": alert.late,
        "escalation_level": alert.escalation_level,
        # who the rung reached is: a gateway's alert tells the care managers whatever its level (deliver/notify.py)
        "escalated_to": "care_manager" if alert.patient_id is None else LEVELS[min(alert.escalation_level,
                                                                                  len(LEVELS) - 1)],
        "next_escalation_at": iso(alert.next_escalation_at),
        "acknowledged_by": alert.acknowledged_by,
        "acknowledged_by_name": names.get(alert.acknowledged_by) if alert.acknowledged_by else None,
        "acknowledged_at": iso(alert.acknowledged_at),
        "acknowledged_at_local": iso_bangkok(alert.acknowledged_at),
        "resolved_by": alert.resolved_by,
        "resolved_by_name": names.get(alert.resolved_by) if alert.resolved_by else None,
        "resolved_at": iso(alert.resolved_at),
        "outcome": alert.outcome,
        "resolution_note": alert.resolution_note,
        "last_seen": {
            "lat": alert.lat,
            "lon": alert.lon,
            "uncertainty_m": alert.uncertainty_m,
            "parcel_code": alert.parcel_code,
            "building_code": alert.building_code,
            "description_th": alert.description_th,
            "description_en": alert.description_en,
            "zone_version": alert.zone_version,
        },
        "details": dict(alert.details or {}),
    }


def deliveries_summary(deliveries: list[dict[str, Any]]) -> dict[str, Any]:
    """Per alert: how many notices, delivered, still trying, failed or given up, cancelled; the same per channel."""
    def bucket(status: str) -> str:
        return {"sent": "delivered", "queued": "pending", "sending": "pending",
                "cancelled": "cancelled"}.get(status, "failed")

    out: dict[str, Any] = {"total": 0, "delivered": 0, "pending": 0, "failed": 0, "cancelled": 0, "by_channel": {}}
    for d in deliveries:
        b = bucket(str(d["status"]))
        out["total"] += 1
        out[b] += 1
        ch = out["by_channel"].setdefault(str(d["channel"]),
                                          {"total": 0, "delivered": 0, "pending": 0, "failed": 0, "cancelled": 0})
        ch["total"] += 1
        ch[b] += 1
    return out
