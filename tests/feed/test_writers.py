"""The feed writers on the real PostgreSQL: cursor order is commit order under concurrent writers (a reader
that follows them gets every committed row once, in order), and an alert's writer waits for at most the
one position writer that holds the writers' lock, not for the position writers queued behind it."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.feed import log as feed_log
from chumphae.ingest import envelope
from chumphae.ingest.envelope import Message
from chumphae.ingest.service import IngestState, store
from chumphae.models import FeedEvent
from tests.conftest import World
from tests.feed.conftest import raise_alert
from tests.feed.test_fanout import pg_world  # noqa: F401  (fixture)
from tests.ingest.conftest import make_site
from tests.ingest.test_gateway_socket import frame, position

pytestmark = pytest.mark.postgres
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def _position_msg(k: int) -> Message:
    parsed = envelope.parse(frame("position", position(T0 + timedelta(seconds=k), lat=16.5443 + k * 1e-7),
                                  mid=str(uuid.uuid4()))[1])
    assert isinstance(parsed, Message)
    return parsed


def _follow(engine: Engine, stop: threading.Event, seen: list[int]) -> None:
    """A feed socket's reads (outside a transaction, as `FeedSocket.reader`): every row after the cursor."""
    reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    cursor = 0
    while True:
        done = stop.is_set()  # read once more after the writers are done: then nothing may be left unread
        with Session(reader) as s:
            rows = feed_log.read_since(s, cursor=cursor, patient_ids=None, unassigned=True, limit=37)
        for row in rows:
            seen.append(row.id)
            cursor = row.id
        if done and not rows:
            return
        if not rows:
            time.sleep(0.001)


def test_a_reader_following_concurrent_writers_gets_every_committed_row_once_in_order(pg_world: World) -> None:  # noqa: F811
    engine = pg_world.engine
    site = make_site(pg_world)
    patients = [pg_world.own_patient, pg_world.other_patient]
    errors: list[BaseException] = []
    rounds = 40

    def ingest_writer(w: int) -> None:  # the gateway socket's batches (after the first: one statement, gated)
        state = IngestState(site.gateway_id)
        for i in range(rounds):
            store(engine, gateway_id=site.gateway_id, messages=[_position_msg(w * 1_000 + i * 3 + j)
                                                                for j in range(3)], state=state)

    def position_writer(w: int) -> None:  # positions appended, then the transaction goes on a little
        rng = random.Random(w)
        for i in range(rounds):
            with Session(engine) as s:
                feed_log.append_many(s, [("position", rng.choice(patients), {"position": {"w": w, "i": i}}),
                                         ("position", None, {"position": {"w": w, "i": i}})])
                time.sleep(rng.random() * 0.002)
                s.commit()

    def alert_writer(w: int) -> None:  # the alert service's own path (a deferred write sent with the commit)
        for i in range(rounds // 2):
            raise_alert(engine, patients[w % 2], ("sos", "fall")[i % 2])

    def mixed_writer(w: int) -> None:  # an alert, then positions, in one transaction (takes no gate)
        for i in range(rounds // 2):
            with Session(engine) as s:
                feed_log.append(s, kind="alert", patient_id=patients[i % 2], payload={"w": w, "i": i})
                feed_log.append_many_and_commit(s, [("position", patients[(i + 1) % 2], {"position": {"i": i}})])

    def run(fn: Callable[[int], None], w: int) -> None:
        try:
            fn(w)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    stop, seen = threading.Event(), []
    reader = threading.Thread(target=_follow, args=(engine, stop, seen))
    reader.start()
    writers = [threading.Thread(target=run, args=(fn, w)) for w, fn in enumerate(
        [ingest_writer, ingest_writer, position_writer, position_writer, position_writer, alert_writer,
         alert_writer, mixed_writer])]
    for t in writers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    stop.set()
    reader.join(timeout=60)
    assert not errors, errors
    with Session(engine) as s:
        committed = list(s.exec(select(FeedEvent.id).order_by(col(FeedEvent.id))).all())
        kinds = {k: n for k, n in s.exec(select(FeedEvent.kind, FeedEvent.id)).all()}  # noqa: C416
    assert len(committed) > 8 * rounds and {"alert", "position"} <= set(kinds)
    assert len(seen) == len(set(seen)), "a row was delivered twice"
    assert seen == committed, f"rows skipped: {sorted(set(committed) - set(seen))[:10]}"


def _advisory_waiters(engine: Engine, key: int) -> set[int]:
    """Backend pids waiting for the transaction advisory lock `key` (a bigint key: objid holds its low 32 bits)."""
    with engine.connect() as conn:
        return set(conn.exec_driver_sql(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND classid = %s AND objid = %s "
            "AND objsubid = 1", (key >> 32, key & 0xFFFFFFFF)).scalars())


def _until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    end = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < end, f"never: {what}"
        time.sleep(0.01)


def test_an_alert_waits_for_the_position_writer_holding_the_lock_not_for_those_queued_behind_it(
        pg_world: World) -> None:  # noqa: F811
    engine, patient = pg_world.engine, pg_world.own_patient
    ids: dict[str, int] = {}
    errors: list[BaseException] = []
    pids: dict[str, int] = {}

    def pid(s: Session) -> int:
        return int(s.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    def later_positions() -> None:
        try:
            with Session(engine) as s:
                pids["positions"] = pid(s)
                feed_log.append_many(s, [("position", patient, {"position": {"second": True}})])
                ids["positions"] = feed_log.latest_cursor(s)
                s.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def sos() -> None:
        try:
            with Session(engine) as s:
                pids["alert"] = pid(s)
                ids["alert"] = feed_log.append(s, kind="alert", patient_id=patient, payload={"sos": True}).id
                s.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    with Session(engine) as holder:  # a position batch that holds the writers' lock (and the gate) until its commit
        feed_log.append_many(holder, [("position", patient, {"position": {"first": True}})])
        queued = threading.Thread(target=later_positions)
        queued.start()
        _until(lambda: pids.get("positions") in _advisory_waiters(engine, feed_log.PG_GATE_KEY) | _advisory_waiters(
            engine, feed_log.PG_LOCK_KEY), "the second position batch waits")
        alert = threading.Thread(target=sos)
        alert.start()
        _until(lambda: pids.get("alert") in _advisory_waiters(engine, feed_log.PG_LOCK_KEY), "the alert waits")
        # The second batch queued first; main's single lock would grant it first, so its row would precede the SOS.
        holder.commit()
    queued.join(timeout=20)
    alert.join(timeout=20)
    assert not errors, errors
    assert ids["alert"] < ids["positions"], ids
    with Session(engine) as s:
        rows = s.exec(select(FeedEvent.kind).order_by(col(FeedEvent.id))).all()
    assert rows == ["position", "alert", "position"]
