"""Alerts leave a feed socket before the positions queued ahead of them (a care manager's feed carries every position)."""

from __future__ import annotations

import asyncio

import pytest
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


async def test_an_alert_is_read_ahead_of_a_backlog_of_positions(world: World) -> None:
    """A care manager whose phone is behind (queue full of positions) still gets a new SOS before them."""

    from chumphae.alert.escalate import ClockOptions
    from chumphae.feed.socket import FeedOptions
    from tests.feed.liveserver import live_server
    from tests.feed.test_clock_and_backpressure import raw_feed, read_frame

    options = FeedOptions(buffer=8, batch=8, stall_s=60, poll_s=0.5, ping_s=60, position_linger_s=0)
    with live_server(feed_options=options, clock_options=ClockOptions(tick_s=0)) as server:
        slow = raw_feed(server.port, world.tokens["care_manager"])
        try:
            slow.settimeout(10)
            assert [read_frame(slow)["type"] for _ in range(2)] == ["welcome", "snapshot"]
            pad = "x" * 150_000  # 60 frames x 150 kB: more than the socket buffers hold, so frames queue
            with Session(world.engine) as s:
                for i in range(60):
                    feed_log.append(s, kind="position", patient_id=world.own_patient,
                                    payload={"position": {"patient_id": world.own_patient, "i": i, "pad": pad}})
                s.commit()
            await asyncio.sleep(1.0)  # the producer has filled the queue and stopped reading positions
            with Session(world.engine) as s:
                change = service.raise_alert(s, alert=AlertInput(type="sos", t=utcnow(),
                                                                 patient_id=world.own_patient))
                s.commit()
            await asyncio.sleep(1.0)  # it reads the alert ahead of the positions still in the database
            seen: list[tuple[str, object]] = []
            while len([k for k, _ in seen if k == "position"]) < 60:
                f = await asyncio.to_thread(read_frame, slow)
                if f["type"] in ("position", "alert"):
                    seen.append((str(f["type"]), f["position"]["i"] if f["type"] == "position" else f["cursor"]))  # type: ignore[index]
        finally:
            slow.close()
    kinds = [k for k, _ in seen]
    assert kinds.count("alert") == 1 and seen[kinds.index("alert")][1] == change.cursor
    assert [i for k, i in seen if k == "position"] == list(range(60))  # every position, in order, once
    assert kinds.index("alert") < 59  # overtook positions that were still waiting


async def test_a_feed_that_is_behind_reads_alerts_ahead_of_the_positions_still_to_read(world: World) -> None:
    """The queue has room, but more rows wait than one read takes: the SOS does not wait for its turn."""
    from chumphae.alert.escalate import ClockOptions
    from chumphae.feed.socket import FeedOptions
    from tests.feed.liveserver import live_server

    options = FeedOptions(buffer=256, batch=8, stall_s=60, poll_s=0.5, ping_s=60, position_linger_s=0)
    with live_server(feed_options=options, clock_options=ClockOptions(tick_s=0)) as server:
        async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            assert (await recv_json(ws))["type"] == "snapshot"
            with Session(world.engine) as s:  # one commit: 60 positions, then the SOS (the highest cursor)
                for i in range(60):
                    feed_log.append(s, kind="position", patient_id=world.own_patient,
                                    payload={"position": {"patient_id": world.own_patient, "i": i}})
                change = service.raise_alert(s, alert=AlertInput(type="sos", t=utcnow(),
                                                                 patient_id=world.own_patient))
                s.commit()
            frames = [await recv_json(ws) for _ in range(61)]
    kinds = [f["type"] for f in frames]
    assert kinds.count("alert") == 1 and frames[kinds.index("alert")]["cursor"] == change.cursor
    assert [f["position"]["i"] for f in frames if f["type"] == "position"] == list(range(60))  # each once, in order
    assert kinds.index("alert") < 60 - options.batch  # overtook positions not yet read when it was committed


