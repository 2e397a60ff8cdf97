"""Storage behaves the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from chumphae.auth.service import create_user, user_by_token
from chumphae.auth.tokens import hash_token
from chumphae.models import Alert, AlertStatus, FeedEvent, Patient, User
from tests.factories import make_band, make_patient


def test_times_come_back_aware_utc(session: Session) -> None:
    bangkok_noon = datetime(2026, 11, 23, 12, 0, tzinfo=timezone(timedelta(hours=7)))
    p = make_patient(session)
    session.add(Alert(patient_id=p.id, type="sos", severity="critical", opened_at=bangkok_noon,
                      last_triggered_at=bangkok_noon))
    session.commit()
    session.expire_all()
    alert = session.exec(select(Alert)).one()
    assert alert.opened_at.tzinfo is not None
    assert alert.opened_at == datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


def test_thai_text_and_json_round_trip(session: Session) -> None:
    p = make_patient(session, name_th="นางบุญมี ศรีชมภู", thresholds={"dwell_s": 120, "โน้ต": "กลางคืน"})
    session.commit()
    session.expire_all()
    again = session.get(Patient, p.id)
    assert again is not None
    assert again.name_th == "นางบุญมี ศรีชมภู"
    assert again.thresholds == {"dwell_s": 120, "โน้ต": "กลางคืน"}


def test_one_unresolved_alert_per_patient_and_type(session: Session) -> None:
    p = make_patient(session)
    now = datetime.now(UTC)
    session.add(Alert(patient_id=p.id, type="wander", severity="high", opened_at=now, last_triggered_at=now))
    session.commit()
    session.add(Alert(patient_id=p.id, type="wander", severity="high", opened_at=now, last_triggered_at=now))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    first = session.exec(select(Alert)).one()
    first.status = AlertStatus.RESOLVED
    session.add(first)
    session.commit()
    session.add(Alert(patient_id=p.id, type="wander", severity="high", opened_at=now, last_triggered_at=now))
    session.commit()
    assert len(session.exec(select(Alert)).all()) == 2


def test_feed_cursor_increases(session: Session) -> None:
    ids = []
    for kind in ("alert_opened", "position", "alert_acknowledged"):
        ev = FeedEvent(kind=kind, payload={"k": kind})
        session.add(ev)
        session.commit()
        ids.append(ev.id)
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_tokens_are_stored_hashed(session: Session) -> None:
    user, token = create_user(session, name="อสม. ทดสอบ", role="volunteer")
    session.commit()
    row = session.exec(select(User)).one()
    assert token not in row.token_hash and row.token_hash == hash_token(token)
    assert user_by_token(session, token) is not None
    assert user_by_token(session, token + "x") is None


def test_band_address_unique(session: Session) -> None:
    p = make_patient(session)
    make_band(session, patient_id=p.id)
    session.commit()
    with pytest.raises(IntegrityError):
        make_band(session, patient_id=p.id)
