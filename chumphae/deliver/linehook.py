"""Our LINE account's webhook: verify the signature, link LINE users to ours, acknowledge from a postback.

- Every request is signed: `X-Line-Signature` = base64(HMAC-SHA256(raw body,
  channel secret)). A missing or wrong signature is refused before the body
  is read as JSON; neither the secret nor the signature is ever logged.
- Linking: an admin prints a one-time code for a user (`chumphae channels
  link-code USER`, stored hashed, valid 24 h); the user adds our LINE account
  (a `follow` event) and sends the code as a text message (or a postback
  `link=<code>`); their LINE user id becomes that user's `line` contact point.
  `unfollow` (blocked) deactivates it; a later `follow` re-activates it.
- Acting: the confirm template on an alert message posts back `ack=<alert id>`;
  the LINE user id is mapped to our user, who acknowledges the alert with the
  same rules as the page (they must be allowed to see it).
- Answering: every follow, text and postback event that carries a reply
  token gets one short reply, in Thai and English (linked or not, taken or
  not), so a person on a phone knows whether it worked. `HookResult.replies`
  holds them; the route sends them after its commit (`reply_body`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from sqlmodel import Session, select

from chumphae.alert import service
from chumphae.alert.service import AlertChange
from chumphae.errors import Forbidden, NotFound
from chumphae.models import ChannelName, ContactPoint, LineLinkCode, User
from chumphae.timeutil import utcnow

log = logging.getLogger(__name__)

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed on a phone
CODE_TTL = timedelta(hours=24)


def signature(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secret: str, body: bytes, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(signature(secret, body), given or "")


def _hash(code: str) -> str:
    return hashlib.sha256(code.strip().upper().replace("-", "").replace(" ", "").encode()).hexdigest()


def new_link_code(session: Session, *, user_id: int, now: datetime | None = None) -> str:
    """A one-time code (shown once, stored hashed) the user sends to our LINE account."""
    now = now or utcnow()
    code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    session.add(LineLinkCode(code_hash=_hash(code), user_id=user_id, expires_at=now + CODE_TTL))
    session.flush()
    return f"{code[:4]}-{code[4:]}"


def set_contact(session: Session, *, user_id: int, channel: str, address: str) -> ContactPoint:
    """Create or replace a user's contact point on one channel (active)."""
    row = session.exec(select(ContactPoint).where(ContactPoint.user_id == user_id,
                                                  ContactPoint.channel == channel)).first()
    if row is None:
        row = ContactPoint(user_id=user_id, channel=channel, address=address)
    row.address, row.active = address, True
    session.add(row)
    session.flush()
    return row


def link(session: Session, *, line_user_id: str, code: str, now: datetime | None = None) -> int | None:
    """Link `line_user_id` to the owner of an unused, unexpired code; their user id, or None."""
    now = now or utcnow()
    row = session.get(LineLinkCode, _hash(code))
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    row.used_at = now
    session.add(row)
    for other in session.exec(select(ContactPoint).where(ContactPoint.channel == ChannelName.LINE,
                                                         ContactPoint.address == line_user_id,
                                                         ContactPoint.user_id != row.user_id)):
        other.active = False  # one LINE user acts as one of ours
        session.add(other)
    set_contact(session, user_id=row.user_id, channel=ChannelName.LINE, address=line_user_id)
    return row.user_id


def user_for(session: Session, line_user_id: str) -> User | None:
    cp = session.exec(select(ContactPoint).where(ContactPoint.channel == ChannelName.LINE,
                                                 ContactPoint.address == line_user_id, ContactPoint.active)).first()
    if cp is None:
        return None
    user = session.get(User, cp.user_id)
    return user if user is not None and user.active else None


# What a person reads back in LINE (Thai first, then English: the phone may be anyone's).
REPLY_WELCOME = ("สวัสดีค่ะ นี่คือ Smart Chumphae ส่งรหัสเชื่อมบัญชี 8 ตัวที่ได้รับจากผู้ดูแลระบบมาที่นี่ได้เลย\n"
                 "Hello, this is Smart Chumphae. Send the 8-character link code your administrator gave you.")
REPLY_LINKED = ("เชื่อมบัญชีแล้ว การแจ้งเตือนผู้ป่วยที่คุณดูแลจะส่งมาที่นี่\n"
                "Linked: alerts for the patients you care for will come here.")
REPLY_BAD_CODE = ("รหัสไม่ถูกต้อง ใช้แล้ว หรือหมดอายุ (ใช้ได้ 24 ชม.) ขอรหัสใหม่จากผู้ดูแลระบบ\n"
                  "That code is wrong, used or expired (codes last 24 h). Ask your administrator for a new one.")
