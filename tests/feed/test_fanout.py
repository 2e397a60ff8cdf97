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
from sqlmodel import select
from websockets.asyncio.client import connect

from chumphae.alert.escalate import ClockOptions
from chumphae.config import reset_settings
from chumphae.db import set_engine, upgrade
from chumphae.feed import log as feed_log
from chumphae.feed.socket import FeedOptions
from chumphae.models import Alert
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


# ---- what a wake-up says: whether the commit wrote alert rows (the sockets' alert lane sleeps otherwise) ----------

@pytest.fixture
def own_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOTIFY channels are per database and Redis channels per server, not per test schema: channels of this
    test's own, so that nobody else's commits wake it."""
    import uuid

    from chumphae.feed import fanout

    name = uuid.uuid4().hex[:12]
    monkeypatch.setattr(feed_log, "PG_CHANNEL", f"chumphae_feed_{name}")
    monkeypatch.setattr(fanout, "REDIS_CHANNEL", f"chumphae:feed:{name}")


def _commit_positions(engine: Engine, patient_id: int, n: int = 3) -> None:
    from sqlmodel import Session

    from chumphae.feed import log as feed_log

    with Session(engine) as s:
        feed_log.append_many_and_commit(s, [("position", patient_id, {"position": {"i": i}}) for i in range(n)])


async def _woken(hub: object, every: object, alerts: object, commit: object) -> tuple[bool, bool]:
    """Run `commit` in a thread (as the ingest does); whether each subscriber was woken within 3 s."""
    import asyncio

    assert isinstance(every, asyncio.Event) and isinstance(alerts, asyncio.Event) and callable(commit)
    every.clear()
    alerts.clear()
    await asyncio.to_thread(commit)
    async with asyncio.timeout(3):
        await every.wait()
    await asyncio.sleep(0.3)  # an alert wake-up would come with the same message
    return every.is_set(), alerts.is_set()


async def _check_wakeups(world: World, hub_factory: object) -> None:
    """Positions wake every subscriber but the alert-only ones; an alert (raised as the ingest does, its
    statement sent with the commit; or written by an acknowledge on the ORM path) wakes both."""
    import asyncio

    from sqlmodel import Session

    from chumphae.alert import service
    from chumphae.alert.service import AlertInput
    from chumphae.models import User
    from chumphae.timeutil import utcnow

    assert callable(hub_factory)
    async with hub_factory() as hub:
        every, alerts = hub.subscribe(), hub.subscribe(alerts_only=True)
        await asyncio.sleep(0.5)  # the listener is subscribed (it wakes everyone once when it is)
        assert await _woken(hub, every, alerts, lambda: _commit_positions(world.engine, world.own_patient)) == (
            True, False)

        def sos() -> None:
            with Session(world.engine) as s:
                service.raise_alert(s, alert=AlertInput(type="sos", t=utcnow(), patient_id=world.own_patient))
                feed_log.append_many_and_commit(s, [("position", world.own_patient, {"position": {"i": 9}})])

        assert await _woken(hub, every, alerts, sos) == (True, True)

        def acknowledge() -> None:
            with Session(world.engine) as s:
                alert_id = s.exec(select(Alert.id)).one()
                service.acknowledge(s, user=s.get(User, world.users["volunteer"]), alert_id=alert_id)
                s.commit()

        assert await _woken(hub, every, alerts, acknowledge) == (True, True)
        assert await _woken(hub, every, alerts, lambda: _commit_positions(world.engine, world.own_patient)) == (
            True, False)


@pytest.mark.postgres
async def test_listen_wakes_the_alert_lane_only_for_commits_that_wrote_alerts(pg_world: World, own_channels: None
                                                                               ) -> None:
    """Through LISTEN: the hub hears only the database (no local hook registered), as another process does."""
    import asyncio
    import contextlib
    from collections.abc import AsyncIterator

    from chumphae.feed.fanout import Hub, PostgresSource

    @contextlib.asynccontextmanager
    async def listening() -> AsyncIterator[Hub]:
        hub = Hub(asyncio.get_running_loop())
        task = asyncio.create_task(PostgresSource(pg_world.engine).run(hub))
        try:
            yield hub
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    await _check_wakeups(pg_world, listening)


@pytest.mark.postgres
@pytest.mark.redis
async def test_redis_wakes_the_alert_lane_only_for_commits_that_wrote_alerts(pg_world: World, own_channels: None
                                                                              ) -> None:
    """Through Redis: the committing side publishes (its after-commit hook), the hub hears only Redis."""
    import asyncio
    import contextlib
    from collections.abc import AsyncIterator

    import redis

    from chumphae.feed import log as feed_log
    from chumphae.feed.fanout import Hub, RedisSource, redis_publisher

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at CHUMPHAE_TEST_REDIS_URL ({exc})")

    @contextlib.asynccontextmanager
    async def subscribed() -> AsyncIterator[Hub]:
        hub = Hub(asyncio.get_running_loop())
        publish = redis_publisher(REDIS_URL)
        feed_log.on_commit(publish)
        task = asyncio.create_task(RedisSource(REDIS_URL).run(hub))
        try:
            yield hub
        finally:
            feed_log.off_commit(publish)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    await _check_wakeups(pg_world, subscribed)
