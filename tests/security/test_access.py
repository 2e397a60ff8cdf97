"""Revoking and rotating tokens (CLI and admin API) and the failed-authentication limit, on a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chumphae.alert.escalate import ClockOptions
from chumphae.auth.service import create_gateway
from chumphae.cli import app as cli
from chumphae.config import Settings
from chumphae.feed.socket import FeedOptions
from tests.conftest import World
from tests.feed.liveserver import LiveServer, live_server, recv_json


@pytest.fixture
def server(world: World) -> Iterator[LiveServer]:
    with live_server(feed_options=FeedOptions(ping_s=30, poll_s=5, access_check_s=0.2),
                     clock_options=ClockOptions(tick_s=0), access_check_s=0.2) as srv:
        yield srv


@pytest.fixture
def gateway(world: World) -> tuple[int, str]:
    with Session(world.engine, expire_on_commit=False) as s:
        gw, token = create_gateway(s, slug="gw-test-1", name="ทดสอบ", site="chumphae")
        s.commit()
        assert gw.id is not None
        return gw.id, token


def run_cli(world: World, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    from chumphae.config import reset_settings

    monkeypatch.setenv("CHUMPHAE_DATABASE_URL", str(world.engine.url))
    reset_settings()
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


async def closed_with(ws, timeout: float = 15.0) -> int:  # type: ignore[no-untyped-def]
    """Read until the server closes; the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await recv_json(ws, timeout=timeout)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_cli_revoke_closes_the_users_feed_and_rest_refuses(server: LiveServer, world: World,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    me = world.auth("caregiver")
    async with connect(f"{server.ws}/ws/alerts", additional_headers=me) as ws, \
            connect(f"{server.ws}/ws/alerts?token={world.tokens['caregiver']}") as ws2:
        await recv_json(ws), await recv_json(ws)
        out = run_cli(world, monkeypatch, "users", "revoke", str(world.users["caregiver"]))
        assert "revoked" in out and world.tokens["caregiver"] not in out
        assert await closed_with(ws) == 4001
        assert await closed_with(ws2) == 4001
    assert httpx.get(f"{server.http}/api/v1/me", headers=me).status_code == 401
    out = run_cli(world, monkeypatch, "users", "rotate", str(world.users["caregiver"]))
    new = out.split("token: ")[1].split()[0]
    assert new.startswith("chu_") and new != world.tokens["caregiver"]
    assert httpx.get(f"{server.http}/api/v1/me", headers={"Authorization": f"Bearer {new}"}).status_code == 200
    assert httpx.get(f"{server.http}/api/v1/me", headers=me).status_code == 401


async def test_admin_rotate_closes_sockets_signed_in_with_the_old_token(server: LiveServer, world: World) -> None:
    async with connect(f"{server.ws}/ws/alerts") as ws:
        await ws.send(json.dumps({"type": "auth", "token": world.tokens["volunteer"]}))
        await recv_json(ws), await recv_json(ws)
        r = httpx.post(f"{server.http}/api/v1/users/{world.users['volunteer']}/rotate",
                       headers=world.auth("admin"))
        assert r.status_code == 200 and r.json()["token"].startswith("chu_") and r.json()["active"] is True
        assert await closed_with(ws) == 4001
    assert httpx.get(f"{server.http}/api/v1/me", headers=world.auth("volunteer")).status_code == 401
    fresh = {"Authorization": f"Bearer {r.json()['token']}"}
    async with connect(f"{server.ws}/ws/alerts", additional_headers=fresh) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
    r = httpx.post(f"{server.http}/api/v1/users/{world.users['volunteer']}/revoke", headers=world.auth("admin"))
    assert r.status_code == 200 and r.json()["active"] is False and "token" not in r.json()
    assert httpx.get(f"{server.http}/api/v1/me", headers=fresh).status_code == 401


async def test_revoked_or_rotated_gateway_socket_closes_with_4001(server: LiveServer, world: World,
                                                                  gateway: tuple[int, str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    gw_id, token = gateway
    url = f"{server.ws}/api/v1/gateway/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        r = httpx.post(f"{server.http}/api/v1/gateways/{gw_id}/rotate", headers=world.auth("admin"))
        assert r.status_code == 200 and r.json()["token"].startswith("chg_")
        assert await closed_with(ws) == 4001
    new = r.json()["token"]
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}):
            pass
    assert refused.value.response.status_code == 401
    async with connect(url, additional_headers={"Authorization": f"Bearer {new}"}) as ws:
        assert (await recv_json(ws))["type"] == "welcome"
        out = run_cli(world, monkeypatch, "gateways", "revoke", "gw-test-1")
        assert "revoked" in out
        assert await closed_with(ws) == 4001
    out = run_cli(world, monkeypatch, "gateways", "rotate", str(gw_id))
    assert "token: chg_" in out


async def test_gateway_sockets_share_one_token_query_and_only_the_revoked_one_closes(
        server: LiveServer, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from chumphae.api.routes import gateway as route

    made = []
    with Session(world.engine, expire_on_commit=False) as s:
        for k in range(3):
            gw, token = create_gateway(s, slug=f"gw-share-{k}", name="ทดสอบ", site="chumphae")
            made.append((gw.id, token))
        s.commit()
    asked: list[list[int]] = []
    real = route._active_tokens

    def counted(engine: object, ids: list[int]) -> dict[int, str]:
        asked.append(ids)
        return real(engine, ids)  # type: ignore[arg-type]

    monkeypatch.setattr(route, "_active_tokens", counted)
    url = f"{server.ws}/api/v1/gateway/ws"
    socks = [await connect(url, additional_headers={"Authorization": f"Bearer {t}"}).__aenter__() for _, t in made]
    try:
        for ws in socks:
            assert (await recv_json(ws))["type"] == "welcome"
        await asyncio.sleep(1.0)  # five intervals of 0.2 s: three sockets asking every 0.1 s
        ids = sorted(i for i, _ in made)
        assert asked and all(set(ids) <= set(a) for a in asked[1:])  # each query asks for every open socket
        assert len(asked) <= 1.0 / 0.1 + 3  # one query per half interval for all, not one per socket
        r = httpx.post(f"{server.http}/api/v1/gateways/{made[1][0]}/revoke", headers=world.auth("admin"))
        assert r.status_code == 200
        assert await closed_with(socks[1]) == 4001
        await asyncio.sleep(0.5)  # the others stay open
        assert socks[0].close_code is None and socks[2].close_code is None
    finally:
        for ws in socks:
            await ws.close()


def test_failed_authentications_are_limited_per_address(app_engine: object, world: World) -> None:
    from chumphae.api.app import create_app

    app = create_app(Settings(auth_max_failures=5, auth_window_s=60), manage_engine=False)
    with TestClient(app) as client:
        for _ in range(5):
            assert client.get("/api/v1/me", headers={"Authorization": "Bearer chu_wrong"}).status_code == 401
        r = client.get("/api/v1/me", headers={"Authorization": "Bearer chu_wrong"})
        assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
        assert r.headers["content-type"].startswith("application/problem+json") and r.json()["code"] == \
            "too_many_attempts"
        # while locked out, this address is refused before any token is looked at
        assert client.get("/api/v1/me", headers=world.auth("admin")).status_code == 429
        assert client.get("/api/v1/gateway/config", headers={"Authorization": "Bearer chg_x"}).status_code == 429
        assert client.get("/healthz").status_code == 200  # what needs no token still answers
    fresh = create_app(Settings(auth_max_failures=5, auth_window_s=60), manage_engine=False)
    with TestClient(fresh) as client:  # the limit counts failures only: good tokens never add up
        for _ in range(20):
            assert client.get("/api/v1/me", headers=world.auth("admin")).status_code == 200


async def test_failed_socket_authentications_are_limited(world: World) -> None:
    from chumphae.feed.background import background  # noqa: F401  (the server below starts it)

    with live_server(clock_options=ClockOptions(tick_s=0)) as server:
        server.app.state.auth_limiter.max_failures = 3
        for _ in range(2):
            with pytest.raises(InvalidStatus):
                async with connect(f"{server.ws}/ws/alerts?token=chu_wrong"):
                    pass
        async with connect(f"{server.ws}/ws/alerts") as ws:
            await ws.send(json.dumps({"type": "auth", "token": "chu_wrong"}))
            assert await closed_with(ws) == 4001
        for url in (f"{server.ws}/ws/alerts", f"{server.ws}/api/v1/gateway/ws"):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, additional_headers=world.auth("caregiver")):
                    pass
            assert refused.value.response.status_code == 429
            assert int(refused.value.response.headers["retry-after"]) >= 1
