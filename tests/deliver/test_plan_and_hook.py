"""Pure steps: channels per severity and quiet hours; the LINE webhook's events one by one (signature, codes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from chumphae.deliver import linehook, plan
from chumphae.deliver.message import patient_label
from chumphae.models import ContactPoint
from tests.conftest import World
from tests.deliver.conftest import T0
from tests.deliver.fakes import LINE_SECRET, line_signature

NIGHT = datetime(2025, 6, 1, 16, 30, tzinfo=UTC)  # 23:30 in Bangkok


@pytest.mark.parametrize(("now", "start", "end", "quiet"), [
    (NIGHT, "22:00", "06:00", True), (T0, "22:00", "06:00", False),  # wraps past midnight
    (NIGHT - timedelta(hours=2), "22:00", "06:00", False),  # 21:30
    (T0, "09:00", "11:00", True), (T0, None, None, False), (T0, "10:00", "10:00", False)])
def test_quiet_hours_in_bangkok_time(now: datetime, start: str | None, end: str | None, quiet: bool) -> None:
    assert plan.in_quiet_hours(now, start, end) is quiet


def test_channels_for_severity_contacts_and_quiet_hours() -> None:
    kw = dict(contacts=["line", "sms"], quiet_start="22:00", quiet_end="06:00")
    assert plan.channels_for(severity="critical", prefs=None, now=NIGHT, **kw) == ["line", "sms", "feed"]
    assert plan.channels_for(severity="high", prefs=None, now=NIGHT, **kw) == ["feed"]  # quiet hours
    assert plan.channels_for(severity="high", prefs=None, now=T0, **kw) == ["line", "feed"]
    assert plan.channels_for(severity="low", prefs=None, now=T0, **kw) == ["feed"]
    assert plan.channels_for(severity="low", prefs={"low": ["sms", "pigeon"]}, now=T0, **kw) == ["sms", "feed"]
    assert plan.channels_for(severity="critical", prefs=None, now=T0, contacts=[], quiet_start=None,
                             quiet_end=None) == ["feed"]  # no contact point: the feed only
    with pytest.raises(ValueError, match="HH:MM"):
        plan.parse_hhmm("late")


def test_patient_named_as_known_never_by_code() -> None:
    assert patient_label("นาง", "สมศรี ใจดี", "Somsri Jaidee", "th") == "นางสมศรี ใจดี"
    assert patient_label("005", "สมศรี ใจดี", None, "th") == "สมศรี ใจดี"  # a 43-file prename code
    assert patient_label("นาง", "สมศรี ใจดี", "Somsri Jaidee", "en") == "Somsri Jaidee"
    assert patient_label(None, "สมศรี ใจดี", None, "en") == "สมศรี ใจดี"


def test_signature_is_lines_hmac_base64() -> None:
    body = b'{"destination":"U0","events":[]}'
    sig = line_signature(body)
    assert linehook.verify(LINE_SECRET, body, sig)
    assert not linehook.verify(LINE_SECRET, body + b" ", sig)
    assert not linehook.verify("other", body, sig)
    assert not linehook.verify(LINE_SECRET, body, None) and not linehook.verify(LINE_SECRET, body, "")


def ev(kind: str, uid: str = "U" + "1" * 32, **kw: object) -> dict[str, object]:
    return {"type": kind, "source": {"type": "user", "userId": uid}, **kw}


def test_link_codes_expire_are_used_once_and_unfollow_deactivates(engine: Engine, world_on_engine: World) -> None:
    w = world_on_engine
    with Session(engine) as s:
        code = linehook.new_link_code(s, user_id=w.users["volunteer"], now=T0)
        stale = linehook.new_link_code(s, user_id=w.users["caregiver"], now=T0 - timedelta(days=2))
        s.commit()
        r = linehook.handle(s, {"events": [ev("message", message={"type": "text", "text": stale})]}, now=T0)
        assert (r.linked, r.ignored) == (0, 1)  # expired
        r = linehook.handle(s, {"events": [ev("postback", postback={"data": f"link={code.replace('-', ' ')}"}),
                                           "junk", ev("message", uid=""), ev("beacon")]}, now=T0)
        assert (r.linked, r.ignored) == (1, 3)
        s.commit()
        cp = s.exec(select(ContactPoint)).one()
        assert (cp.user_id, cp.channel, cp.active) == (w.users["volunteer"], "line", True)
        linehook.handle(s, {"events": [ev("unfollow")]}, now=T0)
        s.commit()
        assert s.exec(select(ContactPoint)).one().active is False
        assert linehook.user_for(s, "U" + "1" * 32) is None  # blocked: cannot acknowledge either
        linehook.handle(s, {"events": [ev("follow")]}, now=T0)
        assert s.exec(select(ContactPoint)).one().active is True
        r = linehook.handle(s, {"events": [ev("postback", postback={"data": "ack=999999"}),
                                           ev("postback", postback={"data": "ack=abc"})]}, now=T0)
        assert (r.acknowledged, r.ignored) == (0, 2)


@pytest.fixture
def world_on_engine(engine: Engine) -> World:
    from tests.conftest import build_world

    return build_world(engine)


def test_webhook_refuses_bad_bodies_with_problems(client, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    client.app.state.settings.line_channel_secret = SecretStr(LINE_SECRET)
    for raw in (b"{not json", b"[1, 2]"):
        r = client.post("/api/v1/line/webhook", content=raw, headers={"X-Line-Signature": line_signature(raw)})
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    raw = b'{"events": []}'
    r = client.post("/api/v1/line/webhook", content=raw, headers={"X-Line-Signature": line_signature(raw)})
    assert (r.status_code, r.json()) == (200, {"linked": 0, "acknowledged": 0, "ignored": 0})
    r = client.post("/api/v1/line/webhook", content=raw, headers={"X-Line-Signature": line_signature(raw, "x")})
    assert r.status_code == 401 and LINE_SECRET not in r.text


def test_each_event_with_a_reply_token_is_answered_in_thai_and_english(engine: Engine, world_on_engine: World) -> None:
    w = world_on_engine
    stranger = "U" + "2" * 32
    with Session(engine) as s:
        code = linehook.new_link_code(s, user_id=w.users["volunteer"], now=T0)
        r = linehook.handle(s, {"events": [
            ev("follow", replyToken="t1"),
            ev("message", replyToken="t2", message={"type": "text", "text": "ABCD-EFGH"}),  # not a code of ours
            ev("message", replyToken="t3", message={"type": "text", "text": code}),
            ev("message", replyToken="t4", message={"type": "text", "text": "ขอบคุณค่ะ"}),  # linked, chatting
            ev("postback", replyToken="t5", postback={"data": "ack=999999"}),
            ev("postback", replyToken="t6", postback={"data": "ack=1"}, uid=stranger),
            ev("message", message={"type": "text", "text": "no token, no reply"}, uid=stranger),
            ev("unfollow", replyToken="t7"),
        ]}, now=T0)
        s.commit()
    assert r.replies == [
        ("t1", linehook.REPLY_WELCOME), ("t2", linehook.REPLY_BAD_CODE), ("t3", linehook.REPLY_LINKED),
        ("t5", linehook.REPLY_NOT_TAKEN.format(id="999999")), ("t6", linehook.REPLY_NOT_LINKED)]
    for _, text in r.replies:
        thai, english = text.split("\n")
        assert any("\u0e00" <= ch <= "\u0e7f" for ch in thai) and english.isascii()
    assert code not in str(r.replies)
    assert linehook.reply_body("t1", "x") == {"replyToken": "t1", "messages": [{"type": "text", "text": "x"}]}
