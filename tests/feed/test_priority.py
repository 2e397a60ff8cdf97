"""Alerts leave a feed socket before the positions queued ahead of them (a care manager's feed carries every position)."""

from __future__ import annotations

from sqlmodel import Session
from websockets.asyncio.client import connect

from chumphae.alert import service
from chumphae.alert.service import AlertInput
from chumphae.feed import log as feed_log
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.feed.liveserver import LiveServer, recv_json


async def test_an_alert_overtakes_queued_positions_and_each_lane_keeps_its_order(
        server: LiveServer, world: World) -> None:
    async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        start = (await recv_json(ws))["cursor"]
        with Session(world.engine) as s:  # one commit: the socket reads all 41 rows at once
            for i in range(40):
                feed_log.append(s, kind="position", patient_id=world.own_patient,
                                payload={"position": {"patient_id": world.own_patient, "i": i}})
            change = service.raise_alert(s, alert=AlertInput(type="sos", t=utcnow(), patient_id=world.own_patient))
            s.commit()
        frames = [await recv_json(ws) for _ in range(41)]
    assert frames[0]["type"] == "alert" and frames[0]["cursor"] == change.cursor
    assert frames[0]["alert"]["type"] == "sos" and frames[0]["cursor"] > start + 40
    positions = frames[1:]
    assert [f["position"]["i"] for f in positions] == list(range(40))
    cursors = [f["cursor"] for f in positions]
    assert cursors == sorted(cursors) and cursors[-1] < frames[0]["cursor"]
