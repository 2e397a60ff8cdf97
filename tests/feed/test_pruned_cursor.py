"""A cursor inside a day the retention job dropped (PostgreSQL, daily partitions) gets a snapshot, as
docs/feed-protocol.md says; the cursor just before the oldest kept row still replays."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from websockets.asyncio.client import connect

from chumphae import partitions
from chumphae.config import Settings
from chumphae.feed.socket import FeedOptions
from chumphae.models import FeedEvent
from chumphae.retention import prune
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.feed.conftest import raise_alert
from tests.feed.liveserver import live_server, recv_json
from tests.feed.test_fanout import pg_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.postgres


def _old_rows(engine: Engine, patient_id: int, n: int) -> list[int]:
    """`n` feed rows 40 days old, in that day's own partition; their cursors."""
    t = utcnow() - timedelta(days=40)
    with engine.begin() as conn:
        partitions.create_day(conn, "feed_event", partitions.bangkok_day(t))
        ids = conn.execute(insert(FeedEvent.__table__).returning(FeedEvent.__table__.c.id),  # type: ignore[attr-defined]
                           [{"t": t, "patient_id": patient_id, "kind": "position", "payload": {}}
                            for _ in range(n)]).scalars().all()
    return sorted(ids)


async def test_a_cursor_in_a_dropped_day_gets_a_snapshot(pg_world: World) -> None:  # noqa: F811
    engine = pg_world.engine
    old = _old_rows(engine, pg_world.own_patient, 3)
    sos = raise_alert(engine, pg_world.own_patient, "sos")
    assert prune(engine, Settings(retention_feed_days=30))["feed"] == 3  # the old day's partition dropped
    with live_server(feed_options=FeedOptions(ping_s=30, poll_s=5)) as server:
        url = f"{server.ws}/ws/alerts?cursor={old[0]}"
        async with connect(url, additional_headers=pg_world.auth("caregiver")) as ws:
            assert (await recv_json(ws))["resumed_from"] is None
            assert await recv_json(ws) == {"type": "resync", "reason": "cursor_unknown", "cursor": old[0]}
            snap = await recv_json(ws)
            assert snap["type"] == "snapshot" and snap["cursor"] >= sos.cursor
            assert [a["id"] for a in snap["alerts"]] == [sos.alert_id]
        url = f"{server.ws}/ws/alerts?cursor={old[-1]}"  # had everything up to the dropped day's end
        async with connect(url, additional_headers=pg_world.auth("caregiver")) as ws:
            assert (await recv_json(ws))["resumed_from"] == old[-1]
            frame = await recv_json(ws)
            assert (frame["type"], frame["cursor"], frame["alert"]["id"]) == ("alert", sos.cursor, sos.alert_id)
