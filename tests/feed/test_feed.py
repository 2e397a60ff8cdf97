"""The caregivers' feed through a plain `websockets` client: auth, snapshot, deltas, replay, actions."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.feed.conftest import raise_alert
from tests.feed.liveserver import LiveServer, recv_json, recv_until


def feed_url(server: LiveServer, **query: object) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{server.ws}/ws/alerts" + (f"?{qs}" if qs else "")


async def open_feed(server: LiveServer, world: World, who: str, **query: object):  # type: ignore[no-untyped-def]
    return await connect(feed_url(server, **query), additional_headers=world.auth(who))


async def expect_quiet(ws, req: str = "q") -> dict:  # type: ignore[no-untyped-def]
    """Nothing else is pending: a ping now is answered next."""
    await ws.send(json.dumps({"type": "ping", "req": req}))
    frame = await recv_json(ws)
    assert frame["type"] == "pong" and frame["req"] == req, frame
    return frame


async def test_snapshot_carries_only_my_patients(server: LiveServer, world: World) -> None:
    mine = raise_alert(world.engine, world.own_patient, "sos")
    raise_alert(world.engine, world.other_patient, "fall")
    async with await open_feed(server, world, "caregiver") as ws:
        welcome, snap = await recv_json(ws), await recv_json(ws)
        assert welcome["type"] == "welcome" and welcome["user"]["role"] == "caregiver"
        assert welcome["resumed_from"] is None
        assert snap["type"] == "snapshot" and snap["cursor"] >= (mine.cursor or 0)
        assert [p["id"] for p in snap["patients"]] == [world.own_patient]
        assert [a["id"] for a in snap["alerts"]] == [mine.alert_id]
        a = snap["alerts"][0]
        assert a["patient"]["name_th"].endswith("ผู้ป่วยหนึ่ง") and a["severity"] == "critical"
        assert a["status"] == "open" and a["attention"] is True and a["opened_at_local"].endswith("+07:00")
        assert a["last_seen"]["parcel_code"] == "03I017" and a["last_seen"]["description_en"] == "near the temple"
        await expect_quiet(ws)
    async with await open_feed(server, world, "care_manager") as ws:
        await recv_json(ws)
        snap = await recv_json(ws)
        assert len(snap["alerts"]) == 2
        assert not any(a["attention"] for a in snap["alerts"])  # not yet escalated to the care manager


async def test_auth_by_query_or_first_message_and_refusals(server: LiveServer, world: World) -> None:
    async with connect(feed_url(server, token=world.tokens["volunteer"])) as ws:
        assert (await recv_json(ws))["user"]["role"] == "volunteer"
    async with connect(feed_url(server)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": world.tokens["caregiver"]}))
        assert (await recv_json(ws))["type"] == "welcome"
        assert (await recv_json(ws))["type"] == "snapshot"
    async with connect(feed_url(server)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "chu_nope"}))
        err = await recv_json(ws)
        assert err["code"] == "unauthorized" and err["title_th"] and err["title_en"]
        with pytest.raises(ConnectionClosed) as closed:
            await recv_json(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001
    with pytest.raises(InvalidStatus) as refused:
        async with connect(feed_url(server, token="chu_nope")):
            pass
    assert refused.value.response.status_code == 401


async def test_deltas_arrive_in_cursor_order_for_my_patients_only(server: LiveServer, world: World) -> None:
    async with await open_feed(server, world, "caregiver") as ws:
        await recv_json(ws)
        snap = await recv_json(ws)
        opened = raise_alert(world.engine, world.own_patient)
        raise_alert(world.engine, world.other_patient)  # volunteer2's patient: never shown here
        retrig = raise_alert(world.engine, world.own_patient, t=utcnow() + timedelta(seconds=5))
        f1, f2 = await recv_json(ws), await recv_json(ws)
        assert [(f["type"], f["event"], f["cursor"]) for f in (f1, f2)] == [
            ("alert", "opened", opened.cursor), ("alert", "retriggered", retrig.cursor)]
        assert snap["cursor"] < f1["cursor"] < f2["cursor"]
        assert f2["alert"]["count"] == 2 and f2["ring"] is True and f2["attention"] is True
        assert f2["alert"]["patient"]["id"] == world.own_patient
        await expect_quiet(ws)


async def test_reconnect_with_cursor_gets_exactly_what_was_missed(server: LiveServer, world: World) -> None:
    async with await open_feed(server, world, "caregiver") as ws:
        await recv_json(ws)
        last = (await recv_json(ws))["cursor"]
    missed = [raise_alert(world.engine, world.own_patient, "sos"),
              raise_alert(world.engine, world.other_patient, "sos"),
              raise_alert(world.engine, world.own_patient, "wander"),
              raise_alert(world.engine, world.own_patient, "sos", t=utcnow() + timedelta(seconds=1))]
    expected = [c.cursor for c in missed if c.patient_id == world.own_patient]
    async with await open_feed(server, world, "caregiver", cursor=last) as ws:
        welcome = await recv_json(ws)
        assert welcome["resumed_from"] == last
        frames = [await recv_json(ws) for _ in expected]
        assert [f["cursor"] for f in frames] == expected  # in order, no snapshot, nothing twice
        assert [f["event"] for f in frames] == ["opened", "opened", "retriggered"]
        await expect_quiet(ws)
        last = frames[-1]["cursor"]
    async with await open_feed(server, world, "caregiver", cursor=last) as ws:  # nothing missed: nothing sent
        await recv_json(ws)
        await expect_quiet(ws)
    async with await open_feed(server, world, "caregiver", cursor=10**9) as ws:  # a cursor from nowhere
        await recv_json(ws)
        assert (await recv_json(ws))["type"] == "resync"
        assert (await recv_json(ws))["type"] == "snapshot"


async def test_acknowledge_and_resolve_on_the_socket_or_over_rest_alike(server: LiveServer, world: World) -> None:
    sos = raise_alert(world.engine, world.own_patient, "sos")
    wander = raise_alert(world.engine, world.own_patient, "wander")
    async with await open_feed(server, world, "caregiver") as ws, \
            await open_feed(server, world, "volunteer") as other:
        for sock in (ws, other):
            await recv_json(sock)
            await recv_json(sock)
        await ws.send(json.dumps({"type": "ack", "req": "a1", "alert_id": sos.alert_id, "note": "กำลังไป"}))
        result, _ = await recv_until(ws, lambda f: f["type"] == "result")
        assert result["req"] == "a1" and result["alert"]["status"] == "acknowledged"
        assert result["alert"]["acknowledged_by_name"] == "caregiver"
        delta, _ = await recv_until(other, lambda f: f["type"] == "alert")
        assert (delta["event"], delta["alert"]["id"], delta["alert"]["acknowledged_by_name"]) == (
            "acknowledged", sos.alert_id, "caregiver")
        assert delta["alert"]["next_escalation_at"] is None and delta["attention"] is False
        async with httpx.AsyncClient(base_url=server.http) as http:
            r = await http.post(f"/api/v1/alerts/{wander.alert_id}/resolve", headers=world.auth("volunteer"),
                                json={"outcome": "patient_safe", "note": "อยู่บ้านแล้ว"})
            assert r.status_code == 200 and r.json()["status"] == "resolved"
            r = await http.get(f"/api/v1/alerts/{sos.alert_id}", headers=world.auth("volunteer"))
            assert r.json()["status"] == "acknowledged"
            assert [e["kind"] for e in r.json()["events"]] == ["opened", "acknowledged"]
        for sock in (ws, other):
            f, _ = await recv_until(sock, lambda f: f["type"] == "alert" and f["event"] == "resolved")
            assert f["alert"]["outcome"] == "patient_safe" and f["alert"]["resolved_by_name"] == "volunteer"
        await ws.send(json.dumps({"type": "resolve", "req": "r2", "alert_id": wander.alert_id,
                                  "outcome": "false_alarm"}))
        err, _ = await recv_until(ws, lambda f: f["type"] == "error")
        assert (err["req"], err["code"]) == ("r2", "alert_conflict")
        await ws.send(json.dumps({"type": "teleport"}))
        err, _ = await recv_until(ws, lambda f: f["type"] == "error")
        assert err["code"] == "feed_bad_message"
    other_alert = raise_alert(world.engine, world.other_patient, "sos")
    async with await open_feed(server, world, "caregiver") as ws:
        await recv_json(ws)
        await recv_json(ws)
        await ws.send(json.dumps({"type": "ack", "req": "x", "alert_id": other_alert.alert_id}))
        err, _ = await recv_until(ws, lambda f: f["type"] == "error")
        assert err["code"] == "forbidden"
