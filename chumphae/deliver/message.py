"""What a notice says: Thai first (English by the user's setting), short enough for SMS and LINE.

What happened, who (the patient's name as the caregiver knows it; never the
national ID), where last seen in words (the alert's landmark, distance and
direction) with the Bangkok time, and a link that opens the page on the alert.
Pure: the caller loads the alert and the patient. `freeze` is the message
as a notice keeps it from its first try; every try sends what `thaw` gives back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chumphae.alert.render import SEVERITY_LABELS, TYPE_LABELS, alert_dict
from chumphae.alert.severity import LEVELS
from chumphae.models import Alert
from chumphae.timeutil import to_bangkok

LEVEL_LABELS: dict[str, tuple[str, str]] = {
    "caregiver": ("ผู้ดูแล", "caregivers"),
    "volunteer": ("อสม.", "the village health volunteer"),
    "care_manager": ("ผู้จัดการการดูแล (CM)", "the care managers"),
    "hospital": ("โรงพยาบาล", "the hospital"),
}


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    link: str | None
    payload: dict[str, Any]


def alert_link(public_url: str, alert_id: int) -> str:
    """The page, opened on this alert (the page reads `#alert=<id>`)."""
    return f"{public_url.rstrip('/')}/#alert={alert_id}"


def render_alert(alert: Alert, *, who: str | None, lang: str, event: str, level: int, public_url: str,
                 notice_key: str) -> Rendered:
    assert alert.id is not None
    en = lang == "en"
    type_th, type_en = TYPE_LABELS.get(alert.type, (alert.type, alert.type))
    sev_th, sev_en = SEVERITY_LABELS.get(alert.severity, (alert.severity, alert.severity))
    at = to_bangkok(alert.last_triggered_at).strftime("%H:%M")
    where = alert.description_en if en else alert.description_th
    link = alert_link(public_url, alert.id)
    rung_th, rung_en = LEVEL_LABELS[LEVELS[min(level, len(LEVELS) - 1)]]
    critical = alert.severity == "critical"
    gateway = alert.patient_id is None
    details = alert.details or {}
    summary_th, summary_en = (str(details[k]) if details.get(k) else None for k in ("summary_th", "summary_en"))
    if en:
        lines = [f"{'🚨 URGENT: ' if critical else ''}{type_en} ({sev_en})"]
        if gateway:  # a gateway's alert: the gateway and what is wrong with it, not a patient's whereabouts
            lines += [f"Gateway: {who or 'unknown'}", f"{summary_en or type_en} ({at})"]
        else:
            lines += [f"Who: {who or 'unknown'}", f"Last seen: {where or 'unknown, see the map'} at {at}"]
        if event == "escalated":
            lines.append(f"Nobody has taken this yet: now passed to {rung_en}.")
        lines.append(f"Open: {link}")
    else:
        lines = [f"{'🚨 ด่วน: ' if critical else ''}{type_th} (ระดับ{sev_th})"]
        if gateway:
            lines += [f"เกตเวย์: {who or 'ไม่ทราบ'}", f"{summary_th or type_th} (เวลา {at} น.)"]
        else:
            lines += [f"ผู้ป่วย: {who or 'ไม่ทราบชื่อ'}", f"พบล่าสุด: {where or 'ไม่ทราบตำแหน่ง ดูแผนที่'} เวลา {at} น."]
        if event == "escalated":
            lines.append(f"ยังไม่มีผู้รับเรื่อง ส่งต่อถึง{rung_th}แล้ว")
        lines.append(f"เปิดดู: {link}")
    payload = {"notice": notice_key, "event": event, "level": level, "link": link, "alert": alert_dict(alert)}
    return Rendered("\n".join(lines), link, payload)


def render_test(*, name: str, lang: str, channel: str, notice_key: str) -> Rendered:
    text = (f"Smart Chumphae test message for {name} on {channel}: this channel works."
            if lang == "en" else f"ข้อความทดสอบจาก Smart Chumphae ถึง {name} ทาง {channel}: ช่องทางนี้ใช้งานได้")
    return Rendered(text, None, {"notice": notice_key, "event": "test", "channel": channel})


def patient_label(prename: str | None, name_th: str | None, name_en: str | None, lang: str) -> str | None:
    """The patient as their caregiver knows them: 'นางสมศรี ใจดี' / 'Somsri Jaidee' (never the CID)."""
    if lang == "en" and name_en:
        return name_en
    if not name_th:
        return name_en
    title = prename if prename and not prename.isdigit() else ""  # a 43-file code is no title to read
    return f"{title}{name_th}"


def freeze(r: Rendered, lang: str) -> str:
    """The rendered message as stored on its notice (JSON): text, link, the language it is in, the payload."""
    return json.dumps({"text": r.text, "link": r.link, "lang": lang, "payload": r.payload}, ensure_ascii=False)


def thaw(body: str) -> tuple[Rendered, str]:
    """What `freeze` stored: the message and its language. The first try reads it back too, so every try
    builds its request from the same values (a JSON round trip would otherwise change, e.g., integer keys)."""
    d = json.loads(body)
    return Rendered(str(d["text"]), d.get("link"), dict(d.get("payload") or {})), str(d.get("lang") or "th")