REPLY_NOT_LINKED = ("บัญชี LINE นี้ยังไม่ได้เชื่อมกับ Smart Chumphae ส่งรหัสเชื่อมบัญชีก่อน\n"
                    "This LINE account is not linked to Smart Chumphae yet: send your link code first.")
REPLY_TAKEN = "รับเรื่องการแจ้งเตือน #{id} แล้ว\nYou have taken alert #{id}."
REPLY_NOT_TAKEN = ("รับเรื่องการแจ้งเตือน #{id} ไม่ได้ (ปิดไปแล้ว หรือไม่ใช่ผู้ป่วยที่คุณดูแล)\n"
                   "Alert #{id} could not be taken (closed, or not a patient you care for).")


@dataclass
class HookResult:
    linked: int = 0
    acknowledged: int = 0
    ignored: int = 0
    changes: list[AlertChange] = field(default_factory=list)
    replies: list[tuple[str, str]] = field(default_factory=list)  # (reply token, text)


def reply_body(token: str, text: str) -> dict[str, Any]:
    """The Messaging API reply (`POST /v2/bot/message/reply`) for one event."""
    return {"replyToken": token, "messages": [{"type": "text", "text": text[:5000]}]}


def _set_follow(session: Session, line_user_id: str, active: bool) -> None:
    for cp in session.exec(select(ContactPoint).where(ContactPoint.channel == ChannelName.LINE,
                                                      ContactPoint.address == line_user_id)):
        cp.active = active
        session.add(cp)


def _ack(session: Session, line_user_id: str, alert_id: str, result: HookResult, now: datetime) -> str:
    """Acknowledge from a postback; the reply's text."""
    user = user_for(session, line_user_id)
    if user is None:
        result.ignored += 1
        return REPLY_NOT_LINKED
    if not alert_id.isdigit() or len(alert_id) > 18:
        result.ignored += 1
        return REPLY_NOT_TAKEN.format(id=alert_id[:18])
    try:
        with session.begin_nested():
            _, change = service.acknowledge(session, user=user, alert_id=int(alert_id), route="LINE postback",
                                            now=now)
    except (NotFound, Forbidden, service.AlertConflict) as exc:
        log.info("LINE postback ack of alert %s by user %s refused: %s", alert_id, user.id, type(exc).__name__)
        result.ignored += 1
        return REPLY_NOT_TAKEN.format(id=alert_id)
    result.acknowledged += 1
    if change is not None:
        result.changes.append(change)
    return REPLY_TAKEN.format(id=alert_id)


def handle(session: Session, body: dict[str, Any], *, now: datetime | None = None) -> HookResult:
    """Apply one verified webhook body's events in the caller's transaction."""
    now = now or utcnow()
    result = HookResult()
    events = body.get("events")
    for ev in events if isinstance(events, list) else []:
        if not isinstance(ev, dict):
            result.ignored += 1
            continue
        source = ev.get("source") if isinstance(ev.get("source"), dict) else {}
        uid = source.get("userId") if isinstance(source, dict) else None
        kind = ev.get("type")
        token = ev.get("replyToken") if isinstance(ev.get("replyToken"), str) else None
        reply: str | None = None
        if not isinstance(uid, str) or not uid:
            result.ignored += 1
        elif kind in ("follow", "unfollow"):
            _set_follow(session, uid, kind == "follow")
            if kind == "follow":
                reply = REPLY_LINKED if user_for(session, uid) is not None else REPLY_WELCOME
        elif kind == "message" and isinstance(ev.get("message"), dict) and ev["message"].get("type") == "text":
            if link(session, line_user_id=uid, code=str(ev["message"].get("text", ""))[:32], now=now):
                result.linked += 1
                reply = REPLY_LINKED
            else:  # a linked person chatting gets no answer; anyone else is told the code did not work
                result.ignored += 1
                reply = None if user_for(session, uid) is not None else REPLY_BAD_CODE
        elif kind == "postback" and isinstance(ev.get("postback"), dict):
            data = parse_qs(str(ev["postback"].get("data", ""))[:300])
            if "ack" in data:
                reply = _ack(session, uid, data["ack"][0], result, now)
            elif "link" in data and link(session, line_user_id=uid, code=data["link"][0][:32], now=now):
                result.linked += 1
                reply = REPLY_LINKED
            else:
                result.ignored += 1
                reply = REPLY_BAD_CODE if "link" in data else None
        else:
            result.ignored += 1
        if token and reply:
            result.replies.append((token, reply))
    session.flush()
    return result
