"""A fresh backend database for gateway tests against the real backend (served by tests.feed.liveserver)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.auth.service import create_gateway
from chumphae.db import make_engine, upgrade
from tests.conftest import build_world
from tests.factories import make_band

BAND = "C0:FF:EE:00:00:01"
KEY = "00112233445566778899aabbccddeeff"  # tests.factories.make_band's key
RECEIVERS = [
    {"id": "rx-rph", "lat": 16.5442, "lon": 102.0997, "p1m_dbm": -59, "path_loss_n": 2.0},
    {"id": "rx-ne", "lat": 16.5448, "lon": 102.1004, "p1m_dbm": -59, "path_loss_n": 2.0},
    {"id": "rx-sw", "lat": 16.5436, "lon": 102.0990, "p1m_dbm": -59, "path_loss_n": 2.0},
]


def district(path: Path) -> tuple[Engine, int, str]:
    """A fresh backend database: the test world, a gateway with three receivers, a band on it."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    world = build_world(engine)
    with Session(engine, expire_on_commit=False) as s:
        _gw, token = create_gateway(s, slug="gw-nong-phai-1", name="หนองไผ่ 1", site="ban-nong-phai",
                                    lat=16.5442, lon=102.0997, receivers=RECEIVERS)
        make_band(s, patient_id=world.own_patient, address=BAND, site="ban-nong-phai")  # key: KEY
        s.commit()
    return engine, world.own_patient, token


