"""Map layers as GeoJSON for the caregiver page and the volunteers' app: one bbox at a time.

Never a full-table dump: a bbox is required, features are clipped to it and
capped; `truncated` tells the client to zoom in. Works from the database
(bbox columns, no spatial extension needed) or from an in-memory layer set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry
from sqlalchemy import select
from sqlmodel import Session

from chumphae.map.importer import LAYERS
from chumphae.map.layers import MapLayers
from chumphae.models import MapFeature
from chumphae.numtext import ascii_decimal

DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000
PRECISION_DEG = 1e-7  # ~1 cm: enough for a map, a third of the bytes of full doubles


class BBoxError(ValueError):
    """A bounding box that is not minlon,minlat,maxlon,maxlat in WGS 84."""


def parse_bbox(text: str | tuple[float, float, float, float] | list[float]) -> tuple[float, float, float, float]:
    """"minlon,minlat,maxlon,maxlat" (or a 4-sequence) → a checked WGS 84 bbox."""
    try:
        parts = [ascii_decimal(v) if isinstance(v, str) else float(v)
                 for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise BBoxError("bbox must be four numbers: minlon,minlat,maxlon,maxlat") from None
    if len(parts) != 4 or not all(np.isfinite(parts)):
        raise BBoxError("bbox must be four numbers: minlon,minlat,maxlon,maxlat")
    x0, y0, x1, y1 = parts
    if not (-180 <= x0 < x1 <= 180 and -90 <= y0 < y1 <= 90):
        raise BBoxError("bbox must have minlon < maxlon and minlat < maxlat, in degrees")
    return x0, y0, x1, y1


def _feature(code: str | None, name_th: str | None, name_en: str | None, kind: str | None,
             props: dict[str, Any], geom: BaseGeometry) -> dict[str, Any]:
    return {"type": "Feature", "id": code,
            "properties": {"code": code, "name_th": name_th, "name_en": name_en, "kind": kind, **props},
            "geometry": mapping(shapely.set_precision(geom, PRECISION_DEG))}


def features_geojson(source: Session | MapLayers, layer: str, bbox: Any,
                     limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """A FeatureCollection of `layer` clipped to `bbox` (WGS 84), at most `limit` (≤ 5000) features."""
    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}: use one of {', '.join(LAYERS)}")
    x0, y0, x1, y1 = parse_bbox(bbox)
    limit = max(1, min(int(limit), MAX_LIMIT))
    rows, seen = _from_layers(source, layer, (x0, y0, x1, y1), limit + 1) if isinstance(source, MapLayers) \
        else _from_db(source, layer, (x0, y0, x1, y1), limit + 1)
    truncated = seen > limit
    features = []
    for code, th, en, kind, props, geom in rows[:limit]:
        clipped = geom if geom.geom_type == "Point" else shapely.clip_by_rect(geom, x0, y0, x1, y1)
        if clipped.is_empty:
            continue
        features.append(_feature(code, th, en, kind, props, clipped))
    return {"type": "FeatureCollection", "layer": layer, "bbox": [x0, y0, x1, y1],
            "limit": limit, "truncated": truncated, "features": features}


Row = tuple[str | None, str | None, str | None, str | None, dict[str, Any], BaseGeometry]


def _from_db(session: Session, layer: str, bbox: tuple[float, float, float, float], n: int) -> tuple[list[Row], int]:
    """Candidates by the stored bbox columns (indexed), then an exact test; also the candidate count."""
    t = MapFeature.__table__  # type: ignore[attr-defined]
    x0, y0, x1, y1 = bbox
    stmt = (select(t.c.code, t.c.name_th, t.c.name_en, t.c.kind, t.c.props, t.c.geom_wkb)
            .where(t.c.layer == layer, t.c.minx <= x1, t.c.maxx >= x0, t.c.miny <= y1, t.c.maxy >= y0)
            .order_by(t.c.id).limit(n))
    out: list[Row] = []
    found = session.connection().execute(stmt).all()
    window = shapely.box(x0, y0, x1, y1)
    for code, th, en, kind, props, wkb in found:
        geom = shapely.from_wkb(wkb)
        if geom.intersects(window):  # overlapping boxes are not yet a hit
            out.append((code, th, en, kind, dict(props or {}), geom))
    return out, len(found)


def _from_layers(layers: MapLayers, layer: str, bbox: tuple[float, float, float, float],
                 n: int) -> tuple[list[Row], int]:
    """Candidates from the layer's STRtree (window taken to metres), then an exact test in WGS 84."""
    L = layers.layer(layer)
    if not len(L):
        return [], 0
    window = shapely.box(*bbox)
    # A generous metric window (densified edges, 1 m grown) so no candidate is lost to the projection.
    metric_window = layers.metric.to_metric(shapely.segmentize(window, 0.0005)).buffer(1.0)
    cand = np.sort(L.tree.query(metric_window))
    hits = cand[shapely.intersects(L.wgs84[cand], window)][:n]
    return [(L.codes[i], L.names_th[i], L.names_en[i], L.kinds[i], dict(L.props[i]), L.wgs84[i])
            for i in hits], len(hits)
