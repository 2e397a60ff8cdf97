"""Feed tests: a real server, real `websockets` clients, events written through the services."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from chumphae.alert import service
from chumphae.alert.escalate import ClockOptions
from chumphae.alert.service import AlertChange, AlertInput
from chumphae.feed.socket import FeedOptions
from chumphae.timeutil import utcnow
from tests.conftest import World
from tests.feed.liveserver import LiveServer, live_server


def raise_alert(engine: Engine, patient_id: int | None, type_: str = "wander", *, t: datetime | None = None,
                now: datetime | None = None, **kw: object) -> AlertChange:
    """Commit one alert change the way ingest does (its own transaction)."""
    t = t or utcnow()
    with Session(engine, expire_on_commit=False) as s:
        change = service.raise_alert(s, alert=AlertInput(type=type_, t=t, patient_id=patient_id, lat=16.5461,
                                                         lon=102.1030, uncertainty_m=25.0, parcel_code="03I017",
                                                         description_th="ใกล้วัด", description_en="near the temple",
                                                         zone_version=3, **kw),  # type: ignore[arg-type]
                                     now=now or t)
        s.commit()
    return change


@pytest.fixture
def server(world: World) -> Iterator[LiveServer]:
    # Every position row its own frame (no linger, no coalescing): these tests count positions one by one;
    # tests/feed/test_coalesce.py runs the default (a patient's newest position per read).
    options = FeedOptions(ping_s=30, poll_s=5, position_linger_s=0)
    with live_server(feed_options=options, clock_options=ClockOptions(tick_s=0)) as srv:
        yield srv
