"""Scale-out: two backend processes on one PostgreSQL database; a change made through one reaches
a feed client of the other through LISTEN/NOTIFY or Redis, not through process memory or polling."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from websockets.asyncio.client import connect

from chumphae.alert.escalate import ClockOptions
from chumphae.config import reset_settings
from chumphae.db import set_engine, upgrade
from chumphae.feed.socket import FeedOptions
from tests.conftest import PG_URL, World, build_world
from tests.feed.conftest import raise_alert
from tests.feed.liveserver import live_server, recv_json, recv_until, serve_process

REDIS_URL = os.environ.get("CHUMPHAE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def pg_world(pg_schema_engine: Engine) -> World:
    upgrade(pg_schema_engine)
    set_engine(pg_schema_engine)
    return build_world(pg_schema_engine)


def schema_url(engine: Engine) -> str:
    with engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.fixture
def other_process(pg_world: World, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """Backend process A: `chumphae serve` on the same database (and Redis, when the test asks)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")}
    env.update(CHUMPHAE_DATABASE_URL=schema_url(pg_world.engine), CHUMPHAE_DATA_DIR=str(tmp_path / "a"),
               CHUMPHAE_LOG_LEVEL="WARNING")
    if getattr(request, "param", None) == "redis":
        env["CHUMPHAE_REDIS_URL"] = REDIS_URL
    with serve_process([], env, start_s=30) as base:
        yield base


async def _change_in_a_reaches_client_of_b(world: World, base_a: str) -> None:
    sos = raise_alert(world.engine, world.own_patient, "sos")
    # B never polls during the test: only a cross-process wake-up can deliver the frame in time
    with live_server(feed_options=FeedOptions(poll_s=60, ping_s=60), clock_options=ClockOptions(tick_s=0)) as b:
        async with connect(f"{b.ws}/ws/alerts", additional_headers=world.auth("caregiver")) as ws:
            await recv_json(ws)
            snap = await recv_json(ws)
            assert [a["id"] for a in snap["alerts"]] == [sos.alert_id]
            async with httpx.AsyncClient(base_url=base_a) as http:
                r = await http.post(f"/api/v1/alerts/{sos.alert_id}/acknowledge", headers=world.auth("volunteer"))
                assert r.status_code == 200, r.text
            frame, skipped = await recv_until(ws, lambda f: f["type"] == "alert", timeout=5)
            assert skipped == []
            assert frame["event"] == "acknowledged" and frame["alert"]["acknowledged_by_name"] == "volunteer"
            assert frame["cursor"] > snap["cursor"]
            await ws.send(json.dumps({"type": "ping", "req": "p"}))
            assert (await recv_json(ws))["type"] == "pong"  # exactly one frame, nothing twice


@pytest.mark.postgres
async def test_postgres_notify_fans_out_between_processes(pg_world: World, other_process: str) -> None:
    await _change_in_a_reaches_client_of_b(pg_world, other_process)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("other_process", ["redis"], indirect=True)
async def test_redis_fans_out_between_processes(pg_world: World, other_process: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at CHUMPHAE_TEST_REDIS_URL ({exc})")
    monkeypatch.setenv("CHUMPHAE_REDIS_URL", REDIS_URL)
    reset_settings()
    await _change_in_a_reaches_client_of_b(pg_world, other_process)


@pytest.mark.postgres
async def test_serve_refuses_an_oversized_frame_and_keeps_serving(pg_world: World, other_process: str) -> None:
    """`chumphae serve` takes frames up to 1 MiB (docs/gateway-protocol.md): a 2 MiB frame is closed with
    1009 rather than buffered, and the same gateway's next session is served."""
    from sqlmodel import Session
    from websockets.exceptions import ConnectionClosed

    from chumphae.auth.service import create_gateway

    with Session(pg_world.engine) as s:
        _, token = create_gateway(s, slug="gw-big", name="gw big", site="site-big", lat=16.54, lon=102.1,
                                  receivers=[{"id": "rx-big", "lat": 16.54, "lon": 102.1}])
        s.commit()
    url = other_process.replace("http://", "ws://") + "/api/v1/gateway/ws"
    auth = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=auth, max_size=None) as ws:
        await ws.send("x" * (2 * 1024 * 1024))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await recv_json(ws, timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with connect(url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"id": "00000000-0000-4000-8000-000000000001", "type": "heartbeat",
                                  "t": "2026-12-01T03:00:00+00:00", "seq": 1, "body": {}}))
        frame, _ = await recv_until(ws, lambda f: f["type"] == "ack", timeout=10)
        assert frame["ids"] == ["00000000-0000-4000-8000-000000000001"]
