"""Poison messages, an unavailable database and batching, through a real gateway socket on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chumphae.ingest import envelope
from chumphae.models import Alert, DeadLetter, FeedEvent, IngestedMessage, PositionRecord, Wristband
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import BAND, Site
from tests.ingest.test_gateway_socket import frame, position, url

NOW = datetime.now(UTC).replace(microsecond=0)


def wander(t: datetime) -> dict[str, Any]:
    return {"type": "wander", "severity": "high", "address": BAND, "t": t.isoformat(), "confidence": 0.9,
            "lat": 16.5461, "lon": 102.1030, "uncertainty_m": 25.0,
            "match": {"status": "outside", "zone_version": 3,
                      "place": {"parcel_code": "03I017", "description_th": "ใกล้วัด",
                                "description_en": "near the temple"}},
            "details": {"outside_for_s": 75}}


def poison_frames() -> list[tuple[str, str, str]]:
    """(id, frame text, expected error code) for each way a gateway message once broke the backend."""
    out: list[tuple[str, str, str]] = []

    def raw(mid: str, type_: str, body_json: str, code: str, id_last: bool = False) -> None:
        head = f'"type":"{type_}","t":"{NOW.isoformat()}","seq":1,"body":{body_json}'
        out.append((mid, "{" + (f'{head},"id":"{mid}"' if id_last else f'"id":"{mid}",{head}') + "}", code))

    pos = position(NOW)
    raw("p-year1", "position", json.dumps({**pos, "t": "0001-01-01T00:00:00+01:00"}), "bad_body")
    raw("p-year9999", "position", json.dumps({**pos, "t": "9999-12-31T23:59:59-01:00"}), "bad_body")
    raw("p-old", "position", json.dumps({**pos, "t": (NOW - timedelta(days=31)).isoformat()}), "bad_body")
    raw("r-rssi", "reading", json.dumps({"address": BAND, "kind": "chumphae", "t": NOW.isoformat(),
                                         "rssi": 2**70}), "bad_body")
    raw("p-patient", "position", json.dumps({**pos, "patient_id": 2**70}), "bad_body")
    raw("r-seq", "reading", json.dumps({"address": BAND, "t": NOW.isoformat(), "seq": 2**40}), "bad_body")
    raw("p-inf", "position", json.dumps(pos).replace('"uncertainty_m": 18.5', '"uncertainty_m": 1e999'),
        "bad_json", id_last=True)
    raw("a-deep", "alert", json.dumps(wander(NOW)).replace('"details": {"outside_for_s": 75}',
                                                           '"details": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        "too_large")
    raw("a-deep-id-last", "alert", json.dumps(wander(NOW)).replace('"details": {"outside_for_s": 75}',
                                                                    '"details": {"x": ' + "[" * 2000 + "]" * 2000 + "}"),
        "bad_json", id_last=True)
    raw("a-deep-20", "alert", json.dumps(wander(NOW)).replace('"details": {"outside_for_s": 75}',
                                                               '"details": {"x": ' + "[" * 20 + "]" * 20 + "}"),
        "bad_json")
    raw("p-nul", "position", json.dumps({**pos, "match": {"status": "in\u0000side"}}), "bad_body")
    return out


def test_the_parser_reads_the_id_of_frames_it_will_not_parse() -> None:
    for mid, text_, code in poison_frames():
        r = envelope.parse(text_)
        assert isinstance(r, envelope.Rejection), mid
        assert (r.id, r.code) == (mid, code), r.message


async def _acks_until(ws: Any, wanted: set[str]) -> tuple[set[str], list[dict[str, Any]]]:
    acked: set[str] = set()
    errors: list[dict[str, Any]] = []
    while wanted - acked - {e["id"] for e in errors}:
        f = await recv_json(ws, 10)
        if f["type"] == "ack":
            acked |= set(f["ids"])
        elif f["type"] == "error":
            errors.append(f)
    return acked, errors


async def test_poison_is_answered_recorded_and_does_not_block_the_alert_behind_it(
        both_server: LiveServer, both_site: Site) -> None:
    poison = poison_frames()
    async with connect(url(both_server), additional_headers=both_site.auth(), max_size=None) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        for _, text_, _ in poison:
            await ws.send(text_)
        alert_id, alert = frame("alert", wander(NOW))
        await ws.send(alert)
        acked, errors = await _acks_until(ws, {alert_id} | {mid for mid, _, _ in poison})
        assert alert_id in acked
        assert sorted((e["id"], e["code"]) for e in errors) == sorted((mid, code) for mid, _, code in poison)
        pid, pos = frame("position", position(NOW))  # the connection stays open and useful
        await ws.send(pos)
        assert (await _acks_until(ws, {pid}))[0] == {pid}
    with Session(both_site.world.engine) as s:
        a = s.exec(select(Alert)).one()
        assert (a.type, a.patient_id, a.parcel_code) == ("wander", both_site.world.own_patient, "03I017")
        letters = {d.msg_id: d for d in s.exec(select(DeadLetter)).all()}
        assert set(letters) == {mid for mid, _, _ in poison}
        assert all(d.gateway_id == both_site.gateway_id and len(d.raw) <= DeadLetter.RAW_MAX for d in letters.values())
        assert "\x00" not in letters["p-nul"].raw
        assert {m.msg_id for m in s.exec(select(IngestedMessage)).all()} == {alert_id, pid}


def _poison_trigger(engine: Engine, lat: float) -> None:
    """A row the database refuses although it passed validation (a stand-in for whatever we did not foresee)."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(f"CREATE TRIGGER poison BEFORE INSERT ON position WHEN NEW.lat = {lat} "
                              "BEGIN SELECT RAISE(ABORT, 'poison row'); END"))
        else:
            conn.execute(text("CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                              f"IF NEW.lat = {lat} THEN RAISE EXCEPTION 'poison row' USING ERRCODE = '22023'; "
                              "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON position FOR EACH ROW EXECUTE FUNCTION poison()"))


