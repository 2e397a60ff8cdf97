"""The gateway's own uplink and durable outbox against the real backend: everything stored once, outbox empties."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from chumphae.models import Alert, IngestedMessage, PositionRecord
from gateway.queue import Outbox
from gateway.uplink import Uplink
from tests.feed.liveserver import LiveServer
from tests.ingest.conftest import BAND, Site


async def test_gateway_uplink_delivers_its_outbox(server: LiveServer, site: Site, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    t0 = datetime.now(UTC) - timedelta(minutes=2)
    for i in range(40):
        outbox.put("position", {"address": BAND, "t": (t0 + timedelta(seconds=3 * i)).isoformat(),
                                "lat": 16.5443 + i * 1e-5, "lon": 102.1001, "uncertainty_m": 15.0})
    outbox.put("alert", {"type": "fall", "address": BAND, "t": t0.isoformat(), "lat": 16.5443, "lon": 102.1001})
    uplink = Uplink(f"{server.ws}/api/v1/gateway/ws", site.token, outbox, heartbeat_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(uplink.run(stop))
    try:
        for _ in range(200):
            if not outbox.pending(1000):
                break
            await asyncio.sleep(0.05)
        assert outbox.pending(1000) == []
        assert uplink.stats.rejected == 0
    finally:
        stop.set()
        await task
        outbox.close()
    with Session(site.world.engine) as s:
        assert len(s.exec(select(PositionRecord)).all()) == 40
        assert len(s.exec(select(IngestedMessage)).all()) == 41
        alerts = s.exec(select(Alert)).all()
        assert [(a.type, a.severity, a.patient_id) for a in alerts] == [("fall", "critical", site.world.own_patient)]
