"""Storing a batch of gateway messages: once per id, per-band order, one transaction per batch.

The caller acknowledges the returned ids only after the transaction commits
(protocol §3.2: ack after commit). The hot path issues a fixed number of
statements per batch, never one per message:

* dedupe: one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING msg_id`
  into `ingested_message` (the ids it returns are new, the rest repeats);
* positions: one multi-row insert; the band's state moves only forward in
  time through conditional updates (`… WHERE last_seen_at <= :t` per band;
  battery, worn, charging: `last_reading_at <= :t`, so a position newer than a
  reading does not hide it), so a message re-sent after a reconnect never
  overwrites newer news (per-band order, kept by the database across
  connections and processes);
* feed: one `feed_event` row per patient whose newest position moved, in one
  statement at the end of the transaction (PostgreSQL: the feed writers' lock
  is held only from there to the commit). A patient's newest position time is
  remembered in memory, read from the database once per patient. On
  PostgreSQL the band updates, the gateway's `last_heartbeat_at` and the feed
  append go to the server with the `COMMIT` in one pipeline (`result.tail`):
  one round trip, and their row locks held for the server's time only;
* bands come from a per-connection cache of the site's bands (re-read every
  `BAND_TTL_S`, and at once for an address it does not know); positions whose
  gateway named no place (only the zone's words, or no match) are named from the
  stored tax map in one vectorised pass per batch (`_map_places`).

On PostgreSQL a batch of positions only (after a connection's first batch)
is one round trip: the bands' and gateway's updates, then one statement that
claims the ids, inserts the positions of the ids it claimed and, under the
feed writers' lock, the feed rows of the newest positions it claimed (rows
as one JSON parameter), then `COMMIT`, in one pipeline (`_position_batch_pg`).
A repeated id's newest position was on the feed when first stored, so its
feed row is left out; the bands' forward-only update moves nothing for it.

Alerts go through the alert state machine one by one (they are few).
Hellos and heartbeats are not deduplicated: they only overwrite the
gateway's latest health. Refused and unstorable messages get a
`dead_letter` row in the same transaction.

A batch that fails is retried in halves down to single messages
(`store`), so a message that can never be stored is isolated, answered with
`unstorable` and kept as a dead letter, while the rest is stored. A
database that cannot be reached or used raises `Unavailable` instead: then
nothing is acknowledged and nothing is called poison. Which is which
(`is_unavailable`): the connection (refused, lost, invalidated, the pool's
timeout), the server's own trouble (disk, locks, a read-only or corrupt
database) and a missing table or schema are the database; anything else,
our own code's bugs included, is blamed on the message it fails on, found by
the halving (debt33: a value the driver could not bind, or a trigger's
`RAISE`, once closed every session with 1013 and the gateway re-sent the same
batch forever).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import traceback
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import psycopg
from psycopg import pq
from sqlalchemy import bindparam, func, insert, or_, update
from sqlalchemy import exc as sa_exc
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.alert import radio
from chumphae.alert import service as alerts
from chumphae.alert.service import AlertChange, AlertInput
from chumphae.feed import log as feed_log
from chumphae.ingest.envelope import AlertBody, HeartbeatBody, HelloBody, Message, PositionBody, ReadingBody, Rejection
from chumphae.map.shared import current_matcher
from chumphae.models import Alert, AlertStatus, DeadLetter, Gateway, IngestedMessage, Outcome, PositionRecord, Wristband
from chumphae.models.types import UTCDateTime
from chumphae.timeutil import as_utc, utcnow
from chumphae.values import AlertType

UNQUEUED = frozenset({"hello", "heartbeat"})
BAND_TTL_S = 10.0  # the site's bands are re-read this often (a band given to another patient)
BACK_ONLINE_AFTER_S = 30.0  # a gateway silent this long may have a gateway_offline alert to clear


_map_lock = threading.Lock()  # one build of the tax map's matcher at a time; the others then find it cached


def matcher(session: Session) -> Any:
    """The stored tax map's matcher (None without a map): its cache key is one indexed query."""
    with _map_lock:
        return current_matcher(session)


class Refused(Exception):
    """A well-formed message this gateway may not send (answered with `bad_body`)."""


class Unavailable(Exception):
    """The database cannot be reached or used: acknowledge nothing, the gateway keeps and re-sends."""


@dataclass
class BatchResult:
    acked: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)  # answered with `error` (store-time)
    changes: list[AlertChange] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    newest: dict[int, datetime] = field(default_factory=dict)  # patient → newest position time committed
    feed_rows: list[tuple[str, int | None, dict[str, object]]] = field(default_factory=list)  # not yet appended
    tail: list[feed_log.Statement] = field(default_factory=list)  # PostgreSQL writes sent with the commit
    last: feed_log.Statement | None = None  # PostgreSQL: sent after `tail`, before COMMIT; its rows: the ids stored
    pending: list[str] = field(default_factory=list)  # ids whose fate `last` tells (`finish_position_batch`)

    def merge(self, other: BatchResult) -> BatchResult:
        self.acked += other.acked
        self.rejected += other.rejected
        self.changes += other.changes
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.dead_letters += other.dead_letters
        for pid, t in other.newest.items():
            if pid not in self.newest or t > self.newest[pid]:
                self.newest[pid] = t
        return self


@dataclass(frozen=True, slots=True)
class BandInfo:
    id: int
    address: str
    patient_id: int | None
    site: str
    active: bool
    worn: bool | None
    battery_pct: float | None