async def test_a_message_the_database_refuses_is_isolated_from_its_batch(
        both_server: LiveServer, both_site: Site) -> None:
    engine = both_site.world.engine
    _poison_trigger(engine, 16.5447)
    lats = [16.5440 + i * 0.0001 for i in range(12)]  # 16.5447 is the eighth
    msgs = [frame("position", position(NOW - timedelta(seconds=60 - i), lat=round(lat, 4)))
            for i, lat in enumerate(lats)]
    bad_id = msgs[7][0]
    async with connect(url(both_server), additional_headers=both_site.auth()) as ws:
        await recv_json(ws)
        await asyncio.gather(*(ws.send(t) for _, t in msgs))  # sent back to back: read as one batch or a few
        acked, errors = await _acks_until(ws, {m for m, _ in msgs})
    assert [(e["id"], e["code"]) for e in errors] == [(bad_id, "unstorable")]
    assert acked == {m for m, _ in msgs} - {bad_id}
    with Session(engine) as s:
        stored = sorted(r.lat for r in s.exec(select(PositionRecord)).all())
        assert stored == sorted(round(lat, 4) for lat in lats if round(lat, 4) != 16.5447)
        d = s.exec(select(DeadLetter)).one()
        assert (d.msg_id, d.code) == (bad_id, "unstorable") and "poison row" in d.reason


async def test_dedupe_and_band_order_under_batching(both_server: LiveServer, both_site: Site) -> None:
    """300 positions, re-sent ids among them, times shuffled: stored once each, the band's state and the
    feed end on the newest."""
    import random

    rng = random.Random(7)
    times = [NOW - timedelta(minutes=50) + timedelta(seconds=10 * i) for i in range(300)]
    rng.shuffle(times)
    msgs = [frame("position", position(t, lat=round(16.54 + i * 1e-5, 5))) for i, t in enumerate(times)]
    resend = [msgs[i] for i in rng.sample(range(300), 40)]
    newest = max(times)
    async with connect(url(both_server), additional_headers=both_site.auth()) as ws:
        await recv_json(ws)
        for _, t in msgs + resend:
            await ws.send(t)
        acked: list[str] = []
        while len(acked) < 340:
            f = await recv_json(ws, 10)
            assert f["type"] == "ack", f
            acked += f["ids"]
    assert sorted(acked) == sorted(m for m, _ in msgs + resend)
    with Session(both_site.world.engine) as s:
        assert len(s.exec(select(PositionRecord)).all()) == 300
        assert len(s.exec(select(IngestedMessage)).all()) == 300
        band = s.get(Wristband, both_site.band_id)
        assert band is not None and band.last_seen_at == newest
        feed = s.exec(select(FeedEvent).where(FeedEvent.kind == "position").order_by(col(FeedEvent.id))).all()
        feed_times = [datetime.fromisoformat(f.payload["position"]["t"]) for f in feed]  # type: ignore[index]
        assert feed_times[-1] == newest and feed_times == sorted(feed_times)  # the feed never goes back


async def test_an_unavailable_database_acks_nothing_and_closes_with_1013(
        both_server: LiveServer, both_site: Site) -> None:
    engine = both_site.world.engine
    pg = engine.dialect.name == "postgresql"
    async with connect(url(both_server), additional_headers=both_site.auth()) as ws:
        await recv_json(ws)
        # Break the database under the open socket: PostgreSQL loses its schema, SQLite a table.
        with engine.begin() as conn:
            if pg:
                name = conn.execute(text("SELECT current_schema()")).scalar_one()
                conn.execute(text(f'ALTER SCHEMA "{name}" RENAME TO "{name}_away"'))
            else:
                conn.execute(text("ALTER TABLE ingested_message RENAME TO ingested_message_away"))
        mid, pos = frame("position", position(NOW))
        await ws.send(pos)
        frames: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frames.append(await recv_json(ws, 10))
        assert frames == []  # no ack, no per-message error: the gateway keeps the message
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    if pg:
        from sqlalchemy import create_engine

        admin = create_engine(engine.url)  # a connection without the broken search_path
        with admin.begin() as conn:
            conn.execute(text(f'ALTER SCHEMA "{name}_away" RENAME TO "{name}"'))
        admin.dispose()
        engine.dispose()
    else:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE ingested_message_away RENAME TO ingested_message"))
    async with connect(url(both_server), additional_headers=both_site.auth()) as ws:  # the gateway comes back
        await recv_json(ws)
        await ws.send(pos)
        assert (await recv_json(ws)) == {"type": "ack", "ids": [mid]}
    with Session(engine) as s:
        assert len(s.exec(select(PositionRecord)).all()) == 1
        assert s.exec(select(DeadLetter)).all() == []
    assert both_server.app.state.gateway_sockets.counters.unavailable == 1
