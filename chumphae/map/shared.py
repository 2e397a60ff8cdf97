"""One Matcher per backend process, built from the map in the database and rebuilt when it changes.

The backend matches positions itself whenever a gateway did not (a gateway
running on bare zone polygons has no parcels or landmarks), so every alert
says where the patient was last seen in words.
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import func
from sqlmodel import Session, select

from chumphae.map.match import Matcher
from chumphae.map.store import load_layers
from chumphae.models import MapFeature
from chumphae.values import Place

RECHECK_S = 60.0  # how often the map's version is compared (a map import is rare)

_lock = threading.Lock()
_state: dict[str, object] = {"key": None, "matcher": None, "checked": 0.0}


def map_key(session: Session) -> tuple[int, object]:
    """Changes whenever features are imported or removed."""
    count, newest = session.exec(select(func.count(MapFeature.id), func.max(MapFeature.imported_at))).one()  # type: ignore[call-overload, arg-type]
    return int(count), newest


def matcher_for(session: Session) -> Matcher | None:
    """The process's matcher for the current map (None when no map is loaded)."""
    now = time.monotonic()
    with _lock:
        if _state["matcher"] is not None and now - float(_state["checked"]) < RECHECK_S:  # type: ignore[arg-type]
            return _state["matcher"]  # type: ignore[return-value]
        key = map_key(session)
        if key != _state["key"]:
            _state["matcher"] = Matcher(load_layers(session)) if key[0] else None
            _state["key"] = key
        _state["checked"] = now
        return _state["matcher"]  # type: ignore[return-value]


def place_at(session: Session, lon: float, lat: float) -> Place | None:
    matcher = matcher_for(session)
    return matcher.place(lon, lat) if matcher is not None else None


def forget() -> None:
    """Drop the cached matcher (tests, and after an import in this process)."""
    with _lock:
        _state.update(key=None, matcher=None, checked=0.0)
