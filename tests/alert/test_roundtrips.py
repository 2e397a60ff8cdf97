"""PostgreSQL: an SOS from a gateway is stored in three round trips (the ingest's claim of its id, the alert's
reads, then its write with the COMMIT), the feed writers' lock taken in the last one only, just before COMMIT."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from chumphae.ingest import envelope
from chumphae.ingest.envelope import Message
from chumphae.ingest.service import IngestState, store
from chumphae.models import Alert, AlertEvent, FeedEvent, OutboxNotice
from tests.alert.roundtrips import RoundTrips
from tests.conftest import build_world
from tests.ingest.conftest import BAND, make_site


def _sos(mid: str, **where: object) -> Message:
    body = {"type": "sos", "severity": "critical", "address": BAND, "t": datetime.now(UTC).isoformat(),
            "lat": 16.5443, "lon": 102.1001, "uncertainty_m": 15.0,
            "match": {"status": "inside", "zone_version": 3, "distance_to_boundary_m": -20.0,
                      "place": {"parcel_code": "03I002", "building_code": None, "description_th": "บ้าน",
                                "description_en": "home"}}, **where}
    parsed = envelope.parse(envelope_text(mid, body))
    assert isinstance(parsed, Message)
    return parsed


def envelope_text(mid: str, body: dict[str, object]) -> str:
    import json

    return json.dumps({"id": mid, "type": "alert", "t": datetime.now(UTC).isoformat(), "seq": 1, "body": body})


@pytest.mark.postgres
def test_an_sos_is_three_round_trips_with_the_feed_lock_in_the_commits_pipeline(
        pg_schema_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from chumphae.db import set_engine, upgrade

    engine = pg_schema_engine
    upgrade(engine)
    set_engine(engine)
    site = make_site(build_world(engine))
    state = IngestState(site.gateway_id)
    with Session(engine) as s:
        state.load_bands(s, [BAND])  # a connection's band cache, as after its first batch
    first, again = str(uuid.uuid4()), str(uuid.uuid4())
    trips = RoundTrips(monkeypatch)
    opened = store(engine, gateway_id=site.gateway_id, messages=[_sos(first)], state=state, touch_gateway=False)
    assert len(trips.trips) == 3, trips.trips
    claim, reads, write = trips.trips
    assert not any("pg_notify" in q for q in claim + reads)
    locked = [i for i, q in enumerate(write) if "pg_notify" in q]
    assert len(locked) == 1 and write[locked[0] + 1:] == ["COMMIT"], write
    trips.trips.clear()
    retriggered = store(engine, gateway_id=site.gateway_id, messages=[_sos(again), _sos(first)], state=state,
                        touch_gateway=False)
    assert len(trips.trips) == 3, trips.trips
    assert (opened.stored, retriggered.stored, retriggered.duplicates) == (1, 1, 1)
    assert [c.event for c in opened.changes + retriggered.changes] == ["opened", "retriggered"]
    with Session(engine) as s:
        alert = s.exec(select(Alert)).one()
        assert (alert.type, alert.count, alert.status) == ("sos", 2, "open")
        assert list(s.exec(select(AlertEvent.kind).order_by(col(AlertEvent.id))).all()) == ["opened", "retriggered"]
        feed = s.exec(select(FeedEvent).where(FeedEvent.kind == "alert").order_by(col(FeedEvent.id))).all()
        cursors = [c.cursor for c in opened.changes + retriggered.changes]
        assert [f.id for f in feed] == cursors
        feeds = s.exec(select(OutboxNotice.provider_message_id).where(OutboxNotice.channel == "feed")).all()
        assert sorted(feeds) == sorted(f"feed:{c}" for c in cursors)


@pytest.mark.postgres
def test_an_sos_without_a_place_names_it_without_querying_the_map_each_time(
        pg_schema_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway without the tax map sends `match: null`: the backend names the place from its own map. The
    map's cache key is read at most once per `RECHECK_S`, not with every SOS: three round trips still."""
    from chumphae.db import set_engine, upgrade
    from chumphae.map import shared
    from chumphae.map.store import load_default_map

    engine = pg_schema_engine
    upgrade(engine)
    set_engine(engine)
    site = make_site(build_world(engine))
    with Session(engine) as s:
        load_default_map(s)
        s.commit()
    state = IngestState(site.gateway_id)
    with Session(engine) as s:
        state.load_bands(s, [BAND])
    where = {"lat": 16.5442, "lon": 102.0997, "match": None}
    store(engine, gateway_id=site.gateway_id, messages=[_sos(str(uuid.uuid4()), **where)], state=state,
          touch_gateway=False)  # the map's matcher built and its key read
    trips = RoundTrips(monkeypatch)
    store(engine, gateway_id=site.gateway_id, messages=[_sos(str(uuid.uuid4()), **where)], state=state,
          touch_gateway=False)
    assert len(trips.trips) == 3, trips.trips
    assert not any("map_feature" in q for trip in trips.trips for q in trip)
    monkeypatch.setattr(shared, "RECHECK_S", 0.0)  # the key is old: read again (an import would be seen)
    trips.trips.clear()
    store(engine, gateway_id=site.gateway_id, messages=[_sos(str(uuid.uuid4()), **where)], state=state,
          touch_gateway=False)
    assert len(trips.trips) == 4 and any("map_feature" in q for q in trips.trips[0]), trips.trips
    with Session(engine) as s:
        alert = s.exec(select(Alert)).one()
    assert alert.count == 3 and alert.description_th and alert.description_th.startswith("ห่างจาก")