async def test_an_alert_committed_during_a_slow_read_of_positions_does_not_wait_for_it(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a loaded machine one read of a district's positions can take hundreds of ms: an SOS committed
    meanwhile is read beside it and sent first, not after the positions that read brings."""
    import time

    from chumphae.alert.escalate import ClockOptions
    from chumphae.feed import frames as feed_frames
    from chumphae.feed.socket import FeedOptions
    from tests.feed.liveserver import live_server

    render = feed_frames.render

    def slow_render(viewer: feed_frames.Viewer, row: feed_log.FeedRow) -> dict[str, object]:
        if row.kind == "position":
            time.sleep(0.05)  # 20 positions: a read of 1 s
        return render(viewer, row)

    monkeypatch.setattr(feed_frames, "render", slow_render)
    options = FeedOptions(buffer=256, batch=100, stall_s=60, poll_s=0.5, ping_s=60, position_linger_s=0)
    with live_server(feed_options=options, clock_options=ClockOptions(tick_s=0)) as server:
        async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            assert (await recv_json(ws))["type"] == "snapshot"
            with Session(world.engine) as s:
                for i in range(20):
                    feed_log.append(s, kind="position", patient_id=world.own_patient,
                                    payload={"position": {"patient_id": world.own_patient, "i": i}})
                s.commit()
            await asyncio.sleep(0.2)  # the producer is in its read of the 20 positions
            with Session(world.engine) as s:
                change = service.raise_alert(s, alert=AlertInput(type="sos", t=utcnow(),
                                                                 patient_id=world.own_patient))
                s.commit()
            frames = [await recv_json(ws) for _ in range(21)]
    assert frames[0]["type"] == "alert" and frames[0]["cursor"] == change.cursor
    assert [f["position"]["i"] for f in frames[1:]] == list(range(20))  # each once, in order


async def test_commits_of_positions_alone_do_not_start_alert_reads(world: World, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    """The alert lane reads alert rows beside a running read of positions, but only when the wake-up came from a
    commit that wrote alert rows: the position batches committed during a read (many a second under load) cost
    it no query. An alert committed during the same kind of read is still sent ahead of the positions."""
    import time

    from chumphae.alert.escalate import ClockOptions
    from chumphae.feed import frames as feed_frames
    from chumphae.feed.socket import FeedOptions
    from tests.feed.liveserver import live_server

    render, read_since = feed_frames.render, feed_log.read_since
    alert_reads: list[int] = []

    def slow_render(viewer: feed_frames.Viewer, row: feed_log.FeedRow) -> dict[str, object]:
        if row.kind == "position":
            time.sleep(0.05)
        return render(viewer, row)

    def counted(*args: object, **kw: object) -> list[feed_log.FeedRow]:
        if kw.get("kind") == "alert":
            alert_reads.append(1)
        return read_since(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(feed_frames, "render", slow_render)
    monkeypatch.setattr(feed_log, "read_since", counted)

    def positions(first: int, n: int) -> None:
        with Session(world.engine) as s:
            for i in range(first, first + n):
                feed_log.append(s, kind="position", patient_id=world.own_patient,
                                payload={"position": {"patient_id": world.own_patient, "i": i}})
            s.commit()

    options = FeedOptions(buffer=256, batch=100, stall_s=60, poll_s=0.5, ping_s=60, position_linger_s=0)
    with live_server(feed_options=options, clock_options=ClockOptions(tick_s=0)) as server:
        async with connect(f"{server.ws}/ws/alerts", additional_headers=world.auth("care_manager")) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            assert (await recv_json(ws))["type"] == "snapshot"
            positions(0, 20)  # a read of 1 s
            await asyncio.sleep(0.2)
            for k in range(5):  # five batches committed while that read runs
                positions(20 + k, 1)
                await asyncio.sleep(0.05)
            got = [await recv_json(ws) for _ in range(25)]
            assert [f["position"]["i"] for f in got] == list(range(25))
            assert alert_reads == []
            positions(25, 20)
            await asyncio.sleep(0.2)
            with Session(world.engine) as s:
                change = service.raise_alert(s, alert=AlertInput(type="sos", t=utcnow(),
                                                                 patient_id=world.own_patient))
                s.commit()
            frames = [await recv_json(ws) for _ in range(21)]
    assert len(alert_reads) >= 1
    assert frames[0]["type"] == "alert" and frames[0]["cursor"] == change.cursor
    assert [f["position"]["i"] for f in frames[1:]] == list(range(25, 45))
