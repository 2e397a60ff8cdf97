"""`chumphae serve --workers 2` on one PostgreSQL database (fan-out by LISTEN/NOTIFY, or Redis), driven by
several gateways at once: every message stored once, every caregiver sees every alert once and in
order whichever worker holds its socket, and the clock's timers (gateway offline, escalation) fire
exactly once across the two processes."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, func, select
from websockets.asyncio.client import ClientConnection, connect

from chumphae.auth.service import assign, create_gateway
from chumphae.models import Alert, AlertEvent, Gateway, IngestedMessage, PositionRecord
from tests.conftest import World
from tests.factories import make_band, make_patient
from tests.feed.liveserver import serve_process
from tests.feed.test_fanout import REDIS_URL, pg_world, schema_url  # noqa: F401  (fixture)

GATEWAYS = 3
POSITIONS = 40  # per gateway


def _district(world: World) -> list[tuple[str, str, int]]:
    """Three sites, each with its gateway and one patient cared for by `caregiver`: (token, band, patient)."""
    out = []
    with Session(world.engine, expire_on_commit=False) as s:
        for k in range(GATEWAYS):
            site = f"site-{k}"
            _, token = create_gateway(s, slug=f"gw-{k}", name=f"gw {k}", site=site, lat=16.54, lon=102.1,
                                      receivers=[{"id": f"rx-{k}", "lat": 16.54, "lon": 102.1}])
            patient = make_patient(s, name_th=f"ผู้ป่วย {k}", cid=None, pid=f"9{k:05d}")
            address = f"C0:FF:EE:00:01:{k:02X}"
            make_band(s, patient_id=patient.id, address=address, site=site)
            assign(s, user_id=world.users["caregiver"], patient_id=patient.id)  # type: ignore[arg-type]
            out.append((token, address, patient.id))
        s.commit()
    return out


@pytest.fixture
def workers(pg_world: World, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:  # noqa: F811
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")}
    env.update(CHUMPHAE_DATABASE_URL=schema_url(pg_world.engine), CHUMPHAE_DATA_DIR=str(tmp_path / "w"),
               CHUMPHAE_LOG_LEVEL="WARNING")
    if request.param == "redis":
        import redis

        try:
            redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        except redis.RedisError as exc:
            pytest.skip(f"Redis not reachable at CHUMPHAE_TEST_REDIS_URL ({exc})")
        env["CHUMPHAE_REDIS_URL"] = REDIS_URL
    with serve_process(["--workers", "2"], env) as base:
        yield base


def _frame(type_: str, body: dict[str, Any], seq: int) -> tuple[str, str]:
    mid = str(uuid.uuid4())
    return mid, json.dumps({"id": mid, "type": type_, "t": datetime.now(UTC).isoformat(), "seq": seq, "body": body})


async def _gateway(ws_base: str, token: str, address: str, patient_id: int) -> set[str]:
    """One gateway: positions then an SOS, all sent at once; returns the ids it sent once all are acked."""
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    sent: dict[str, str] = {}
    for k in range(POSITIONS):
        mid, text = _frame("position", {"address": address, "patient_id": patient_id,
                                        "t": (t0 + timedelta(seconds=5 * k)).isoformat(),
                                        "lat": 16.54 + k * 1e-5, "lon": 102.1, "uncertainty_m": 15.0,
                                        "source": "ble", "receivers": 2, "in_coverage": True,
                                        "match": None}, seq=k + 1)
        sent[mid] = text
    mid, text = _frame("alert", {"type": "sos", "severity": "critical", "address": address, "patient_id": patient_id,
                                 "t": (t0 + timedelta(seconds=5 * POSITIONS)).isoformat(), "confidence": 1.0,
                                 "lat": 16.54, "lon": 102.1, "uncertainty_m": 15.0, "match": None, "details": {}},
                       seq=POSITIONS + 1)
    sent[mid] = text
    acked: set[str] = set()
    async with connect(f"{ws_base}/api/v1/gateway/ws",
                       additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        for text in sent.values():
            await ws.send(text)
        while set(sent) - acked:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert frame["type"] in ("welcome", "ack", "config_changed"), frame
            if frame["type"] == "ack":
                acked |= set(frame["ids"])
    return set(sent)


async def _caregiver(ws_base: str, token: str, want: int, opened: asyncio.Event,
                     clients: list[ClientConnection]) -> list[dict[str, Any]]:
    """A caregiver's feed socket: the SOS frames it sees (after the snapshot), in arrival order."""
    seen: list[dict[str, Any]] = []
    async with connect(f"{ws_base}/ws/alerts", additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        clients.append(ws)
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if frame["type"] == "snapshot":
                break
        opened.set()
        # Alerts leave ahead of queued positions (docs/feed-protocol.md): each lane is in cursor order,
        # and no cursor comes twice.
        last = {"alert": frame["cursor"], "position": frame["cursor"]}
        cursors: set[int] = set()
        while len(seen) < want:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if "cursor" in frame and frame["type"] in last:
                lane = frame["type"]
                assert frame["cursor"] > last[lane], "each lane in cursor order"
                assert frame["cursor"] not in cursors, "nothing twice"
                last[lane] = frame["cursor"]
                cursors.add(frame["cursor"])
            if frame["type"] == "alert" and frame["alert"]["type"] == "sos":
                seen.append(frame)
    return seen


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("workers", ["notify", "redis"], indirect=True)
async def test_two_workers_several_gateways_timers_once(pg_world: World, workers: str) -> None:  # noqa: F811
    district = _district(pg_world)
    ws_base = workers.replace("http://", "ws://")
    clients: list[ClientConnection] = []
    readiness = [asyncio.Event() for _ in range(4)]
    feeds = [asyncio.create_task(_caregiver(ws_base, pg_world.tokens["caregiver"], GATEWAYS, ready, clients))
             for ready in readiness]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readiness)), 30)
    sent = await asyncio.gather(*(_gateway(ws_base, token, address, pid) for token, address, pid in district))
    seen = await asyncio.wait_for(asyncio.gather(*feeds), 60)

    for frames in seen:  # every caregiver socket, whichever worker holds it: each SOS once
        assert sorted(f["alert"]["patient_id"] for f in frames) == sorted(pid for _, _, pid in district)
        assert len({f["alert"]["id"] for f in frames}) == GATEWAYS
    with Session(pg_world.engine) as s:
        assert s.exec(select(func.count()).select_from(PositionRecord)).one() == GATEWAYS * POSITIONS
        ids = set(s.exec(select(IngestedMessage.msg_id)).all())
        assert set().union(*sent) <= ids
        sos = s.exec(select(Alert).where(Alert.type == "sos")).all()
        assert len(sos) == GATEWAYS
        due = sos[0].id

        # The clock: gateway 0 silent for long, and one SOS due for escalation now. Both workers tick
        # every 5 s; after several ticks of each, each timer has fired exactly once.
        long_ago = datetime.now(UTC) - timedelta(minutes=10)
        # Due 30 s ago: one climb, whose next deadline (the rung reached's delay from then: 300 s or more) lies
        # well past this test; 10 min ago made it due again at once when the climb passed over the empty
        # volunteer rung straight to the care managers (600 s: rung27), a second, rightful climb.
        just_due = datetime.now(UTC) - timedelta(seconds=30)
        s.exec(update(Gateway).where(col(Gateway.slug) == "gw-0").values(last_heartbeat_at=long_ago))  # type: ignore[call-overload]
        s.exec(update(Alert).where(col(Alert.id) == due).values(next_escalation_at=just_due))  # type: ignore[call-overload]
        s.commit()
    await asyncio.sleep(16)
    with Session(pg_world.engine) as s:
        offline = s.exec(select(Alert).where(Alert.type == "gateway_offline")).all()
        assert len(offline) == 1
        escalated = s.exec(select(AlertEvent).where(AlertEvent.alert_id == due,
                                                    AlertEvent.kind == "escalated")).all()
        assert len(escalated) == 1, [e.details for e in escalated]
