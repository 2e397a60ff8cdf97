"""A rung of nobody never holds a patient's alert (rung27), on SQLite and PostgreSQL.

outside27 found a volunteer who is her patient's only carer told nothing for 300 s: the wander opened at the
empty caregiver rung. Now an alert opens at the lowest rung with an active person, and a climb that reaches a
rung of nobody goes on at once to the next rung with someone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from chumphae.alert import service
from chumphae.alert.service import AlertInput
from chumphae.auth.service import assign, create_user
from chumphae.feed import frames
from chumphae.models import Alert, AlertEvent, FeedEvent, OutboxNotice, User
from tests.factories import make_patient

T0 = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)  # 12:00 in Bangkok


def _user(session: Session, name: str, role: str) -> User:
    user, _ = create_user(session, name=name, role=role)
    return user


def _told(session: Session, alert_id: int) -> list[tuple[int, int, str]]:
    """(user id, level, event) of the alert's feed notices: one per person told per change."""
    rows = session.exec(select(OutboxNotice).where(OutboxNotice.alert_id == alert_id, OutboxNotice.channel == "feed")
                        .order_by(col(OutboxNotice.id))).all()
    return [(r.user_id, r.level, r.event) for r in rows]


def _history(session: Session, alert_id: int) -> list[tuple[str, dict[str, object]]]:
    rows = session.exec(select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(col(AlertEvent.id))).all()
    return [(r.kind, dict(r.details or {})) for r in rows]


def _frame(session: Session, alert_id: int, event: str) -> tuple[dict[str, object], bool]:
    row = session.exec(select(FeedEvent).where(FeedEvent.kind == "alert").order_by(col(FeedEvent.id).desc())).first()
    assert row is not None and row.payload["event"] == event
    alert = dict(row.payload["alert"])  # type: ignore[call-overload]
    assert alert["id"] == alert_id
    return alert, bool(row.payload["ring"])


@pytest.fixture
def ladder(session: Session) -> dict[str, User]:
    people = {who: _user(session, who, role) for who, role in [
        ("carer", "caregiver"), ("vol", "volunteer"), ("manager", "care_manager"), ("doctor", "hospital")]}
    session.commit()
    return people


def test_volunteer_only_patient_sos_tells_her_at_once_caregiver_patient_unchanged(
        session: Session, ladder: dict[str, User]) -> None:
    vol, carer = ladder["vol"], ladder["carer"]
    alone = make_patient(session, name_th="บัวผัน")
    cared = make_patient(session, name_th="สมศรี")
    assign(session, user_id=vol.id, patient_id=alone.id, relation="volunteer")  # type: ignore[arg-type]
    assign(session, user_id=carer.id, patient_id=cared.id)  # type: ignore[arg-type]
    assign(session, user_id=vol.id, patient_id=cared.id, relation="volunteer")  # type: ignore[arg-type]
    session.commit()

    sos = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=alone.id), now=T0)
    session.commit()
    assert (sos.event, sos.level, sos.ring) == ("opened", 1, True)
    alert = session.get(Alert, sos.alert_id)
    assert alert is not None and alert.escalation_level == 1
    assert alert.next_escalation_at == T0 + timedelta(seconds=300)  # the volunteer rung's delay, from now
    assert _told(session, sos.alert_id) == [(vol.id, 1, "opened")]  # her, at once; nobody else
    assert _history(session, sos.alert_id) == [("opened", {"late": False, "confidence": 1.0, "skipped": [0]})]
    shown, ring = _frame(session, sos.alert_id, "opened")
    assert (shown["escalation_level"], shown["escalated_to"]) == (1, "volunteer")
    assert frames.attention(frames.load_viewer(session, vol), shown, ring) is True
    assert frames.attention(frames.load_viewer(session, ladder["manager"]), shown, ring) is False

    # a patient with a caregiver: as before, the caregivers first, the volunteer 120 s later
    other = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=cared.id), now=T0)
    session.commit()
    assert other.level == 0
    alert = session.get(Alert, other.alert_id)
    assert alert is not None and alert.next_escalation_at == T0 + timedelta(seconds=120)
    assert _told(session, other.alert_id) == [(carer.id, 0, "opened")]
    assert _history(session, other.alert_id) == [("opened", {"late": False, "confidence": 1.0})]
    shown, ring = _frame(session, other.alert_id, "opened")
    assert frames.attention(frames.load_viewer(session, vol), shown, ring) is False
    assert frames.attention(frames.load_viewer(session, carer), shown, ring) is True


