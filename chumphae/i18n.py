"""Thai and English text for what people read; the language comes from Accept-Language."""

from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "unauthorized": {"th": "ต้องใช้โทเคนที่ถูกต้อง", "en": "A valid token is required."},
    "forbidden": {"th": "คุณไม่มีสิทธิ์ทำรายการนี้", "en": "You are not allowed to do this."},
    "patient_forbidden": {
        "th": "คุณไม่ได้ดูแลผู้ป่วยรายนี้",
        "en": "You do not care for this patient.",
    },
    "not_found": {"th": "ไม่พบข้อมูลที่ต้องการ", "en": "Not found."},
    "validation": {"th": "ข้อมูลที่ส่งมาไม่ถูกต้อง", "en": "The request is not valid."},
    "conflict": {"th": "ข้อมูลขัดแย้งกับที่มีอยู่", "en": "This conflicts with what exists."},
    "server_error": {"th": "เกิดข้อผิดพลาดในระบบ", "en": "Something went wrong on the server."},
    "bad_request": {"th": "คำขอไม่ถูกต้อง", "en": "Bad request."},
    "alert_conflict": {"th": "การแจ้งเตือนนี้ปิดไปแล้ว", "en": "This alert is already resolved."},
    "visit_in_future": {"th": "เวลาเยี่ยมบ้านอยู่ในอนาคต", "en": "The visit time is in the future."},
    "band_in_use": {"th": "สายรัดข้อมือนี้ผู้ป่วยรายอื่นใช้อยู่", "en": "This wristband is in use by another patient."},
    "zone_build": {"th": "สร้างเขตปลอดภัยจากแผนที่ไม่ได้", "en": "The safe zone cannot be built from the map."},
    "no_band": {"th": "ผู้ป่วยรายนี้ยังไม่มีสายรัดข้อมือ", "en": "This patient has no wristband."},
    "band_mismatch": {"th": "สายรัดที่ได้ยินไม่ใช่ของผู้ป่วยรายนี้", "en": "The band heard is not this patient's band."},
    "feed_bad_message": {"th": "ข้อความไม่ถูกต้องตามรูปแบบฟีด", "en": "The message does not follow the feed protocol."},
    "too_many_attempts": {"th": "ยืนยันตัวตนผิดหลายครั้งเกินไป โปรดลองใหม่ภายหลัง",
                          "en": "Too many failed sign-ins from here; try again later."},
    "field_forbidden": {"th": "บทบาทของคุณแก้ไขข้อมูลช่องนี้ไม่ได้", "en": "Your role may not change these fields."},
    "feed_too_large": {"th": "ข้อความยาวเกินไป", "en": "The message is too large."},
    "unavailable": {"th": "ระบบไม่พร้อมชั่วคราว โปรดลองใหม่", "en": "Temporarily unavailable; try again."},
    "receiver_clash": {"th": "รหัสตัวรับสัญญาณของเกตเวย์นี้เป็นของเกตเวย์อื่นที่ใช้งานอยู่แล้ว",
                       "en": "This gateway's receiver ids are now another active gateway's."},
    "token_revoked": {"th": "โทเคนนี้ถูกยกเลิกแล้ว", "en": "This token has been revoked."},
}

LANGS = ("th", "en")


def pick_lang(accept_language: str | None, default: str = "th") -> str:
    """The best of th/en for an Accept-Language header (q-values honoured)."""
    if not accept_language:
        return default
    best, best_q = default, -1.0
    for part in accept_language.split(","):
        bits = part.strip().split(";")
        tag = bits[0].strip().lower()
        q = 1.0
        for b in bits[1:]:
            b = b.strip()
            if b.startswith("q="):
                try:
                    q = float(b[2:])
                except ValueError:
                    q = 0.0
        lang = tag.split("-")[0]
        if lang in LANGS and q > best_q:
            best, best_q = lang, q
    return best


def t(code: str, lang: str) -> str:
    entry = MESSAGES.get(code)
    if entry is None:
        return code
    return entry.get(lang) or entry["en"]
