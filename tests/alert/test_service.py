"""The alert state machine on SQLite and PostgreSQL: one open alert per patient and type, history, escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from chumphae.alert import service
from chumphae.alert.service import AlertConflict, AlertInput
from chumphae.auth.service import assign, create_user
from chumphae.errors import Forbidden
from chumphae.models import Alert, AlertEvent, FeedEvent, User
from tests.factories import make_patient

T0 = datetime(2025, 6, 1, 6, 0, tzinfo=UTC)


def wander(patient_id: int, t: datetime, **kw: object) -> AlertInput:
    fields: dict[str, object] = {"lat": 16.5461, "lon": 102.1030, "uncertainty_m": 25.0, "parcel_code": "03I002",
                                 "description_th": "ใกล้วัด", "description_en": "near the temple",
                                 "zone_version": 3}
    return AlertInput(type="wander", t=t, patient_id=patient_id, **{**fields, **kw})  # type: ignore[arg-type]


@pytest.fixture
def people(session: Session) -> tuple[int, User, User]:
    p = make_patient(session)
    carer, _ = create_user(session, name="ลูกสาว", role="caregiver")
    stranger, _ = create_user(session, name="คนอื่น", role="volunteer")
    assign(session, user_id=carer.id, patient_id=p.id)  # type: ignore[arg-type]
    session.commit()
    return p.id, carer, stranger  # type: ignore[return-value]


def test_open_then_retrigger_updates_the_same_alert(session: Session, people: tuple[int, User, User]) -> None:
    pid, _, _ = people
    first = service.raise_alert(session, alert=wander(pid, T0), now=T0)
    second = service.raise_alert(session, alert=wander(pid, T0 + timedelta(seconds=40), lat=16.547),
                                 now=T0 + timedelta(seconds=41))
    session.commit()
    assert (first.event, second.event) == ("opened", "retriggered")
    assert first.alert_id == second.alert_id and first.ring and second.ring
    alert = session.get(Alert, first.alert_id)
    assert alert is not None
    assert (alert.count, alert.severity, alert.status) == (2, "high", "open")
    assert alert.opened_at == T0 and alert.last_triggered_at == T0 + timedelta(seconds=40)
    assert alert.lat == 16.547 and alert.zone_version == 3 and alert.description_en == "near the temple"
    assert alert.next_escalation_at == T0 + timedelta(seconds=300)  # high: 5 min at the caregivers
    feed = session.exec(select(FeedEvent).order_by(col(FeedEvent.id))).all()
    assert [f.payload["event"] for f in feed] == ["opened", "retriggered"]
    assert first.cursor is not None and second.cursor is not None and second.cursor > first.cursor
    assert feed[1].payload["alert"]["count"] == 2  # type: ignore[index]


def test_acknowledge_stops_escalation_and_resolve_closes(session: Session, people: tuple[int, User, User]) -> None:
    pid, carer, _ = people
    opened = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=pid), now=T0)
    alert, change = service.acknowledge(session, user=carer, alert_id=opened.alert_id, now=T0 + timedelta(seconds=30))
    assert change is not None and alert.next_escalation_at is None and alert.acknowledged_by == carer.id
    again, none = service.acknowledge(session, user=carer, alert_id=opened.alert_id)
    assert none is None and again.acknowledged_at == T0 + timedelta(seconds=30)
    assert service.escalate_due(session, now=T0 + timedelta(hours=1)) == []
    alert, change = service.resolve(session, user=carer, alert_id=opened.alert_id, outcome="patient_safe",
                                    note="นั่งอยู่หน้าบ้าน")
    session.commit()
    assert (alert.status, alert.outcome, alert.resolution_note) == ("resolved", "patient_safe", "นั่งอยู่หน้าบ้าน")
    with pytest.raises(AlertConflict):
        service.resolve(session, user=carer, alert_id=opened.alert_id, outcome="other")
    with pytest.raises(AlertConflict):
        service.acknowledge(session, user=carer, alert_id=opened.alert_id)
    kinds = session.exec(select(AlertEvent.kind).where(AlertEvent.alert_id == opened.alert_id)
                         .order_by(col(AlertEvent.id))).all()
    assert list(kinds) == ["opened", "acknowledged", "resolved"]
    # after resolution the same condition opens a new alert
    reopened = service.raise_alert(session, alert=AlertInput(type="sos", t=T0 + timedelta(hours=2), patient_id=pid),
                                   now=T0 + timedelta(hours=2))
    assert reopened.event == "opened" and reopened.alert_id != opened.alert_id


def test_escalation_climbs_per_severity_on_the_clock(session: Session, people: tuple[int, User, User]) -> None:
    pid, _, _ = people
    opened = service.raise_alert(session, alert=AlertInput(type="fall", t=T0, patient_id=pid), now=T0)
    assert service.escalate_due(session, now=T0 + timedelta(seconds=119)) == []
    up = service.escalate_due(session, now=T0 + timedelta(seconds=121))
    assert [(c.alert_id, c.level, c.event, c.ring) for c in up] == [(opened.alert_id, 1, "escalated", True)]
    # a server that slept through two more deadlines catches up in one step and stops at the hospital
    up = service.escalate_due(session, now=T0 + timedelta(hours=3))
    assert [c.level for c in up] == [3]
    alert = session.get(Alert, opened.alert_id)
    assert alert is not None and alert.next_escalation_at is None
    assert service.escalate_due(session, now=T0 + timedelta(days=1)) == []
    low = service.raise_alert(session, alert=AlertInput(type="battery_low", t=T0, patient_id=pid), now=T0)
    assert session.get(Alert, low.alert_id).next_escalation_at is None  # type: ignore[union-attr]


def test_late_events_keep_true_time_and_ring_only_when_someone_must_act(
        session: Session, people: tuple[int, User, User]) -> None:
    pid, carer, _ = people
    now = T0 + timedelta(hours=1)
    # a fall from 50 minutes ago, flushed after an outage: nobody knows yet, so it rings, marked late
    fall = service.raise_alert(session, alert=AlertInput(type="fall", t=T0 + timedelta(minutes=10), patient_id=pid),
                               now=now)
    alert = session.get(Alert, fall.alert_id)
    assert fall.ring and alert is not None and alert.late and alert.opened_at == T0 + timedelta(minutes=10)
    assert alert.next_escalation_at == now + timedelta(seconds=120)  # the clock starts when we learn of it
    # an acknowledged wander: its late re-trigger is stored but does not ring
    w = service.raise_alert(session, alert=wander(pid, now), now=now)
    service.acknowledge(session, user=carer, alert_id=w.alert_id)
    quiet = service.raise_alert(session, alert=wander(pid, now - timedelta(minutes=30)), now=now)
    assert quiet.event == "retriggered" and not quiet.ring
    assert session.get(Alert, w.alert_id).opened_at == now - timedelta(minutes=30)  # type: ignore[union-attr]
    # resolved afterwards; a late event from before the resolution is history, not a new alert
    service.resolve(session, user=carer, alert_id=w.alert_id, outcome="found", now=now + timedelta(minutes=5))
    hist = service.raise_alert(session, alert=wander(pid, now - timedelta(minutes=20)), now=now + timedelta(minutes=10))
    assert (hist.event, hist.ring, hist.alert_id, hist.cursor) == ("late_history", False, w.alert_id, None)
    session.commit()
    assert session.exec(select(Alert).where(Alert.type == "wander")).all().__len__() == 1


def test_fresh_critical_retrigger_rings_after_acknowledgement(session: Session, people: tuple[int, User, User]) -> None:
    pid, carer, _ = people
    sos = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=pid), now=T0)
    service.acknowledge(session, user=carer, alert_id=sos.alert_id)
    again = service.raise_alert(session, alert=AlertInput(type="sos", t=T0 + timedelta(minutes=3), patient_id=pid),
                                now=T0 + timedelta(minutes=3))
    assert again.ring
    w = service.raise_alert(session, alert=wander(pid, T0), now=T0)
    service.acknowledge(session, user=carer, alert_id=w.alert_id)
    assert not service.raise_alert(session, alert=wander(pid, T0 + timedelta(minutes=1)),
                                   now=T0 + timedelta(minutes=1)).ring


def test_only_carers_may_act(session: Session, people: tuple[int, User, User]) -> None:
    pid, _, stranger = people
    opened = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=pid), now=T0)
    with pytest.raises(Forbidden):
        service.acknowledge(session, user=stranger, alert_id=opened.alert_id)
    gw_alert = service.raise_alert(session, alert=AlertInput(type="gateway_offline", t=T0, patient_id=None,
                                                             gateway_id=None), now=T0)
    with pytest.raises(Forbidden):
        service.acknowledge(session, user=stranger, alert_id=gw_alert.alert_id)