def test_patient_with_nobody_of_her_own_reaches_the_care_managers_at_once(
        session: Session, ladder: dict[str, User]) -> None:
    p = make_patient(session)
    gone = _user(session, "อดีตผู้ดูแล", "caregiver")
    gone.active = False  # an inactive carer counts as nobody
    session.add(gone)
    assign(session, user_id=gone.id, patient_id=p.id)  # type: ignore[arg-type]
    session.commit()

    sos = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=p.id), now=T0)
    session.commit()
    assert (sos.event, sos.level) == ("opened", 2)
    alert = session.get(Alert, sos.alert_id)
    assert alert is not None and alert.next_escalation_at == T0 + timedelta(seconds=600)
    assert _told(session, sos.alert_id) == [(ladder["manager"].id, 2, "opened")]
    assert _history(session, sos.alert_id) == [("opened", {"late": False, "confidence": 1.0, "skipped": [0, 1]})]
    shown, ring = _frame(session, sos.alert_id, "opened")
    assert shown["escalated_to"] == "care_manager"
    assert frames.attention(frames.load_viewer(session, ladder["manager"]), shown, ring) is True
    # the hospital still comes after the care managers' 600 s
    up = service.escalate_due(session, now=T0 + timedelta(seconds=601))
    session.commit()
    assert [(c.alert_id, c.level) for c in up] == [(sos.alert_id, 3)]
    assert _told(session, sos.alert_id)[-1] == (ladder["doctor"].id, 3, "escalated")
    assert _history(session, sos.alert_id)[-1] == ("escalated", {"from": 2, "to": 3})


def test_escalation_over_an_empty_volunteer_rung_lands_on_the_care_managers(
        session: Session, ladder: dict[str, User]) -> None:
    carer, manager = ladder["carer"], ladder["manager"]
    p = make_patient(session)
    assign(session, user_id=carer.id, patient_id=p.id)  # type: ignore[arg-type]
    session.commit()

    fall = service.raise_alert(session, alert=AlertInput(type="fall", t=T0, patient_id=p.id), now=T0)
    session.commit()
    assert fall.level == 0
    assert service.escalate_due(session, now=T0 + timedelta(seconds=119)) == []
    up = service.escalate_due(session, now=T0 + timedelta(seconds=121))
    session.commit()
    assert [(c.alert_id, c.level, c.event) for c in up] == [(fall.alert_id, 2, "escalated")]
    alert = session.get(Alert, fall.alert_id)
    assert alert is not None and alert.escalation_level == 2
    # the care managers' 600 s count from the climb (due at 120 s), not from the empty rung
    assert alert.next_escalation_at == T0 + timedelta(seconds=120 + 600)
    assert _told(session, fall.alert_id) == [(carer.id, 0, "opened"), (manager.id, 2, "escalated")]
    assert _history(session, fall.alert_id)[-1] == ("escalated", {"from": 0, "to": 2, "skipped": [1]})
    shown, ring = _frame(session, fall.alert_id, "escalated")
    assert frames.attention(frames.load_viewer(session, manager), shown, ring) is True


def test_an_undelivered_climb_passes_over_an_empty_rung_too(session: Session, ladder: dict[str, User]) -> None:
    carer, manager = ladder["carer"], ladder["manager"]
    p = make_patient(session)
    assign(session, user_id=carer.id, patient_id=p.id)  # type: ignore[arg-type]
    session.commit()
    w = service.raise_alert(session, alert=AlertInput(type="wander", t=T0, patient_id=p.id), now=T0)
    session.commit()
    later = T0 + timedelta(seconds=30)
    change = service.escalate_undelivered(session, alert_id=w.alert_id, level=0, now=later)
    session.commit()
    assert change is not None and change.level == 2
    alert = session.get(Alert, w.alert_id)
    assert alert is not None and alert.next_escalation_at == later + timedelta(seconds=1800)
    assert _told(session, w.alert_id)[-1] == (manager.id, 2, "escalated")
    assert _history(session, w.alert_id)[-1] == (
        "escalated", {"from": 0, "to": 2, "reason": "undelivered", "skipped": [1]})


def test_nobody_on_any_rung_climbs_as_before(session: Session) -> None:
    p = make_patient(session)
    session.commit()
    sos = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=p.id), now=T0)
    session.commit()
    alert = session.get(Alert, sos.alert_id)
    assert sos.level == 0 and alert is not None and alert.next_escalation_at == T0 + timedelta(seconds=120)
    up = service.escalate_due(session, now=T0 + timedelta(seconds=121))
    assert [c.level for c in up] == [1]
    assert _told(session, sos.alert_id) == []
    assert _history(session, sos.alert_id)[-1] == ("escalated", {"from": 0, "to": 1})