# A patient's newest stored position time, shared by the connections of this process
# (two gateways of one site hear the same band): engine → patient → time.
_newest_lock = threading.Lock()
_newest: weakref.WeakKeyDictionary[Engine, dict[int, datetime]] = weakref.WeakKeyDictionary()


class IngestState:
    """What one gateway connection remembers between batches (never the truth: the database is)."""

    def __init__(self, gateway_id: int, *, band_ttl_s: float = BAND_TTL_S) -> None:
        self.gateway_id = gateway_id
        self.band_ttl_s = band_ttl_s
        self.site: str | None = None
        self.bands: dict[str, BandInfo] = {}
        self.bands_at = -1e18
        self.last_batch_at: float | None = None

    def load_bands(self, session: Session, addresses: Iterable[str]) -> dict[str, BandInfo]:
        """The bands these addresses name (upper case), from the cache or in one query."""
        if self.site is None:
            gateway = session.get(Gateway, self.gateway_id)
            assert gateway is not None
            self.site = gateway.site
        wanted = {a.upper() for a in addresses}
        if time.monotonic() - self.bands_at > self.band_ttl_s:
            self.bands = {b.address: b for b in _bands(session, Wristband.site == self.site)}
            self.bands_at = time.monotonic()
        missing = wanted - self.bands.keys()
        if missing:  # a band added since, or another site's
            for b in _bands(session, col(Wristband.address).in_(sorted(missing))):
                self.bands[b.address] = b
        return self.bands

    def committed(self, engine: Engine, result: BatchResult) -> None:
        """After commit: remember the newest positions and when this gateway last spoke."""
        self.last_batch_at = time.monotonic()
        with _newest_lock:
            known = _newest.setdefault(engine, {})
            for pid, t in result.newest.items():
                if pid not in known or t > known[pid]:
                    known[pid] = t


def _bands(session: Session, where: Any) -> list[BandInfo]:
    t = Wristband.__table__  # type: ignore[attr-defined]
    rows = session.connection().execute(
        sa_select(t.c.id, t.c.address, t.c.patient_id, t.c.site, t.c.active, t.c.worn, t.c.battery_pct).where(where))
    return [BandInfo(*r) for r in rows]


UNSTORABLE = "unstorable"  # the error code of a message the database refused or that broke our validating or storing code


def is_unavailable(exc: BaseException) -> bool:
    """The database is away or broken (connection, server, schema, pool) rather than this message bad.

    Not the database (debt33): a value the driver itself could not bind or adapt, and a PL/pgSQL `RAISE` (a
    trigger refusing a row): both programming errors to the drivers, and both caused by one message's content,
    so the halving isolates the message instead of the gateway being closed with 1013 again and again. Nor a
    closed result or connection object (SQLAlchemy's `ResourceClosedError`): our code's misuse; a connection
    lost under it comes as a `DBAPIError` with `connection_invalidated`."""
    if isinstance(exc, Unavailable | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if _blames_the_data(exc.orig):
            return False
        # Operational (refused, lost, locked, disk), interface, programming (missing table or schema),
        # internal: ours or the server's trouble, never the message's.
        return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.ProgrammingError
                          | sa_exc.InternalError)
    if isinstance(exc, psycopg.Error):  # raised by the driver itself (the statements of a commit's pipeline)
        return not _blames_the_data(exc) and isinstance(
            exc, psycopg.OperationalError | psycopg.InterfaceError | psycopg.ProgrammingError | psycopg.InternalError)
    return isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError)


def _blames_the_data(orig: BaseException | None) -> bool:
    """A driver's programming error about what was sent, not about the database: psycopg's own (no SQLSTATE:
    `cannot adapt type`, a wrong parameter count) or a PL/pgSQL `RAISE` (SQLSTATE class P0); sqlite3's
    `Error binding parameter`. A missing table or schema (SQLSTATE class 42) stays the database's."""
    if isinstance(orig, psycopg.ProgrammingError):
        return orig.sqlstate is None or orig.sqlstate.startswith("P0")
    if isinstance(orig, sqlite3.ProgrammingError | sqlite3.InterfaceError):
        return str(orig).startswith("Error binding parameter")
    return False


def _where(exc: BaseException) -> str:
    """An exception's type and where our code raised it (the innermost frame in chumphae, else the innermost),
    never its text: that may quote the message (names, CID, positions)."""
    orig = exc.orig if isinstance(exc, sa_exc.StatementError) and exc.orig is not None else exc
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/chumphae/" in f.filename] or frames
    if not ours:
        return type(orig).__name__
    f = ours[-1]
    return f"{type(orig).__name__} in {f.name}, {f.filename[f.filename.rfind('/chumphae/') + 1:]}:{f.lineno}"


def say_unstorable(gateway_id: int, mid: str | None, exc: BaseException, step: str = "stored") -> None:
    """The one line said of a message refused as `unstorable` (its `error` and dead letter say more): its id, the
    exception's type and where it was raised, never the frame or the exception's text (PDPA)."""
    log.warning("gateway %d: message %s could not be %s (%s); answered unstorable and kept as a dead letter, the "
                "rest of its batch goes on", gateway_id, mid, step, _where(exc))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        exc = exc.orig
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:200]


def store(engine: Engine, *, gateway_id: int, messages: Sequence[Message], dead: Sequence[Rejection] = (),
          state: IngestState | None = None, now: datetime | None = None, touch_gateway: bool = True
          ) -> BatchResult:
    """Store a batch in one transaction; on failure, in halves down to single messages.

    `dead`: rejections the parser already answered, recorded as dead letters
    with the batch. Raises `Unavailable` when the database is the problem.
    """
    state = state or IngestState(gateway_id)
    now = now or utcnow()
    return _store_or_split(engine, gateway_id, list(messages), list(dead), state, now, touch_gateway)


