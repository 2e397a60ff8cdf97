"""The backend's start-up builds, before serving, what the first requests of a hundred gateways would
otherwise build on the event loop: the routes' state and the database pool's connections."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import routing
from sqlalchemy.engine import Engine

from chumphae.alert.escalate import ClockOptions
from chumphae.db import set_engine, upgrade
from chumphae.feed.background import warm
from tests.conftest import World
from tests.feed.liveserver import live_server


def test_the_first_requests_find_every_route_built(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Any] = []
    populate = routing._populate_api_route_state

    def counted(route: Any, path: str, *args: Any, **kw: Any) -> None:
        built.append(path)
        populate(route, path, *args, **kw)

    with live_server(clock_options=ClockOptions(tick_s=0)) as server:
        monkeypatch.setattr(routing, "_populate_api_route_state", counted)  # after start-up: the requests' share
        with httpx.Client(base_url=server.http) as http:
            assert http.get("/healthz").status_code == 200
            assert http.get("/api/v1/alerts", headers=world.auth("caregiver")).status_code == 200
            assert http.get("/api/v1/mobile/patients", headers=world.auth("volunteer")).status_code == 200
    assert built == []


@pytest.mark.postgres
def test_warm_opens_the_pools_connections(pg_schema_engine: Engine) -> None:
    from chumphae.api.app import create_app

    upgrade(pg_schema_engine)
    set_engine(pg_schema_engine)
    pg_schema_engine.dispose()  # a new, empty pool
    pool: Any = pg_schema_engine.pool
    assert pool.checkedin() == 0
    warm(create_app(manage_engine=False), pg_schema_engine)
    assert pool.checkedout() == 0 and pool.checkedin() == pool.size() > 1
