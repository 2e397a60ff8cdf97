"""A district with gateways on two sites and a band on each, served by a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.auth.service import create_gateway
from chumphae.ingest.connection import IngestOptions
from tests.conftest import World
from tests.factories import make_band
from tests.feed.liveserver import LiveServer, live_server

BAND = "C0:FF:EE:00:00:01"
FOREIGN_BAND = "C0:FF:EE:00:00:99"


@dataclass
class Site:
    world: World
    gateway_id: int
    token: str
    other_token: str
    band_id: int

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


@pytest.fixture
def site(world: World) -> Site:
    return make_site(world)


def make_site(world: World) -> Site:
    with Session(world.engine, expire_on_commit=False) as s:
        gw, token = create_gateway(s, slug="gw-nong-phai-1", name="หนองไผ่ 1", site="ban-nong-phai",
                                   lat=16.5442, lon=102.0997,
                                   receivers=[{"id": "rx-rph", "lat": 16.5442, "lon": 102.0997, "p1m_dbm": -59}])
        _, other = create_gateway(s, slug="gw-other", name="อื่น", site="ban-other")
        band = make_band(s, patient_id=world.own_patient, address=BAND, site="ban-nong-phai")
        make_band(s, patient_id=world.other_patient, address=FOREIGN_BAND, site="ban-other")
        s.commit()
        return Site(world, gw.id, token, other, band.id)  # type: ignore[arg-type]


@pytest.fixture
def server(app_engine: Engine, site: Site) -> Iterator[LiveServer]:
    from chumphae.alert.escalate import ClockOptions

    with live_server(ingest_options=IngestOptions(config_check_s=0.2), clock_options=ClockOptions(tick_s=0)) as srv:
        yield srv


@pytest.fixture
def both_site(engine: Engine) -> Site:
    """The same site on a migrated SQLite or PostgreSQL database (the `engine` fixture's two params)."""
    from chumphae.db import set_engine
    from tests.conftest import build_world

    set_engine(engine)
    return make_site(build_world(engine))


@pytest.fixture
def both_server(both_site: Site) -> Iterator[LiveServer]:
    from chumphae.alert.escalate import ClockOptions

    with live_server(ingest_options=IngestOptions(config_check_s=5), clock_options=ClockOptions(tick_s=0)) as srv:
        yield srv
