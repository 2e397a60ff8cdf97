"""A feed sends a patient's newest position per read (positions coalesced, latest wins); alerts are never held."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

from sqlmodel import Session
from websockets.asyncio.client import connect

from chumphae.alert import service
from chumphae.alert.escalate import ClockOptions
from chumphae.alert.service import AlertInput
from chumphae.feed import log as feed_log
from chumphae.feed.socket import FeedOptions, coalesce_positions
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.feed.liveserver import live_server, recv_json


class Row(NamedTuple):
    id: int
    kind: str
    patient_id: int | None
    payload: dict[str, object]


def test_coalesce_keeps_each_patients_last_position_and_every_other_row_in_order() -> None:
    rows = [Row(1, "position", 7, {}), Row(2, "position", 8, {}), Row(3, "alert", 7, {}),
            Row(4, "position", 7, {}), Row(5, "position", None, {}), Row(6, "position", None, {}),
            Row(7, "heartbeat", None, {}), Row(8, "position", 8, {}), Row(9, "alert", 8, {})]
    assert [r.id for r in coalesce_positions(rows)] == [3, 4, 5, 6, 7, 8, 9]  # type: ignore[arg-type]
    distinct = [Row(1, "position", 7, {}), Row(2, "alert", 7, {}), Row(3, "position", 8, {})]
    assert coalesce_positions(distinct) == distinct  # type: ignore[arg-type]
    assert coalesce_positions([]) == []


def _positions(s: Session, patient_id: int, first: int, n: int) -> None:
    for i in range(first, first + n):
        feed_log.append(s, kind="position", patient_id=patient_id,
                        payload={"position": {"patient_id": patient_id, "i": i}})


async def test_positions_of_a_linger_go_as_each_patients_newest_and_an_sos_is_not_held(world: World) -> None:
    # A long linger, so every commit below falls inside the first one's, even on a loaded machine (3 s was
    # outrun once by a full suite beside a 2-core benchmark: the positions went before the SOS was committed).
    options = FeedOptions(ping_s=60, poll_s=30, position_linger_s=8.0)
    with live_server(feed_options=options, clock_options=ClockOptions(tick_s=0)) as server:
        async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            start = (await recv_json(ws))["cursor"]
            own, other = world.own_patient, world.other_patient
            with Session(world.engine) as s:
                _positions(s, own, 0, 20)
                _positions(s, other, 0, 15)
                s.commit()
            with Session(world.engine) as s:
                change = service.raise_alert(s, alert=AlertInput(type="sos", t=utcnow(), patient_id=own))
                s.commit()
            committed = time.monotonic()
            # The SOS, read by the alert lane during the positions' linger. On a loaded machine the linger may
            # already have ended before the SOS was committed (the full suite, twice: the positions went first,
            # coalesced): then they come first, each patient's newest of the first batch, and the SOS next.
            early = []
            first = await recv_json(ws)
            while first["type"] == "position" and len(early) < 2:
                early.append(first)
                first = await recv_json(ws)
            waited = time.monotonic() - committed
            with Session(world.engine) as s:
                _positions(s, own, 20, 20)
                _positions(s, other, 15, 15)
                s.commit()
            rest = [await recv_json(ws, timeout=30) for _ in range(2)]
        assert first["type"] == "alert" and first["cursor"] == change.cursor
        assert waited < options.position_linger_s / 2, waited  # not held until a linger's end
        if early:
            assert {f["position"]["patient_id"]: f["position"]["i"] for f in early} == {own: 19, other: 14}
        assert [f["type"] for f in rest] == ["position", "position"]
        got: dict[int, Any] = {f["position"]["patient_id"]: f["position"]["i"] for f in rest}
        assert got == {own: 39, other: 29}  # each patient's newest, once
        cursors = [f["cursor"] for f in rest]
        assert cursors == sorted(cursors) and cursors[0] > change.cursor

        # Resuming from the cursor before all that replays the same rows coalesced: the alert in its
        # place, each patient's newest position, in cursor order, nothing else.
        async with connect(f"{server.ws}/ws/alerts?cursor={start}",
                           additional_headers=world.auth("care_manager")) as ws:
            welcome = await recv_json(ws)
            assert welcome["type"] == "welcome" and welcome["resumed_from"] == start
            replay = [await recv_json(ws, timeout=15) for _ in range(3)]
        assert [f["cursor"] for f in replay] == sorted(f["cursor"] for f in replay)
        assert [f["type"] for f in replay] == ["alert", "position", "position"]
        assert {f["position"]["patient_id"]: f["position"]["i"] for f in replay[1:]} == {own: 39, other: 29}


async def test_a_read_larger_than_the_buffer_is_cut_and_read_again_in_order(world: World) -> None:
    """30 frames that cannot be coalesced (positions without a patient) through a buffer of 8: the read of
    up to 1,000 rows queues what fits and reads the rest again: all 30, in order, once."""
    options = FeedOptions(buffer=8, ping_s=60, poll_s=30, stall_s=60, position_linger_s=0.2)
    with live_server(feed_options=options, clock_options=ClockOptions(tick_s=0)) as server:
        async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            assert (await recv_json(ws))["type"] == "snapshot"
            with Session(world.engine) as s:
                for i in range(30):
                    feed_log.append(s, kind="position", patient_id=None, payload={"position": {"i": i}})
                s.commit()
            got = [await recv_json(ws, timeout=15) for _ in range(30)]
    assert [f["position"]["i"] for f in got] == list(range(30))
    cursors = [f["cursor"] for f in got]
    assert cursors == sorted(set(cursors))
