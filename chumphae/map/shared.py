"""The tax map in memory for the backend, rebuilt only when the stored map changes.

Building the indexed layer set from `map_feature` takes a moment (thousands of
parcels); request handlers and the gateway ingest (which names places a
gateway could not) must not pay that per call. The cache key is a cheap
fingerprint of the table (row count, highest id), so an import or a removal
is seen in any process. Even that query is one round trip on an SOS's path
(an alert sent with `match: null`): for a session bound to an engine, a key
checked less than `RECHECK_S` ago is taken as still true, so an import or a
removal is seen within `RECHECK_S` (a session bound to a connection, whose
transaction may hold its own changes, checks every time).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from chumphae.map.layers import MapLayers
from chumphae.map.match import Matcher
from chumphae.map.store import load_layers
from chumphae.models import MapFeature
from chumphae.values import Place

RECHECK_S = 5.0  # a map key checked this recently is not read again (sessions bound to an engine)
_lock = threading.Lock()
_cache: dict[str, tuple[tuple[Any, ...], Matcher | None]] = {}
_checked: weakref.WeakKeyDictionary[Engine, tuple[float, Matcher | None]] = weakref.WeakKeyDictionary()


def _slot(session: Session) -> str:
    bind = session.get_bind()
    url = bind.engine.url if isinstance(bind, Connection) else bind.url
    return f"{url}#{id(bind)}"


def fingerprint(session: Session) -> tuple[Any, ...]:
    """(slot, count, highest id, newest import time): for ETags and Last-Modified of the map routes."""
    t = MapFeature.__table__  # type: ignore[attr-defined]
    row = session.connection().execute(select(func.count(), func.max(t.c.id), func.max(t.c.imported_at))).one()
    return (_slot(session), int(row[0]), row[1], row[2])


def cache_key(session: Session) -> tuple[Any, ...]:
    """(slot, count, highest id): changes whenever features are imported or removed (rows are never
    edited in place). Both answered from indexes, unlike `max(imported_at)`, which reads every
    geometry row: about 1 ms instead of 4 ms on the Chumphae map, paid on the ingest path of every
    position a gateway sent without a place."""
    t = MapFeature.__table__  # type: ignore[attr-defined]
    row = session.connection().execute(select(func.count(), func.max(t.c.id))).one()
    return (_slot(session), int(row[0]), row[1])


def current_matcher(session: Session) -> Matcher | None:
    """A Matcher over the stored map, or None when no map is loaded (at most `RECHECK_S` old)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else None
    if engine is not None:
        with _lock:
            seen = _checked.get(engine)
        if seen is not None and time.monotonic() - seen[0] < RECHECK_S:
            return seen[1]
    checked_at = time.monotonic()
    matcher = _matcher_for(session, cache_key(session))
    if engine is not None:
        with _lock:
            _checked[engine] = (checked_at, matcher)
    return matcher


def _matcher_for(session: Session, key: tuple[Any, ...]) -> Matcher | None:
    slot = key[0]
    with _lock:
        hit = _cache.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
    matcher = Matcher(load_layers(session)) if key[1] else None
    with _lock:
        _cache[slot] = (key, matcher)
    return matcher


def current_layers(session: Session) -> MapLayers | None:
    matcher = current_matcher(session)
    return matcher.layers if matcher is not None else None


def place_at(session: Session, lon: float, lat: float) -> Place | None:
    """Where a point is on the stored map, in Thai and English (None without a map)."""
    matcher = current_matcher(session)
    return matcher.place(lon, lat) if matcher is not None else None
