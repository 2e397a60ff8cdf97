"""Batches of positions after the first of a connection: on PostgreSQL one statement sent with the COMMIT
(claim, positions of the ids claimed, feed rows under the writers' lock), on SQLite the general path.
Both must store each id once, ack every id, keep the band's state forward-only and put on the feed only a
patient's newest position, once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from sqlmodel import Session, col, select

from chumphae.ingest import envelope
from chumphae.ingest import service as ingest
from chumphae.ingest.envelope import Message
from chumphae.ingest.service import IngestState, is_unavailable, store
from chumphae.models import FeedEvent, IngestedMessage, PositionRecord, Wristband
from tests.ingest.conftest import Site
from tests.ingest.test_gateway_socket import frame, position

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _msg(k: int, mid: str | None = None) -> Message:
    parsed = envelope.parse(frame("position", position(T0 + timedelta(seconds=k), lat=16.5443 + k * 1e-6),
                                  mid=mid or str(uuid.uuid4()))[1])
    assert isinstance(parsed, Message)
    return parsed


def _feed_times(site: Site) -> list[str]:
    with Session(site.world.engine) as s:
        rows = s.exec(select(FeedEvent).where(FeedEvent.kind == "position").order_by(col(FeedEvent.id))).all()
        return [r.payload["position"]["t"] for r in rows]  # type: ignore[index]


def _t(k: int) -> str:
    return (T0 + timedelta(seconds=k)).isoformat()


def test_repeats_are_acked_not_stored_and_the_feed_gets_each_newest_once(
        both_site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, gw = both_site.world.engine, both_site.gateway_id
    one_statement: list[int] = []
    real = ingest._position_batch_pg
    monkeypatch.setattr(ingest, "_position_batch_pg", lambda s, g, items, *a: (
        one_statement.append(len(items)), real(s, g, items, *a))[1])
    state = IngestState(gw)
    first = [_msg(k) for k in range(5)]
    r1 = store(engine, gateway_id=gw, messages=first, state=state)
    assert (r1.stored, r1.duplicates) == (5, 0) and r1.acked == [m.id for m in first]

    # New positions, an old id again, and one id twice in the batch: each stored once, every one acked.
    second = [_msg(k) for k in range(5, 10)]
    batch = [second[0], first[2], *second[1:], second[4]]
    r2 = store(engine, gateway_id=gw, messages=batch, state=state)
    assert (r2.stored, r2.duplicates) == (5, 2)
    assert sorted(r2.acked) == sorted(m.id for m in batch)

    # Only repeats, the newest among them: nothing stored, nothing new on the feed.
    r3 = store(engine, gateway_id=gw, messages=[second[4], second[1]], state=state)
    assert (r3.stored, r3.duplicates, len(r3.acked)) == (0, 2, 2)

    # A late position (older than the newest) is stored but not on the feed; a repeat beside it changes nothing.
    late = _msg(3)
    r4 = store(engine, gateway_id=gw, messages=[late, second[4]], state=state)
    assert (r4.stored, r4.duplicates) == (1, 1)

    # A repeat of an older id beside a newer fresh position: the fresh one is the feed's newest.
    newer = _msg(11)
    r5 = store(engine, gateway_id=gw, messages=[second[3], newer], state=state)
    assert (r5.stored, r5.duplicates) == (1, 1)

    if engine.dialect.name == "postgresql":
        assert one_statement == [6, 2, 2, 2]  # every batch after the connection's first (an id twice: once)
    else:
        assert one_statement == []
    with Session(engine) as s:
        stored = s.exec(select(PositionRecord).order_by(col(PositionRecord.id))).all()
        assert len(stored) == 12
        assert [p.t for p in stored] == [T0 + timedelta(seconds=k) for k in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 3, 11]]
        assert all(p.gateway_id == gw and p.parcel_code == "03I002" and p.worn is None for p in stored)
        ids = s.exec(select(IngestedMessage.msg_id)).all()
        assert len(ids) == len(set(ids)) == 12
        band = s.get(Wristband, both_site.band_id)
        assert band is not None and band.last_seen_at == T0 + timedelta(seconds=11)
    assert _feed_times(both_site) == [_t(4), _t(9), _t(11)]


def test_a_late_batch_never_moves_the_band_back(both_site: Site) -> None:
    engine, gw = both_site.world.engine, both_site.gateway_id
    state = IngestState(gw)
    store(engine, gateway_id=gw, messages=[_msg(20)], state=state)
    store(engine, gateway_id=gw, messages=[_msg(30), _msg(25)], state=state)
    store(engine, gateway_id=gw, messages=[_msg(1), _msg(2)], state=state)  # re-sent after a reconnect
    with Session(engine) as s:
        band = s.get(Wristband, both_site.band_id)
        assert band is not None and band.last_seen_at == T0 + timedelta(seconds=30)
        assert band.last_gateway_id == gw
    assert _feed_times(both_site) == [_t(20), _t(30)]


def test_driver_errors_from_the_commit_pipeline_are_told_apart_like_sqlalchemys() -> None:
    """The one-statement batch is sent by the driver itself, so its errors are psycopg's, not SQLAlchemy's: a lost
    or broken database must still mean 'acknowledge nothing, try later', never 'this message is poison'."""
    assert is_unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_unavailable(psycopg.errors.UndefinedTable("relation does not exist"))
    assert is_unavailable(psycopg.InterfaceError("the connection is closed"))
    assert not is_unavailable(psycopg.errors.NumericValueOutOfRange("value out of range"))
    assert not is_unavailable(psycopg.errors.UniqueViolation("duplicate key"))


def test_a_batch_feed_payload_says_what_position_dict_says_of_the_stored_row() -> None:
    # the batch builds feed payloads from its rows by index (one per patient per batch, on the hot path);
    # `position_dict` is what the snapshot, the app and search show for the same stored position
    from types import SimpleNamespace

    import orjson

    place = SimpleNamespace(description_th="ใกล้วัดศรีชมภู", description_en="near Wat Si Chomphu")
    times = [datetime(2026, 12, 1, 16, 59, 59, 999999, tzinfo=UTC), datetime(2026, 12, 1, 17, 0, tzinfo=UTC),
             datetime(2026, 12, 31, 23, 30, 0, 123, tzinfo=UTC), datetime(2027, 2, 28, 17, 0, 1),  # naive: UTC
             datetime(2026, 6, 1, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5)))]
    for t in times:
        for where in (place, None):
            row = (7, 3, 2, t, 16.5443, 102.0997, 42.5, "ble", True, "outside", 4, 12.5, "P-01", "B-01", True,
                   88.0, t)
            assert len(row) == len(ingest._POSITION_COLUMNS)
            rec = PositionRecord(**dict(zip(ingest._POSITION_COLUMNS, row, strict=True)))
            words = {"description_th": where.description_th, "description_en": where.description_en} if where \
                else {"description_th": None, "description_en": None}
            want = orjson.dumps({"position": ingest.position_dict(rec, **words)})
            assert orjson.dumps(ingest._feed_payload(row, where)) == want
            assert json.dumps(ingest._feed_payload(row, where, text_times=True), separators=(",", ":"),
                              ensure_ascii=False).encode() == want  # SQLite's JSON column: the stdlib's json


def test_positions_with_only_the_zone_words_are_named_from_the_stored_map(both_site: Site) -> None:
    """A gateway without the tax map says only "inside the safe zone" (or nothing): the stored position gets
    the parcel and building codes of the backend's map, and the feed its words; a place the gateway named
    (a parcel, building or landmark) is kept as sent. Both the general path and the one-statement batch."""
    from chumphae.map.store import save_records
    from tests.mobile.conftest import TINY_MAP, lonlat

    engine, gw = both_site.world.engine, both_site.gateway_id
    with Session(engine) as s:
        save_records(s, TINY_MAP, "test-tiny")
        s.commit()
    zone_words = {"status": "inside", "zone_version": 3,
                  "place": {"description_th": "ในเขตปลอดภัย", "description_en": "inside the safe zone"}}

    def at(k: int, x: float, y: float, match: dict[str, object] | None) -> Message:
        lon, lat = lonlat(x, y)
        parsed = envelope.parse(frame("position", position(T0 + timedelta(seconds=k), lat=lat, lon=lon,
                                                           match=match))[1])
        assert isinstance(parsed, Message)
        return parsed

    state = IngestState(gw)
    store(engine, gateway_id=gw, messages=[at(0, 15, 15, zone_words)], state=state)  # in house 01A001-B001
    gateway_named = {"status": "inside", "zone_version": 3,
                     "place": {"parcel_code": "03I002", "description_th": "บ้าน", "description_en": "home"}}
    store(engine, gateway_id=gw, messages=[at(1, 2, 195, None), at(2, 15, 15, gateway_named),
                                           at(3, 25, 5, zone_words)], state=state)
    with Session(engine) as s:
        stored = s.exec(select(PositionRecord).order_by(col(PositionRecord.t))).all()
        assert [(p.parcel_code, p.building_code) for p in stored] == [
            ("01A001", "01A001-B001"), ("01A002", None), ("03I002", None), ("01A001", None)]
        feed = s.exec(select(FeedEvent).where(FeedEvent.kind == "position").order_by(col(FeedEvent.id))).all()
    payloads = [f.payload["position"] for f in feed]  # type: ignore[index]
    assert [p["parcel_code"] for p in payloads] == ["01A001", "01A001"]  # each batch's newest
    for p in payloads:  # the map's words: distance and direction from the tiny map's temple, not the zone's
        assert "วัดทดสอบ" in p["description_th"] and "Wat Thotsop" in p["description_en"], p


def test_ids_and_codes_that_need_quoting_are_stored_as_sent(both_site: Site) -> None:
    """Ids and codes with quotes, backslashes, braces, commas, the word NULL, spaces or Thai come back as sent
    from the one-statement batch (its rows are one parameter), and repeats are still told apart."""
    engine, gw = both_site.world.engine, both_site.gateway_id
    odd = ['a"b', "c\\d", "{e,f}", "NULL", " g ", "ชุมแพ-1", "h\u00e9"]
    codes = ["NULL", '03"I,{2}', "x\\y", None, "  ", "ก-1", "null"]

    def msg(k: int, mid: str, code: str | None) -> Message:
        match = {"status": "inside", "zone_version": 3,
                 "place": {"parcel_code": code, "landmark": "LM", "description_th": "บ้าน", "description_en": "home"}}
        parsed = envelope.parse(frame("position", position(T0 + timedelta(seconds=k), match=match), mid=mid)[1])
        assert isinstance(parsed, Message) and parsed.id == mid
        return parsed

    state = IngestState(gw)
    store(engine, gateway_id=gw, messages=[_msg(0)], state=state)  # the connection's first batch
    plain = [msg(1 + k, f"plain-{k}", code) for k, code in enumerate(["03I001", "NULL", None, "null"])]
    quoted = [msg(10 + k, mid, code) for k, (mid, code) in enumerate(zip(odd, codes, strict=True))]
    for batch in (plain, quoted):
        r = store(engine, gateway_id=gw, messages=batch, state=state)
        assert (r.stored, r.duplicates, r.acked) == (len(batch), 0, [m.id for m in batch])
        again = store(engine, gateway_id=gw, messages=batch, state=state)
        assert (again.stored, again.duplicates) == (0, len(batch))
    with Session(engine) as s:
        ids = set(s.exec(select(IngestedMessage.msg_id)).all())
        assert {m.id for m in plain + quoted} <= ids
        stored = s.exec(select(PositionRecord).where(PositionRecord.t > T0).order_by(col(PositionRecord.t))).all()
        assert [p.parcel_code for p in stored] == ["03I001", "NULL", None, "null", *codes]
