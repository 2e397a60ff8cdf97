"""The outbox and the worker on SQLite and PostgreSQL, against the fake providers over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.alert import service
from chumphae.alert.service import AlertInput
from chumphae.deliver import notify
from chumphae.deliver.run import channels, http_client
from chumphae.deliver.worker import Worker, WorkerOptions
from chumphae.feed import log as feed_log
from chumphae.models import Alert, DeliveryPreference, OutboxNotice
from tests.alert.roundtrips import RoundTrips
from tests.conftest import World, build_world
from tests.deliver.conftest import T0, Clock, Fakes, options, raise_sos, sos_input


def notices(engine: Engine, **where: object) -> list[OutboxNotice]:
    with Session(engine) as s:
        q = select(OutboxNotice).order_by(col(OutboxNotice.id))
        for k, v in where.items():
            q = q.where(getattr(OutboxNotice, k) == v)
        return list(s.exec(q).all())


@asynccontextmanager
async def worker(engine: Engine, fakes: Fakes, clock: Clock, opts: WorkerOptions | None = None,
                 **settings: object) -> AsyncIterator[Worker]:
    s = fakes.settings(**settings)
    async with http_client(s) as client:
        yield Worker(engine, channels(client, s), opts or options(), public_url=s.public_url, clock=clock,
                     rnd=lambda: 0.0)


def test_the_feed_lock_is_taken_after_every_read_of_a_ringing_change(engine: Engine, district: World,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: the feed writers' lock is taken in the commit's own pipeline, after every read of the change
    (who is told, on which channels) and its other writes, so an alert holds up the other feed writers (a
    district's positions) for the server's time only; the whole raise is two round trips: its reads, then its
    write with the COMMIT. SQLite (one writer at a time) takes no such lock."""
    if engine.dialect.name != "postgresql":
        statements: list[str] = []

        def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            change = raise_sos(engine, district.own_patient)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert not any("pg_advisory" in text or "pg_notify" in text for text in statements)
    else:
        trips = RoundTrips(monkeypatch)
        with Session(engine, expire_on_commit=False) as s:
            change = service.raise_alert(s, alert=sos_input(district.own_patient), now=T0)
            feed_log.append_many_and_commit(s, [])  # as the ingest path commits
        assert len(trips.trips) == 2, trips.trips
        reads, write = trips.trips
        assert not any("pg_notify" in text for text in reads)
        locked = [i for i, text in enumerate(write) if "pg_notify" in text]
        assert len(locked) == 1 and write[locked[0] + 1:] == ["COMMIT"], write
    assert change.cursor is not None
    rows = notices(engine)
    assert {r.channel for r in rows} == {"line", "sms", "feed"}  # all written, the feed's with its cursor
    assert [r.provider_message_id for r in rows if r.channel == "feed"] == [f"feed:{change.cursor}"]


def test_notices_are_written_with_the_alert_or_not_at_all(engine: Engine, district: World) -> None:
    change = raise_sos(engine, district.own_patient)
    rows = notices(engine)
    assert {(r.user_id, r.channel, r.status, r.level) for r in rows} == {
        (district.users["caregiver"], "line", "queued", 0), (district.users["caregiver"], "sms", "queued", 0),
        (district.users["caregiver"], "feed", "sent", 0)}
    assert all(r.alert_id == change.alert_id and r.event == "opened" for r in rows)
    assert len({r.key for r in rows}) == 3
    assert [r.provider_message_id for r in rows if r.channel == "feed"] == [f"feed:{change.cursor}"]
    with Session(engine) as s:  # an escalation rolled back leaves no notice behind
        assert service.escalate_due(s, now=T0 + timedelta(seconds=121))
        s.rollback()
    assert len(notices(engine)) == 3
    with Session(engine) as s:  # committed, the volunteer's notices exist
        service.escalate_due(s, now=T0 + timedelta(seconds=121))
        s.commit()
    assert {(r.user_id, r.channel, r.event) for r in notices(engine, level=1)} == {
        (district.users["volunteer"], "line", "escalated"), (district.users["volunteer"], "feed", "escalated")}


def test_preferences_and_quiet_hours_never_silence_critical(engine: Engine, district: World) -> None:
    with Session(engine) as s:
        s.add(DeliveryPreference(user_id=district.users["caregiver"], channels={"high": ["sms"], "critical": ["line"]},
                                 quiet_start="09:00", quiet_end="11:00"))  # T0 is 10:00 in Bangkok
        s.commit()
    raise_sos(engine, district.own_patient, type_="wander")  # high, in quiet hours: the feed only
    raise_sos(engine, district.own_patient, type_="fall")  # critical: LINE as asked, quiet hours or not
    got = {(r.event, r.channel) for r in notices(engine)}
    with Session(engine) as s:
        types = {a.id: a.type for a in s.exec(select(Alert)).all()}
    by_type = {(types[r.alert_id], r.channel) for r in notices(engine) if r.alert_id}
    assert by_type == {("wander", "feed"), ("fall", "line"), ("fall", "feed")}, got