def _store_or_split(engine: Engine, gateway_id: int, messages: list[Message], dead: list[Rejection],
                    state: IngestState, now: datetime, touch: bool) -> BatchResult:
    try:
        return _attempt(engine, gateway_id, messages, dead, state, now, touch_gateway=touch)
    except Exception as exc:
        if is_unavailable(exc) or not messages:  # nothing left to blame but the database
            raise Unavailable(_reason(exc)) from exc
        if len(messages) == 1:
            m = messages[0]
            poison = Rejection(m.id, UNSTORABLE, f"cannot be stored ({_reason(exc)})"[:200], m.raw)
            result = _attempt(engine, gateway_id, [], [*dead, poison], state, now, record_only=True)
            say_unstorable(gateway_id, m.id, exc)
            result.rejected.append(poison)
            return result
    half = len(messages) // 2
    left = _store_or_split(engine, gateway_id, messages[:half], dead, state, now, touch)
    return left.merge(_store_or_split(engine, gateway_id, messages[half:], [], state, now, touch))


RETRIES_S = (0.05, 0.25, 1.0)  # a busy or briefly lost database is retried before the gateway is told to go
SAY_WAITING_EVERY_S = 10.0  # a database that keeps failing batches is said at WARNING at most this often

log = logging.getLogger(__name__)
_said_waiting = [-SAY_WAITING_EVERY_S]  # monotonic time of the last such WARNING (all connections)


def _say_waiting(exc: BaseException, pause: float) -> None:
    """A batch failed on the database and will be tried again (faults19: SQLite write-locked by another program
    for 40 s, each try waiting out its 30 s busy timeout: the backend said nothing until it gave up, minutes on,
    while the gateway timed out and reconnected). At most every SAY_WAITING_EVERY_S, whoever sees it."""
    now = time.monotonic()
    if now - _said_waiting[0] >= SAY_WAITING_EVERY_S:
        _said_waiting[0] = now
        log.warning("database busy or away (%s): a batch is tried again in %.2f s; gateways wait for its ack "
                    "(said at most every %.0f s)", _reason(exc), pause, SAY_WAITING_EVERY_S)


