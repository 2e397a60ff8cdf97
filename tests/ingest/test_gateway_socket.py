"""The gateway WebSocket through a real `websockets` client against a real uvicorn server."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chumphae.models import Alert, DeadLetter, FeedEvent, Gateway, IngestedMessage, PositionRecord, Wristband
from tests.factories import make_band
from tests.feed.liveserver import LiveServer, recv_json, recv_until
from tests.ingest.conftest import BAND, FOREIGN_BAND, Site

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # inside the accepted window


def frame(type_: str, body: dict[str, Any], mid: str | None = None, seq: int = 1) -> tuple[str, str]:
    mid = mid or str(uuid.uuid4())
    return mid, json.dumps({"id": mid, "type": type_, "t": datetime.now(UTC).isoformat(), "seq": seq, "body": body})


def position(t: datetime, lat: float = 16.5443, **kw: Any) -> dict[str, Any]:
    return {"address": BAND, "patient_id": 1, "t": t.isoformat(), "lat": lat, "lon": 102.1001,
            "uncertainty_m": 18.5, "source": "ble", "receivers": 3, "in_coverage": True,
            "match": {"status": "inside", "zone_version": 3, "distance_to_boundary_m": -22.1,
                      "place": {"parcel_code": "03I002", "building_code": None,
                                "description_th": "บ้าน", "description_en": "home"}}, **kw}


def url(server: LiveServer) -> str:
    return f"{server.ws}/api/v1/gateway/ws"


async def test_refuses_upgrade_without_a_gateway_token(server: LiveServer, site: Site) -> None:
    for headers in ({}, {"Authorization": "Bearer chg_wrong"}, site.world.auth("admin")):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url(server), additional_headers=headers):
                pass
        assert info.value.response.status_code == 401


async def test_stores_once_acks_every_id_and_survives_garbage(server: LiveServer, site: Site) -> None:
    async with connect(url(server), additional_headers=site.auth()) as ws:
        welcome = await recv_json(ws)
        assert welcome["type"] == "welcome" and welcome["site_id"] == "ban-nong-phai"
        assert welcome["config_etag"].startswith('"')
        hello_id, hello = frame("hello", {"gateway_version": "0.1.0", "queue_depth": 3})
        p1, pos = frame("position", position(T0))
        await ws.send(hello)
        await ws.send(pos)
        acked: set[str] = set()
        while {hello_id, p1} - acked:
            f = await recv_json(ws)
            assert f["type"] == "ack", f
            acked |= set(f["ids"])
        await ws.send(pos)  # the same id again: acked, not stored twice
        assert (await recv_json(ws)) == {"type": "ack", "ids": [p1]}
        bad = [("{not json", "bad_json", None),
               (json.dumps([1, 2]), "bad_envelope", None),
               (json.dumps({"id": "m-1", "type": "position"}), "bad_envelope", "m-1"),
               (json.dumps({"id": "m-2", "type": "teleport", "body": {}}), "unknown_type", "m-2"),
               (json.dumps({"id": "m-3", "type": "position", "body": {"address": BAND}}), "bad_body", "m-3"),
               (frame("position", {**position(T0), "address": FOREIGN_BAND}, mid="m-4")[1], "bad_body", "m-4")]
        for text, code, mid in bad:
            await ws.send(text)
            f = await recv_json(ws)
            assert (f["type"], f["code"], f["id"]) == ("error", code, mid), f
        p2, pos2 = frame("position", position(T0 + timedelta(seconds=30), lat=16.5450))
        await ws.send(pos2)  # the connection is still good
        assert (await recv_json(ws)) == {"type": "ack", "ids": [p2]}
    with Session(site.world.engine) as s:
        rows = s.exec(select(PositionRecord).order_by(col(PositionRecord.t))).all()
        assert [(r.patient_id, r.lat, r.parcel_code, r.zone_version) for r in rows] == [
            (site.world.own_patient, 16.5443, "03I002", 3), (site.world.own_patient, 16.5450, "03I002", 3)]
        assert {m.msg_id for m in s.exec(select(IngestedMessage)).all()} == {p1, p2}
        gw = s.get(Gateway, site.gateway_id)
        assert gw is not None and gw.health["backend_rejected"] == 6  # five malformed frames, one foreign band
        letters = s.exec(select(DeadLetter).order_by(col(DeadLetter.id))).all()
        assert [(d.code, d.msg_id, d.gateway_id) for d in letters] == [
            (code, mid, site.gateway_id) for _, code, mid in bad]
        assert letters[0].raw == "{not json"
        assert gw.health["hello"]["gateway_version"] == "0.1.0" and gw.last_heartbeat_at is not None
    counters = server.app.state.gateway_sockets.counters
    assert counters.duplicates == 1 and counters.stored == 2
    assert sum(counters.rejected.values()) == 6


async def test_band_state_only_moves_forward_and_feed_gets_only_the_newest(server: LiveServer, site: Site) -> None:
    newer, older = T0 + timedelta(minutes=5), T0
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        ids = []
        for t, lat in ((newer, 16.5450), (older, 16.5443)):  # a re-sent older message arrives last
            mid, text = frame("position", position(t, lat=lat))
            ids.append(mid)
            await ws.send(text)
        rmid, reading = frame("reading", {"address": BAND, "kind": "chumphae", "t": older.isoformat(),
                                          "battery_pct": 12.0, "worn": False})
        await ws.send(reading)
        acked: set[str] = set()
        while set(ids + [rmid]) - acked:
            acked |= set((await recv_json(ws))["ids"])
    with Session(site.world.engine) as s:
        band = s.get(Wristband, site.band_id)
        # last seen stays the newest position's; the battery is the band's only reading's (its own clock)
        assert band is not None and band.last_seen_at == newer and band.battery_pct == 12.0 and band.worn is False
        feed = s.exec(select(FeedEvent).where(FeedEvent.kind == "position")).all()
        assert [f.payload["position"]["lat"] for f in feed] == [16.5450]  # type: ignore[index]
        assert len(s.exec(select(PositionRecord)).all()) == 2  # both kept, with their true times


async def test_alert_messages_become_alarm_state(server: LiveServer, site: Site) -> None:
    body = {"type": "wander", "severity": "high", "address": BAND, "patient_id": 999,
            "t": datetime.now(UTC).isoformat(), "confidence": 0.9, "lat": 16.5461, "lon": 102.1030,
            "uncertainty_m": 25.0, "match": {"status": "outside", "zone_version": 3,
                                             "place": {"parcel_code": "03I017", "description_th": "ใกล้วัด",
                                                       "description_en": "near the temple"}},
            "details": {"outside_for_s": 75}}
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        first, text1 = frame("alert", body)
        second, text2 = frame("alert", {**body, "lat": 16.5470})
        for text in (text1, text2, text1):
            await ws.send(text)
        acked: list[str] = []
        while len(acked) < 3:
            acked += (await recv_json(ws))["ids"]
        assert sorted(acked) == sorted([first, second, first])
    with Session(site.world.engine) as s:
        alerts = s.exec(select(Alert)).all()
        assert len(alerts) == 1
        a = alerts[0]
        assert (a.patient_id, a.type, a.severity, a.count, a.lat, a.parcel_code, a.zone_version) == (
            site.world.own_patient, "wander", "high", 2, 16.5470, "03I017", 3)  # the band's patient, not 999
        assert a.details["outside_for_s"] == 75 and a.gateway_id == site.gateway_id


async def test_a_second_connection_closes_the_first_and_config_changes_are_announced(
        server: LiveServer, site: Site) -> None:
    async with connect(url(server), additional_headers=site.auth()) as first:
        await recv_json(first)
        async with connect(url(server), additional_headers=site.auth()) as second:
            welcome = await recv_json(second)
            with pytest.raises(ConnectionClosed) as closed:
                await recv_json(first)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
            with Session(site.world.engine) as s:  # a new band on the site
                make_band(s, patient_id=site.world.own_patient, address="C0:FF:EE:00:00:02", site="ban-nong-phai")
                s.commit()
            changed, _ = await recv_until(second, lambda f: f["type"] == "config_changed")
            assert changed["etag"] != welcome["config_etag"]


async def test_backend_names_the_place_when_the_gateway_could_not(server: LiveServer, site: Site) -> None:
    """A gateway matching on bare zone polygons sends no place; the alert still says where, from the tax map."""
    from chumphae.map.store import load_default_map

    with Session(site.world.engine) as s:
        load_default_map(s)
        s.commit()
    body = {"type": "sos", "severity": "critical", "address": BAND, "t": datetime.now(UTC).isoformat(),
            "lat": 16.5442, "lon": 102.0997, "uncertainty_m": 15.0,
            "match": {"status": "outside", "zone_version": 1}, "details": {}}
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        mid, text = frame("alert", body)
        await ws.send(text)
        assert mid in (await recv_json(ws))["ids"]
    with Session(site.world.engine) as s:
        a = s.exec(select(Alert)).one()
    from chumphae.map.layers import MapLayers
    from chumphae.map.match import Matcher
    from chumphae.map.store import DEFAULT_MAP

    expected = Matcher(MapLayers.from_file(DEFAULT_MAP)).place(102.0997, 16.5442)
    assert expected.description_th.startswith("ห่างจาก")
    assert (a.description_th, a.description_en, a.parcel_code) == (
        expected.description_th, expected.description_en, expected.parcel_code)


async def test_a_gateway_connection_raises_the_young_collection_threshold(server: LiveServer, site: Site) -> None:
    """Under ingest load, batches living across a few awaits reached the oldest generation at Python's default
    threshold (700) and made full collections ~17 % of the backend's CPU (docs/performance.md, ingest11)."""
    import gc

    from chumphae.ingest.connection import GC_THRESHOLD0

    async with connect(url(server), additional_headers=site.auth()) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        assert gc.get_threshold()[0] >= GC_THRESHOLD0