async def test_retries_honour_retry_after_and_deliver_once(engine: Engine, district: World, fakes: Fakes) -> None:
    fakes.line.script = ["429", "500", "hang", "ok"]
    fakes.line.retry_after = "7"
    fakes.sms.script = ["accept_hang", "ok"]  # the gateway took it but the answer never came
    fakes.line.hang_s = fakes.sms.hang_s = 1.0
    raise_sos(engine, district.own_patient)
    clock = Clock(T0)
    async with worker(engine, fakes, clock) as w:
        await w.run_once()
        line = notices(engine, channel="line")[0]
        assert line.status == "queued" and line.last_error == "429 Too Many Requests"
        assert line.next_try_at - clock.now == timedelta(seconds=7)  # Retry-After, not the 0.5 s backoff
        clock.advance(6)
        assert await w.run_once() == 1  # only the SMS is due (its backoff was 0.5 s)
        for _ in range(6):
            clock.advance(10)
            await w.run_once()
    line, sms = notices(engine, channel="line")[0], notices(engine, channel="sms")[0]
    assert (line.status, line.attempts, line.provider_message_id) == ("sent", 4, fakes.line.ids[line.key])
    assert (sms.status, sms.attempts) == ("sent", 2)
    assert fakes.line.accepted == {line.key: 1} and fakes.sms.accepted == {sms.key: 1}
    assert {h.key for h in fakes.line.hits} == {line.key}  # every try carried the same retry key
    text = fakes.line.hits[-1].body["messages"][0]["text"]
    assert "กดขอความช่วยเหลือ" in text and "นางผู้ป่วยหนึ่ง" in text and "120 ม. ทางทิศเหนือของวัดศรีชมภู" in text
    assert "1409900000011" not in text and f"https://chumphae.example/#alert={line.alert_id}" in text
    assert "10:00 น." in text


async def test_giving_up_escalates_to_the_next_rung(engine: Engine, district: World, fakes: Fakes) -> None:
    fakes.line.script = ["500"] * 30
    fakes.sms.script = ["500"] * 30
    change = raise_sos(engine, district.own_patient)
    clock = Clock(T0)
    async with worker(engine, fakes, clock, options(give_up_s=60)) as w:
        for _ in range(8):
            await w.run_once()
            clock.advance(10)
        assert w.counts["gave_up"] == 2
    with Session(engine) as s:
        alert = s.get(Alert, change.alert_id)
        assert alert is not None and alert.escalation_level == 1  # once: the second give-up found it climbed
    level0 = [r for r in notices(engine) if r.level == 0 and r.channel != "feed"]
    assert {r.status for r in level0} == {"gave_up"}
    level1 = notices(engine, level=1)
    assert {(r.user_id, r.channel, r.event) for r in level1} == {
        (district.users["volunteer"], "line", "escalated"), (district.users["volunteer"], "feed", "escalated")}


async def test_acknowledged_alert_does_not_climb_when_a_notice_gives_up(engine: Engine, district: World,
                                                                        fakes: Fakes) -> None:
    fakes.line.script = ["400"]  # refused for good (e.g. the user blocked us)
    fakes.sms.script = ["ok"]
    change = raise_sos(engine, district.own_patient)
    with Session(engine) as s:
        user = s.get(service.User, district.users["caregiver"])  # type: ignore[attr-defined]
        service.acknowledge(s, user=user, alert_id=change.alert_id)
        s.commit()
    async with worker(engine, fakes, Clock(T0)) as w:
        await w.run_once()
    assert {r.channel: r.status for r in notices(engine)} == {"line": "failed", "sms": "sent", "feed": "sent"}
    with Session(engine) as s:
        assert s.get(Alert, change.alert_id).escalation_level == 0  # type: ignore[union-attr]


async def test_killed_mid_send_resends_nothing_accepted(engine: Engine, district: World, fakes: Fakes) -> None:
    """Worker A dies after LINE accepted the push but before it heard; B takes over after the lease."""
    fakes.line.script = ["accept_hang"]
    fakes.line.hang_s = 3.0
    fakes.sms.script = ["hang"]
    fakes.sms.hang_s = 3.0
    raise_sos(engine, district.own_patient)
    clock = Clock(T0)
    async with worker(engine, fakes, clock, delivery_timeout_s=10) as a:
        task = asyncio.create_task(a.run_once())
        while not fakes.line.accepted or len(fakes.sms.hits) < 1:
            await asyncio.sleep(0.02)
        task.cancel()  # killed mid-send: nothing recorded
        with pytest.raises(asyncio.CancelledError):
            await task
    assert {r.status for r in notices(engine) if r.channel != "feed"} == {"sending"}
    async with worker(engine, fakes, clock) as b:
        assert await b.run_once() == 0  # A's lease still holds: B must not send beside a live A
        clock.advance(6)
        assert await b.run_once() == 2
    line, sms = notices(engine, channel="line")[0], notices(engine, channel="sms")[0]
    assert (line.status, line.attempts, sms.status) == ("sent", 2, "sent")
    assert fakes.line.accepted == {line.key: 1}  # the repeat got 409: delivered once
    assert [h.key for h in fakes.line.hits] == [line.key, line.key]
    assert fakes.sms.accepted == {sms.key: 1}  # lost on the way the first time, sent on the second