def _attempt(engine: Engine, gateway_id: int, messages: list[Message], dead: list[Rejection],
             state: IngestState, now: datetime, *, record_only: bool = False, touch_gateway: bool = True
             ) -> BatchResult:
    for pause in (*RETRIES_S, None):
        try:
            with Session(engine, expire_on_commit=False) as session:
                if engine.dialect.name == "sqlite":
                    # Take the write lock first: a read transaction that later writes fails at once
                    # (SQLITE_BUSY_SNAPSHOT) when another connection wrote meanwhile.
                    session.connection().exec_driver_sql("BEGIN IMMEDIATE")
                result = ingest_batch(session, gateway_id=gateway_id, messages=messages, dead=dead, state=state,
                                      now=now, record_only=record_only, touch_gateway=touch_gateway,
                                      feed_at_commit=True)
                if result.last is not None:  # a batch of positions on PostgreSQL: one round trip
                    rows = feed_log.commit_pipeline(session, before=result.tail, last=result.last)
                    finish_position_batch(result, {str(r[0]) for r in rows})
                else:
                    feed_log.append_many_and_commit(session, result.feed_rows, before=result.tail)
            state.committed(engine, result)
            return result
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            if pause is None:
                raise Unavailable(_reason(exc)) from exc
            _say_waiting(exc, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")


def ingest_batch(session: Session, *, gateway_id: int, messages: Sequence[Message],
                 dead: Sequence[Rejection] = (), state: IngestState | None = None,
                 now: datetime | None = None, record_only: bool = False, touch_gateway: bool = True,
                 feed_at_commit: bool = False) -> BatchResult:
    """Store `messages` from one gateway; the caller commits, then acks `result.acked`.

    `feed_at_commit`: the feed rows are left in `result.feed_rows` for the caller to append with the
    commit (`feed.log.append_many_and_commit`) instead of appended here.

    `touch_gateway=False` (the alert path) leaves the gateway's row alone: an alert must not wait
    for the lock a bulk batch of the same gateway holds on it. The bulk path records when it spoke.
    """
    now = now or utcnow()
    state = state or IngestState(gateway_id)
    result = BatchResult()
    health: list[Message] = []
    queued: list[Message] = []
    first: set[str] = set()
    for m in messages:
        if m.type in UNQUEUED:
            health.append(m)
        elif m.id in first:  # the same id twice in one batch: stored once, acked twice
            result.duplicates += 1
            result.acked.append(m.id)
        else:
            first.add(m.id)
            queued.append(m)
    bands = state.load_bands(session, [a for m in queued for a in (_address(m),) if a])
    site = state.site
    accepted: list[tuple[Message, Any]] = []  # (message, band info or alert input)
    refused: list[Rejection] = []
    for m in queued:
        try:
            if isinstance(m.body, AlertBody):
                accepted.append((m, _alert_input(session, gateway_id, site, m.body, bands)))
            else:
                accepted.append((m, _band(bands, site, m.body.address)))
        except Refused as exc:
            refused.append(Rejection(m.id, "bad_body", str(exc)[:200], m.raw))
    result.dead_letters = len(dead) + len(refused)
    if (feed_at_commit and touch_gateway and not record_only and accepted and not health and not dead
            and not refused and _spoke_lately(state) and session.get_bind().dialect.name == "postgresql"
            and all(m.type == "position" for m, _ in accepted)):
        _position_batch_pg(session, gateway_id, accepted, now, result)
        return result
    fresh = _claim(session, gateway_id, [m for m, _ in accepted], now)
    positions: list[tuple[Message, BandInfo]] = []
    readings: list[tuple[Message, BandInfo]] = []
    for m, info in accepted:
        if m.id not in fresh:
            result.duplicates += 1
            result.acked.append(m.id)
            continue
        if isinstance(info, AlertInput):
            result.changes.append(alerts.raise_alert(session, alert=info, now=now))
        elif m.type == "position":  # a PositionBody, or its FastPosition
            positions.append((m, info))
        else:
            readings.append((m, info))
        result.stored += 1
        result.acked.append(m.id)
    feed_rows = _positions(session, gateway_id, positions, now, result, defer=feed_at_commit)
    _readings(session, gateway_id, readings)
    result.acked += [m.id for m in health]
    _dead_letters(session, gateway_id, [*dead, *refused], now)
    result.rejected += refused
    if touch_gateway and not record_only:
        # Late, and always before the feed writers' lock: the gateway row stays locked only briefly,
        # and every transaction takes the two in the same order (no deadlock).
        heard = _gateway_spoke(session, gateway_id, health, result.dead_letters, now,
                               result if feed_at_commit else None)
        if state.last_batch_at is None or time.monotonic() - state.last_batch_at > BACK_ONLINE_AFTER_S:
            result.changes.extend(_resolve_own(session, gateway_id, AlertType.GATEWAY_OFFLINE,
                                               "เกตเวย์กลับมาออนไลน์ / gateway back online", now))
        if heard:
            result.changes.extend(_resolve_own(session, gateway_id, AlertType.GATEWAY_RADIO,
                                               "วิทยุของเกตเวย์กลับมาได้ยินสัญญาณ / gateway radio hears again", now))
    if feed_at_commit:
        result.feed_rows = feed_rows
    else:
        feed_log.append_many(session, feed_rows)  # last: the feed writers' lock is held from here to commit
    return result


def _address(m: Message) -> str | None:
    return getattr(m.body, "address", None)


def _band(bands: dict[str, BandInfo], site: str | None, address: str) -> BandInfo:
    key = address.upper()
    band = bands.get(key)
    if band is None or band.site != site or not band.active:
        raise Refused(f"band {key} is not an active band of site {site}")
    return band


def _claim(session: Session, gateway_id: int, messages: Sequence[Message], now: datetime) -> set[str]:
    """Insert the ids; the ones the database did not have yet come back."""
    if not messages:
        return set()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":  # one statement, the ids as one array parameter (no per-row binding)
        driver = session.connection().connection.driver_connection
        assert driver is not None
        params = (gateway_id, now, [m.id for m in messages], [m.type for m in messages])
        with driver.cursor() as cur:  # binary parameters: the ids are not escaped one by one
            if driver.info.transaction_status == pq.TransactionStatus.IDLE:
                with driver.pipeline():  # the transaction's BEGIN and this in one round trip (an alert's first)
                    cur.execute(_CLAIM_PG_SQL, params)
            else:
                cur.execute(_CLAIM_PG_SQL, params)
            return {r[0] for r in cur.fetchall()}
    # One statement compiled once and cached; SQLAlchemy sends the rows as multi-row VALUES pages.
    stmt = _CLAIM_SQLITE
    rows = [{"msg_id": m.id, "gateway_id": gateway_id, "kind": m.type, "received_at": now} for m in messages]
    return set(session.connection().execute(stmt, rows).scalars())


_IM = IngestedMessage.__table__  # type: ignore[attr-defined]
_CLAIM_PG_SQL = ("INSERT INTO ingested_message (msg_id, kind, gateway_id, received_at) "
                 "SELECT u.m, u.k, %s, %s FROM unnest(%b::text[], %b::text[]) AS u(m, k) "
                 "ON CONFLICT (msg_id) DO NOTHING RETURNING msg_id")
_CLAIM_SQLITE = sqlite.insert(_IM).on_conflict_do_nothing(index_elements=["msg_id"]).returning(_IM.c.msg_id)


def _newest_known(session: Session, patient_ids: set[int]) -> dict[int, datetime | None]:
    """Each patient's newest position time: from memory, else one grouped query for the rest."""
    out: dict[int, datetime | None] = {}
    with _newest_lock:
        known = _newest.get(session.get_bind().engine, {})
        for pid in patient_ids:
            if pid in known:
                out[pid] = known[pid]
    missing = patient_ids - out.keys()
    if missing:
        t = PositionRecord.__table__  # type: ignore[attr-defined]
        rows = session.connection().execute(select(t.c.patient_id, func.max(t.c.t))
                                            .where(t.c.patient_id.in_(sorted(missing))).group_by(t.c.patient_id))
        found = {pid: as_utc(tmax) for pid, tmax in rows if tmax is not None}
        for pid in missing:
            out[pid] = found.get(pid)
    return out


def _position_rows(session: Session, gateway_id: int, items: list[tuple[Message, BandInfo]], now: datetime
                   ) -> tuple[list[tuple[Any, ...]], dict[int, tuple[str, tuple[Any, ...], Any]], dict[int, datetime],
                              dict[int, datetime | None]]:
    """The position rows (in `_POSITION_COLUMNS` order), each patient's newest here if it is newer than known
    (patient → (message id, row, place)), each band's newest time, and the patients' newest times."""
    named = _map_places(session, items)
    newest = _newest_known(session, {b.patient_id for _, b in items if b.patient_id is not None})
    rows: list[tuple[Any, ...]] = []
    latest: dict[int, tuple[str, tuple[Any, ...], Any]] = {}  # rendered once per patient, after the loop
    band_t: dict[int, datetime] = {}
    for i, (m, band) in enumerate(items):
        b: PositionBody = m.body
        match = b.match
        place: Any = named.get(i) or (match.place if match else None)
        t = b.t
        row = (band.patient_id, band.id, gateway_id, t, b.lat, b.lon, b.uncertainty_m, b.source, b.in_coverage,
               match.status if match else None, match.zone_version if match else None,
               match.distance_to_boundary_m if match else None, place.parcel_code if place else None,
               place.building_code if place else None, band.worn, band.battery_pct, now)
        rows.append(row)
        if band.id not in band_t or t > band_t[band.id]:
            band_t[band.id] = t
        pid = band.patient_id
        if pid is not None and (newest.get(pid) is None or t >= newest[pid]):  # type: ignore[operator]
            newest[pid] = t
            latest[pid] = (m.id, row, place)
    return rows, latest, band_t, newest


def _map_places(session: Session, items: list[tuple[Message, BandInfo]]) -> dict[int, Any]:
    """The places the tax map names for the positions whose gateway did not name one (index → Place).

    A gateway without the tax map sends only the zone's words ("inside the safe zone"), or nothing; the
    stored position then gets its parcel and building codes, and the feed its words, from the backend's
    map, named per `Matcher.PLACE_CELL_M` cell in one vectorised pass for the batch (as `match_many` names
    them for a gateway that has the map). Nothing without a stored map."""
    def sent(i: int) -> Any:
        match = items[i][0].body.match
        return match.place if match else None

    need = [i for i in range(len(items)) if not _names_a_place(sent(i)) or _lacks_codes(sent(i))]
    if not need:
        return {}
    found = matcher(session)  # the map's cache key: at most once per `RECHECK_S`
    if found is None:
        return {}
    places = found.places([items[i][0].body.lon for i in need], [items[i][0].body.lat for i in need])
    return {i: _place_from(sent(i), p) for i, p in zip(need, places, strict=True)}


def _feed_payload(row: tuple[Any, ...], place: Any, *, text_times: bool = False) -> dict[str, object]:
    """`position_dict` of a row in `_POSITION_COLUMNS` order, read by index (once per patient per batch; the
    same JSON, tests/ingest/test_position_batch.py).

    The times are datetimes that orjson writes as `isoformat` does (in C: `isoformat` in Python was a third of
    this function's time); `text_times` for a serializer that takes only text (SQLAlchemy's JSON on SQLite)."""
    t = as_utc(row[3])
    local = (t + _BANGKOK_OFFSET).replace(tzinfo=_BANGKOK_TZ, microsecond=0)
    return {"position": {
        "patient_id": row[0], "t": t.isoformat() if text_times else t,
        "t_local": local.isoformat() if text_times else local, "lat": row[4], "lon": row[5], "uncertainty_m": row[6], "source": row[7],
        "in_coverage": row[8], "zone_status": row[9], "zone_version": row[10], "parcel_code": row[12],
        "building_code": row[13], "description_th": place.description_th if place else None,
        "description_en": place.description_en if place else None}}


# Asia/Bangkok has kept UTC+7 without daylight saving since 1920 (`timeutil.iso_bangkok` gives the same text).
_BANGKOK_OFFSET = timedelta(hours=7)
_BANGKOK_TZ = timezone(_BANGKOK_OFFSET)


def _positions(session: Session, gateway_id: int, items: list[tuple[Message, BandInfo]], now: datetime,
               result: BatchResult, *, defer: bool = False) -> list[tuple[str, int | None, dict[str, object]]]:
    """Insert the positions and move their bands forward; the feed rows of each patient's newest.

    `defer` (PostgreSQL): the bands' update goes to `result.tail`, sent with the commit."""
    if not items:
        return []
    rows, latest, band_t, newest = _position_rows(session, gateway_id, items, now)
    seen = sorted(band_t.items())  # bands locked in id order by every batch (no deadlock between batches)
    if session.get_bind().dialect.name == "postgresql":
        # Positions by COPY (rows formatted by the driver's C code), the bands in one statement.
        conn = session.connection()
        driver = conn.connection.driver_connection
        assert driver is not None
        with driver.cursor() as cur, cur.copy(_POSITIONS_PG_COPY) as copy:
            for r in rows:
                copy.write_row(r)
        bands_seen: feed_log.Statement = (_BANDS_SEEN_PG_SQL, (gateway_id, [b for b, _ in seen], [t for _, t in seen]))
        if defer:
            result.tail.append(bands_seen)
        else:
            with driver.cursor() as cur:
                cur.execute(*bands_seen)
    else:
        session.connection().execute(insert(PositionRecord.__table__),  # type: ignore[attr-defined]
                                     [dict(zip(_POSITION_COLUMNS, r, strict=True)) for r in rows])
        w = Wristband.__table__  # type: ignore[attr-defined]
        forward = or_(w.c.last_seen_at.is_(None), w.c.last_seen_at <= bindparam("seen", type_=UTCDateTime))
        session.connection().execute(
            update(w).where(w.c.id == bindparam("band"), forward)
            .values(last_seen_at=bindparam("seen", type_=UTCDateTime), last_gateway_id=gateway_id),
            [{"band": bid, "seen": t} for bid, t in seen])
    result.newest.update({pid: newest[pid] for pid in latest})  # type: ignore[misc]
    text_times = session.get_bind().dialect.name != "postgresql"  # PostgreSQL's feed rows are written by orjson
    return [("position", pid, _feed_payload(row, place, text_times=text_times))
            for pid, (_, row, place) in latest.items()]


def _spoke_lately(state: IngestState) -> bool:
    """Whether this connection stored a batch lately (so no `gateway_offline` alert of its gateway to clear)."""
    return state.last_batch_at is not None and time.monotonic() - state.last_batch_at <= BACK_ONLINE_AFTER_S


def _position_batch_pg(session: Session, gateway_id: int, items: list[tuple[Message, BandInfo]], now: datetime,
                       result: BatchResult) -> None:
    """A batch of positions only, on PostgreSQL, as one statement sent with the commit (`result.last`).

    The statement claims the ids, inserts the positions of the ids it claimed and, under the feed writers'
    lock, the feed rows of each patient's newest position if that one was claimed (a repeat's newest was
    on the feed already when first stored). Before it, in the same pipeline, the bands' forward-only
    update (a repeat's time moves nothing) and the gateway's time. `_attempt` reads the ids claimed and
    completes `result` with `finish_position_batch`.
    """
    rows, latest, band_t, newest = _position_rows(session, gateway_id, items, now)
    positions = [{"m": m.id, "n": n, "patient_id": r[0], "band_id": r[1], "t": r[3], "lat": r[4], "lon": r[5],
                  "uncertainty_m": r[6], "source": r[7], "in_coverage": r[8], "zone_status": r[9],
                  "zone_version": r[10], "distance_to_boundary_m": r[11], "parcel_code": r[12],
                  "building_code": r[13], "worn": r[14], "battery_pct": r[15]}
                 for n, ((m, _), r) in enumerate(zip(items, rows, strict=True))]
    feed = [{"m": mid, "p": pid, "j": _feed_payload(row, place), "n": n}
            for n, (pid, (mid, row, place)) in enumerate(latest.items())]
    seen = [{"id": b, "seen": t} for b, t in sorted(band_t.items())]  # bands locked in id order (no deadlock)
    result.tail.append((_BANDS_SEEN_JSON_PG_SQL, (gateway_id, _json(seen))))
    result.tail.append((_GATEWAY_SPOKE_PG_SQL, (now, gateway_id)))
    result.last = (_POSITION_BATCH_PG_SQL, (_json(positions), gateway_id, now, gateway_id, now, feed_log.PG_GATE_KEY,
                                           feed_log.PG_LOCK_KEY, feed_log.PG_CHANNEL, now, _json(feed)))
    result.pending = [m.id for m, _ in items]
    result.newest.update({pid: newest[pid] for pid in latest})  # type: ignore[misc]


def finish_position_batch(result: BatchResult, fresh: set[str]) -> None:
    """After the commit of `_position_batch_pg`'s statement: the ids it claimed are stored, the rest repeats."""
    for mid in result.pending:
        if mid in fresh:
            result.stored += 1
        else:
            result.duplicates += 1
        result.acked.append(mid)
    result.pending = []


def _json(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_NAIVE_UTC).decode()


_POSITION_COLUMNS = ("patient_id", "band_id", "gateway_id", "t", "lat", "lon", "uncertainty_m", "source",
                     "in_coverage", "zone_status", "zone_version", "distance_to_boundary_m", "parcel_code",
                     "building_code", "worn", "battery_pct", "received_at")
_POSITIONS_PG_COPY = f'COPY "position" ({", ".join(_POSITION_COLUMNS)}) FROM STDIN'
# The band's last_seen_at moves only forward (per-band order kept across connections and processes).
_BANDS_SEEN_PG_SQL = (
    "UPDATE wristband AS w SET last_seen_at = v.seen, last_gateway_id = %s "
    "FROM unnest(%b::int[], %b::timestamptz[]) AS v(id, seen) "
    "WHERE w.id = v.id AND (w.last_seen_at IS NULL OR w.last_seen_at <= v.seen)")


_BANDS_SEEN_JSON_PG_SQL = (
    "UPDATE wristband AS w SET last_seen_at = v.seen, last_gateway_id = %s "
    "FROM json_to_recordset(%s::json) AS v(id int, seen timestamptz) "
    "WHERE w.id = v.id AND (w.last_seen_at IS NULL OR w.last_seen_at <= v.seen)")
_PG_TYPES = {"patient_id": "int", "band_id": "int", "gateway_id": "int", "t": "timestamptz", "lat": "float8",
             "lon": "float8", "uncertainty_m": "float8", "source": "text", "in_coverage": "bool",
             "zone_status": "text", "zone_version": "int", "distance_to_boundary_m": "float8", "parcel_code": "text",
             "building_code": "text", "worn": "bool", "battery_pct": "float8", "received_at": "timestamptz"}
_BATCH_COLUMNS = _POSITION_COLUMNS[:-3] + ("worn", "battery_pct")  # gateway_id and received_at: parameters
# Claim the ids, insert the positions of the ids claimed (in message order), then take the feed writers' lock
# (after the positions: `locked` reads `pos`) and add the feed rows whose position was claimed. Returns the ids
# claimed. Sent last before COMMIT, in one pipeline: the lock is held for the server's time only.
_POSITION_BATCH_PG_SQL = (
    "WITH r AS (SELECT * FROM json_to_recordset(%s::json) AS r(m text, n int, "
    + ", ".join(f"{c} {_PG_TYPES[c]}" for c in _POSITION_COLUMNS[:-3] if c != "gateway_id")
    + ", worn bool, battery_pct float8)), "
    "new AS (INSERT INTO ingested_message (msg_id, kind, gateway_id, received_at) "
    "SELECT r.m, 'position', %s, %s FROM r ORDER BY r.n ON CONFLICT (msg_id) DO NOTHING RETURNING msg_id), "
    f'pos AS (INSERT INTO "position" ({", ".join(_POSITION_COLUMNS)}) '
    "SELECT " + ", ".join("%s" if c in ("gateway_id", "received_at") else f"r.{c}" for c in _POSITION_COLUMNS)
    + " FROM r WHERE r.m IN (SELECT msg_id FROM new) ORDER BY r.n RETURNING 1), "
    "gate AS (SELECT pg_advisory_xact_lock(%s) FROM (SELECT count(*) FROM pos) AS c), "  # positions queue here,
    "locked AS (SELECT pg_advisory_xact_lock(%s), pg_notify(%s, '') FROM gate), "  # not on the lock (feed/log.py)
    "feed AS (INSERT INTO feed_event (t, kind, patient_id, payload) SELECT %s, 'position', f.p, f.j "
    "FROM locked, json_to_recordset(%s::json) AS f(m text, p int, j json, n int) "
    "WHERE f.m IN (SELECT msg_id FROM new) ORDER BY f.n) "
    "SELECT msg_id FROM new")

# The health key the backend writes with each heartbeat: when it stored it (ISO 8601 UTC). `last_heartbeat_at`
# moves with every message; this says how old the health is (`GET /api/v1/gateways/{id}`, debt30).
HEARTBEAT_AT = "backend_heartbeat_at"
# The health keys the backend writes beside the heartbeat's own: the gateway's hello and the refusal count. A new
# heartbeat keeps them; a heartbeat's own fields of these names are dropped (review31).
BACKEND_KEYS = ("backend_rejected", "hello")
_GATEWAY_SPOKE_PG_SQL = "UPDATE gateway SET last_heartbeat_at = %s WHERE id = %s"


def _readings(session: Session, gateway_id: int, items: list[tuple[Message, BandInfo]]) -> None:
    """Band state from readings, oldest first: battery, worn, charging and seq if the reading is not older than
    the band's last *reading* (a position newer than it does not hide it); last seen, gateway and RSSI if it is
    not older than anything stored for the band."""
    if not items:
        return
    w = Wristband.__table__  # type: ignore[attr-defined]
    seen = bindparam("seen", type_=UTCDateTime)
    keep = {name: func.coalesce(bindparam(f"p_{name}", type_=w.c[name].type), w.c[name])
            for name in ("battery_pct", "battery_mv", "worn", "charging")}
    state = update(w).where(w.c.id == bindparam("band"),
                            or_(w.c.last_reading_at.is_(None), w.c.last_reading_at <= seen)).values(
        last_reading_at=seen, last_seq=func.coalesce(bindparam("bseq", type_=w.c.last_seq.type), w.c.last_seq),
        **keep)
    heard = update(w).where(w.c.id == bindparam("band"),
                            or_(w.c.last_seen_at.is_(None), w.c.last_seen_at <= seen)).values(
        last_seen_at=seen, last_gateway_id=gateway_id,
        last_rssi=func.coalesce(bindparam("rssi", type_=w.c.last_rssi.type), w.c.last_rssi))
    params = []
    for m, band in sorted(items, key=lambda mb: mb[0].body.t):
        b: ReadingBody = m.body
        params.append({"band": band.id, "seen": b.t, "rssi": b.rssi, "bseq": b.seq, "p_battery_pct": b.battery_pct,
                       "p_battery_mv": b.battery_mv, "p_worn": b.worn, "p_charging": b.charging})
    conn = session.connection()
    conn.execute(state, params)
    conn.execute(heard, [{"band": p["band"], "seen": p["seen"], "rssi": p["rssi"]} for p in params])


def _dead_letters(session: Session, gateway_id: int, rejections: Sequence[Rejection], now: datetime) -> None:
    if not rejections:
        return
    rows = [{"gateway_id": gateway_id, "msg_id": r.id, "code": r.code, "reason": r.message.replace("\x00", "")[:200],
             "raw": r.raw[:DeadLetter.RAW_MAX].replace("\x00", ""), "received_at": now} for r in rejections]
    session.connection().execute(insert(DeadLetter.__table__), rows)  # type: ignore[attr-defined]


def _gateway_spoke(session: Session, gateway_id: int, health: list[Message], refused: int, now: datetime,
                   defer: BatchResult | None = None) -> bool:
    """The gateway's last message time (for gateway_offline); its health when it sent some.

    With each heartbeat the run of heartbeats saying the radio cannot scan (`chumphae.alert.radio`) is
    carried on or ended. Returns whether the batch's last heartbeat that hears or is deaf said it hears (a
    `gateway_radio` to clear): one that hears followed by one that is deaf is a radio dead again, its alert left
    open (debt20); followed by one that neither hears nor is deaf (`scanning` with 0 adverts: a quiet night), the
    radio was heard and is not dead, its alert resolved (review20a).
    `defer` (PostgreSQL): the plain time update goes to its `tail`, sent with the commit."""
    if not health and not refused:
        if defer is not None and session.get_bind().dialect.name == "postgresql":
            defer.tail.append((_GATEWAY_SPOKE_PG_SQL, (now, gateway_id)))
            return False
        g = Gateway.__table__  # type: ignore[attr-defined]
        session.connection().execute(update(g).where(g.c.id == gateway_id).values(last_heartbeat_at=now))
        return False
    gateway = session.get(Gateway, gateway_id)
    assert gateway is not None
    state = dict(gateway.health or {})
    heard = False
    for msg in health:
        if isinstance(msg.body, HeartbeatBody):
            keep = {k: v for k, v in state.items() if k in BACKEND_KEYS}
            beat = {k: v for k, v in msg.body.model_dump(exclude_none=True).items()  # the backend's own keys,
                    if k not in (radio.SINCE, radio.LAST, HEARTBEAT_AT, *BACKEND_KEYS)}  # not its
            state = {**keep, **beat, **radio.track(state, beat, now), HEARTBEAT_AT: now.isoformat()}
            if radio.hears(beat):
                heard = True
            elif radio.deaf(beat):  # dead again after it heard: the alert stays open (debt20)
                heard = False
            # else (scanning with 0 adverts, simulated, unknown, absent): says nothing; the verdict stands
        elif isinstance(msg.body, HelloBody):
            state["hello"] = msg.body.model_dump(exclude_none=True)
    if refused:
        before = state.get("backend_rejected")  # a count the backend wrote (a heartbeat's own was kept before review31)
        state["backend_rejected"] = (before if isinstance(before, int) and not isinstance(before, bool) else 0) + refused
    gateway.health = state
    gateway.last_heartbeat_at = now
    session.add(gateway)
    session.flush()
    return heard


def _names_a_place(place: Any) -> bool:
    """Whether a gateway's place says where (a parcel, building or landmark), not only the zone status."""
    return bool(place is not None and place.description_th
                and (place.parcel_code or place.building_code or place.landmark))


def _lacks_codes(place: Any) -> bool:
    """Whether a gateway's place names where by a landmark only: words, but no parcel or building code."""
    return _names_a_place(place) and not (place.parcel_code or place.building_code)


@dataclass(frozen=True, slots=True)
class _CodedPlace:
    """A gateway's place (its words and landmark) with the parcel and building codes of the backend's map."""

    parcel_code: str | None
    building_code: str | None
    landmark: str | None
    description_th: str | None
    description_en: str | None


def _place_from(sent: Any, mapped: Any) -> Any:
    """The place to store: the map's where the gateway named none; the gateway's words with the map's codes
    where it named only a landmark (issue 13: an alert's `last_seen.parcel_code` was null on a parcel)."""
    if mapped is None:
        return sent
    if not _lacks_codes(sent):
        return mapped
    return _CodedPlace(mapped.parcel_code, mapped.building_code, sent.landmark, sent.description_th,
                       sent.description_en)


def position_dict(row: PositionRecord, *, description_th: str | None = None,
                  description_en: str | None = None) -> dict[str, Any]:
    """A position as the feed shows it (also used for the snapshot)."""
    from chumphae.alert.render import iso
    from chumphae.timeutil import iso_bangkok

    return {
        "patient_id": row.patient_id, "t": iso(row.t), "t_local": iso_bangkok(row.t),
        "lat": row.lat, "lon": row.lon, "uncertainty_m": row.uncertainty_m, "source": row.source,
        "in_coverage": row.in_coverage, "zone_status": row.zone_status, "zone_version": row.zone_version,
        "parcel_code": row.parcel_code, "building_code": row.building_code,
        "description_th": description_th, "description_en": description_en,
    }


def _alert_input(session: Session, gateway_id: int, site: str | None, b: AlertBody,
                 bands: dict[str, BandInfo]) -> AlertInput:
    band = _band(bands, site, b.address) if b.address else None
    if band is not None:
        patient_id = band.patient_id
    elif b.patient_id is not None:  # no band named: the patient must wear one of this site's bands
        ok = session.exec(select(Wristband.id).where(Wristband.patient_id == b.patient_id,
                                                     Wristband.site == site)).first()
        if ok is None:
            raise Refused(f"patient {b.patient_id} has no band at site {site}")
        patient_id = b.patient_id
    else:
        raise Refused("alert names neither a band nor a patient")
    if patient_id is None:
        raise Refused("band is not given to a patient")
    place: Any = b.match.place if b.match else None
    if (not _names_a_place(place) or _lacks_codes(place)) and b.lat is not None and b.lon is not None:
        # A gateway without the tax map words only the zone ("outside the safe zone"): an alert must say
        # where, so the backend names the place (landmark, distance, direction) from its own map; one that
        # names only a landmark keeps its words and gets the parcel and building codes of the map.
        found = matcher(session)
        place = _place_from(place, found.place(b.lon, b.lat) if found is not None else None)
    details = dict(b.details)
    if b.severity:
        details["gateway_severity"] = b.severity
    return AlertInput(
        type=b.type.value, t=b.t, patient_id=patient_id, gateway_id=gateway_id,
        band_id=band.id if band else None, lat=b.lat, lon=b.lon, uncertainty_m=b.uncertainty_m,
        parcel_code=place.parcel_code if place else None, building_code=place.building_code if place else None,
        description_th=place.description_th if place else None,
        description_en=place.description_en if place else None,
        zone_version=b.match.zone_version if b.match else None, confidence=b.confidence, details=details,
    )


def _resolve_own(session: Session, gateway_id: int, alert_type: AlertType, note: str,
                 now: datetime) -> list[AlertChange]:
    """A gateway's own open alerts of `alert_type` (no patient) resolved as fixed, with `note`: one speaking again
    clears its `gateway_offline`, one whose radio hears again its `gateway_radio` (one indexed read)."""
    rows = session.exec(select(Alert).where(col(Alert.patient_id).is_(None), Alert.gateway_id == gateway_id,
                                            Alert.type == alert_type.value,
                                            Alert.status != AlertStatus.RESOLVED)).all()
    changes = []
    for row in rows:
        assert row.id is not None
        _, change = alerts.resolve(session, user=None, alert_id=row.id, outcome=Outcome.DEVICE_FIXED,
                                   note=note, now=now)
        changes.append(change)
    return changes
