"""The alert state machine on SQLite and PostgreSQL: one open alert per patient and type, history, escalation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.alert import service
from chumphae.alert.service import AlertConflict, AlertInput
from chumphae.auth.service import assign, create_user
from chumphae.errors import Forbidden
from chumphae.feed import log as feed_log
from chumphae.models import Alert, AlertEvent, FeedEvent, OutboxNotice, User
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


# ---- PostgreSQL: two transactions on one alert at once (as two backend processes would) --------------------------

def _pg_only(session: Session) -> None:
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")


def _waits_on_a_lock(engine: Engine, backend_pid: int) -> None:
    """Return once that backend waits on a lock (the other transaction holds it)."""
    for _ in range(2000):
        with engine.connect() as conn:
            if conn.execute(text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p"),
                            {"p": backend_pid}).scalar() == "Lock":
                return
        time.sleep(0.005)
    raise AssertionError("the second transaction never waited for the first")


def _in_thread(engine: Engine, work: Callable[[Session], object]) -> tuple[threading.Thread, list[object], list[int]]:
    out: list[object] = []
    pid: list[int] = []

    def run() -> None:
        with Session(engine, expire_on_commit=False) as s:
            pid.append(s.connection().connection.driver_connection.info.backend_pid)  # type: ignore[union-attr]
            out.append(work(s))
            feed_log.append_many_and_commit(s, [])  # as the ingest path commits

    thread = threading.Thread(target=run)
    thread.start()
    for _ in range(2000):
        if pid:
            break
        time.sleep(0.001)
    return thread, out, pid


def test_two_raises_of_one_alert_at_once_make_one_alert_counted_twice(
        session: Session, people: tuple[int, User, User]) -> None:
    """A second raise (another process) waits for the first to commit, then re-triggers what it opened:
    one alert, count 2, both on the history and on the feed in commit order, every notice once per change."""
    _pg_only(session)
    pid, _, _ = people
    engine = session.get_bind().engine  # type: ignore[union-attr]
    first = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=pid), now=T0)
    thread, out, backend = _in_thread(engine, lambda s: service.raise_alert(
        s, alert=AlertInput(type="sos", t=T0 + timedelta(seconds=5), patient_id=pid), now=T0 + timedelta(seconds=5)))
    _waits_on_a_lock(engine, backend[0])
    feed_log.append_many_and_commit(session, [])
    thread.join(30)
    second = out[0]
    assert isinstance(second, service.AlertChange)
    assert (first.event, second.event, second.alert_id) == ("opened", "retriggered", first.alert_id)
    assert first.cursor is not None and second.cursor is not None and second.cursor > first.cursor
    with Session(engine) as s:
        alerts = s.exec(select(Alert).where(Alert.patient_id == pid)).all()
        assert [(a.count, a.status, a.last_triggered_at) for a in alerts] == [(2, "open", T0 + timedelta(seconds=5))]
        kinds = s.exec(select(AlertEvent.kind).where(AlertEvent.alert_id == first.alert_id)
                       .order_by(col(AlertEvent.id))).all()
        assert list(kinds) == ["opened", "retriggered"]
        feed = s.exec(select(FeedEvent).order_by(col(FeedEvent.id))).all()
        assert [(f.id, f.payload["event"], f.payload["alert"]["count"]) for f in feed] == [  # type: ignore[index]
            (first.cursor, "opened", 1), (second.cursor, "retriggered", 2)]
        told = s.exec(select(OutboxNotice.event, OutboxNotice.channel, OutboxNotice.provider_message_id)
                      .order_by(col(OutboxNotice.id))).all()
        assert sorted(told) == [("opened", "feed", f"feed:{first.cursor}"),
                                ("retriggered", "feed", f"feed:{second.cursor}")]


def test_a_resolve_waits_for_a_retrigger_in_flight_and_sees_it(session: Session,
                                                               people: tuple[int, User, User]) -> None:
    pid, carer, _ = people
    _pg_only(session)
    engine = session.get_bind().engine  # type: ignore[union-attr]
    opened = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=pid), now=T0)
    session.commit()
    again = service.raise_alert(session, alert=AlertInput(type="sos", t=T0 + timedelta(seconds=9), patient_id=pid),
                                now=T0 + timedelta(seconds=9))
    thread, out, backend = _in_thread(engine, lambda s: service.resolve(
        s, user=s.get(User, carer.id), alert_id=opened.alert_id, outcome="patient_safe")[1])
    _waits_on_a_lock(engine, backend[0])
    feed_log.append_many_and_commit(session, [])
    thread.join(30)
    resolved = out[0]
    assert isinstance(resolved, service.AlertChange) and resolved.event == "resolved"
    assert again.cursor is not None and resolved.cursor is not None and resolved.cursor > again.cursor
    with Session(engine) as s:
        alert = s.get(Alert, opened.alert_id)
        assert alert is not None and (alert.count, alert.status) == (2, "resolved")
        feed = s.exec(select(FeedEvent).order_by(col(FeedEvent.id))).all()
        assert [(f.payload["event"], f.payload["alert"]["count"], f.payload["alert"]["status"])  # type: ignore[index]
                for f in feed] == [("opened", 1, "open"), ("retriggered", 2, "open"), ("resolved", 2, "resolved")]


def test_one_alert_raised_twice_in_one_transaction(session: Session, people: tuple[int, User, User]) -> None:
    """Two SOS messages of one band in one batch: the second sees the first (opened, then re-triggered)."""
    pid, _, _ = people
    first = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=pid), now=T0)
    second = service.raise_alert(session, alert=AlertInput(type="sos", t=T0 + timedelta(seconds=1), patient_id=pid),
                                 now=T0 + timedelta(seconds=1))
    feed_log.append_many_and_commit(session, [])
    assert (first.event, second.event, first.alert_id) == ("opened", "retriggered", second.alert_id)
    alert = session.get(Alert, first.alert_id)
    assert alert is not None and alert.count == 2
    feed = session.exec(select(FeedEvent).order_by(col(FeedEvent.id))).all()
    assert [(f.id, f.payload["event"]) for f in feed] == [(first.cursor, "opened"), (second.cursor, "retriggered")]


def test_a_retrigger_of_an_acknowledged_alert_shows_who_is_on_it(session: Session,
                                                                  people: tuple[int, User, User]) -> None:
    pid, carer, _ = people
    sos = service.raise_alert(session, alert=AlertInput(type="sos", t=T0, patient_id=pid), now=T0)
    service.acknowledge(session, user=carer, alert_id=sos.alert_id, now=T0 + timedelta(seconds=20))
    session.commit()
    again = service.raise_alert(session, alert=AlertInput(type="sos", t=T0 + timedelta(minutes=2), patient_id=pid),
                                now=T0 + timedelta(minutes=2))
    feed_log.append_many_and_commit(session, [])
    assert again.event == "retriggered" and again.ring  # critical and fresh: rings though acknowledged
    row = session.exec(select(FeedEvent).where(FeedEvent.id == again.cursor)).one()
    shown = row.payload["alert"]
    assert isinstance(shown, dict)
    assert (shown["status"], shown["count"], shown["acknowledged_by"], shown["acknowledged_by_name"]) == (
        "acknowledged", 2, carer.id, "ลูกสาว")