@pytest.mark.postgres
async def test_two_processes_claim_each_notice_once(pg_schema_engine: Engine, fakes: Fakes) -> None:
    from chumphae.db import make_engine, upgrade
    from tests.conftest import PG_URL

    upgrade(pg_schema_engine)
    world = build_world(pg_schema_engine)
    from tests.deliver.conftest import contacts

    contacts(world)
    with pg_schema_engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    second = make_engine(PG_URL, schema=schema)  # another process's connections, same database
    try:
        with Session(pg_schema_engine) as s:
            from chumphae.auth.service import assign
            from tests.factories import make_patient

            for i in range(20):  # twenty patients of one caregiver, an SOS each
                p = make_patient(s, name_th=f"ผู้ป่วย {i}")
                assign(s, user_id=world.users["caregiver"], patient_id=p.id)  # type: ignore[arg-type]
                service.raise_alert(s, alert=AlertInput(type="sos", t=T0, patient_id=p.id), now=T0)
            s.commit()
        assert len(notices(pg_schema_engine, status="queued")) == 40
        fakes.line.hang_s = fakes.sms.hang_s = 0.05
        clock = Clock(T0 + timedelta(seconds=60))
        # each provider request may take 10 s (not the suite's 0.5 s): this is about claiming, not timeouts
        # (40 requests at once on a loaded 2-core machine once met a connect timeout and left a notice queued)
        async with worker(pg_schema_engine, fakes, clock, options(batch=40), delivery_timeout_s=10) as a, \
                worker(second, fakes, clock, options(batch=40), delivery_timeout_s=10) as b:
            claimed = await asyncio.gather(a.run_once(), b.run_once(), a.run_once(), b.run_once())
        assert sum(claimed) == 40, claimed
        assert {r.status for r in notices(pg_schema_engine) if r.channel != "feed"} == {"sent"}, \
            {r.last_error for r in notices(pg_schema_engine)}
        hits = [h.key for h in fakes.line.hits + fakes.sms.hits]
        assert len(hits) == len(set(hits)) == 40  # no notice was sent by both
    finally:
        second.dispose()


def test_retriggers_push_once_per_window_the_feed_every_time(engine: Engine, district: World) -> None:
    raise_sos(engine, district.own_patient, type_="wander")
    for minutes in (1, 2, 14):  # a wander re-confirmed: pushed once per 15 minutes
        raise_sos(engine, district.own_patient, type_="wander", now=T0 + timedelta(minutes=minutes))
    raise_sos(engine, district.own_patient, type_="wander", now=T0 + timedelta(minutes=16))
    rows = notices(engine)
    assert [(r.event, r.channel) for r in rows if r.channel != "feed"] == [("opened", "line"),
                                                                         ("retriggered", "line")]
    assert sum(r.channel == "feed" for r in rows) == 5
    assert max(r.created_at for r in rows if r.event == "retriggered" and r.channel == "line") == \
        T0 + timedelta(minutes=16)


async def test_a_notice_whose_alert_was_resolved_is_cancelled_not_sent(engine: Engine, district: World,
                                                                       fakes: Fakes) -> None:
    change = raise_sos(engine, district.own_patient)
    with Session(engine) as s:
        user = s.get(service.User, district.users["caregiver"])  # type: ignore[attr-defined]
        service.resolve(s, user=user, alert_id=change.alert_id, outcome="false_alarm")
        s.commit()
    async with worker(engine, fakes, Clock(T0)) as w:
        assert await w.run_once() == 2
    assert {r.channel: r.status for r in notices(engine)} == {"line": "cancelled", "sms": "cancelled", "feed": "sent"}
    assert fakes.line.hits == [] and fakes.sms.hits == []
    with Session(engine) as s:
        assert s.get(Alert, change.alert_id).escalation_level == 0  # type: ignore[union-attr]


def test_the_people_a_raise_read_are_the_people_the_listeners_are_told(engine: Engine, district: World) -> None:
    """On PostgreSQL a raise reads every rung's people in its one read round trip and hands the rungs told to
    the after-commit listeners (no second read); they are the people `notify.users_at_level` reads."""
    raise_sos(engine, district.own_patient)
    with Session(engine) as s:
        service.escalate_due(s, now=T0 + timedelta(hours=1))  # up to the hospital (level 3)
        s.commit()
    again = raise_sos(engine, district.own_patient, now=T0 + timedelta(hours=1, seconds=5))
    assert again.event == "retriggered" and again.level == 3 and again.ring
    with Session(engine) as s:
        read = notify.notices(s, [dataclasses.replace(again, told=None)])
    rungs = ("caregiver", "volunteer", "care_manager", "hospital")
    assert set(read[0].user_ids) == {district.users[who] for who in rungs if who in district.users}
    if engine.dialect.name == "postgresql":
        assert again.told == read[0].user_ids and notify.notices(None, [again]) == read
