"""The tax-map layers around a point or in a box, as GeoJSON, with ETag / If-Modified-Since.

Map data is the heaviest thing the app downloads and it changes only when a
municipality re-imports its tax map, so the ETag comes from a cheap
fingerprint of the stored map plus the question asked: a phone that already
has the answer gets 304 without a single geometry being read.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from chumphae.api.deps import CurrentUser, SessionDep
from chumphae.api.problems import Problem, invalid
from chumphae.api.schemas import AsciiDecimal, AsciiInt
from chumphae.map.geojson import BBoxError, features_geojson, parse_bbox
from chumphae.map.importer import LAYERS
from chumphae.map.shared import fingerprint
from chumphae.timeutil import as_utc

router = APIRouter(prefix="/api/v1/map", tags=["mobile app"])

M_PER_DEG_LAT = 110_574.0
MAX_RADIUS_M = 3000.0
NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Not modified: the copy named by If-None-Match / If-Modified-Since is current."}}


def http_date(t: datetime) -> str:
    return format_datetime(as_utc(t).replace(microsecond=0), usegmt=True)


def not_modified(request: Request, etag: str, last_modified: datetime | None) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since when both are sent."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or etag in tags
    ims = request.headers.get("if-modified-since")
    if ims and last_modified is not None:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return as_utc(last_modified).replace(microsecond=0) <= since
    return False


def cached_json(request: Request, doc_or_none: Any, etag: str, last_modified: datetime | None) -> Response:
    """200 with validators, or 304 when the client's copy is current (`doc_or_none` may be a callable)."""
    headers = {"ETag": etag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if last_modified is not None:
        headers["Last-Modified"] = http_date(last_modified)
    if not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=headers)
    doc = doc_or_none() if callable(doc_or_none) else doc_or_none
    return JSONResponse(doc, headers=headers, media_type="application/geo+json")


def bbox_around(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    dlat = radius_m / M_PER_DEG_LAT
    dlon = radius_m / (M_PER_DEG_LAT * max(0.01, math.cos(math.radians(lat))))
    return (max(-180.0, lon - dlon), max(-90.0, lat - dlat),  # a box that stays on the globe at the poles and
            min(180.0, lon + dlon), min(90.0, lat + dlat))     # the antimeridian


@router.get("/{layer}", responses={**NOT_MODIFIED, 200: {"content": {"application/geo+json": {"example": {
    "type": "FeatureCollection", "layer": "landmarks", "bbox": [102.09, 16.54, 102.11, 16.55], "limit": 1000,
    "truncated": False, "features": [{"type": "Feature", "id": "LM-001", "properties": {
        "code": "LM-001", "name_th": "วัดศรีชมภู", "name_en": "Wat Si Chomphu", "kind": "temple"},
        "geometry": {"type": "Point", "coordinates": [102.0991, 16.5446]}}]}}}}})
def map_layer(
    layer: str, request: Request, session: SessionDep, user: CurrentUser,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS 84)")] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90, description="Centre, with lon and radius_m"), AsciiDecimal] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180), AsciiDecimal] = None,
    radius_m: Annotated[float, Query(gt=0, le=MAX_RADIUS_M), AsciiDecimal] = 300.0,
    limit: Annotated[int, Query(ge=1, le=5000), AsciiInt] = 1000,
) -> Response:
    """One layer (parcels, buildings, routes, landmarks) in `bbox`, or within `radius_m` of lat/lon; clipped, capped."""
    if layer not in LAYERS:
        raise Problem(404, "not_found", f"layers: {', '.join(LAYERS)}")
    if bbox is None and (lat is None or lon is None):
        raise invalid("give bbox, or lat and lon (and radius_m)", "query", "bbox")
    try:
        box = parse_bbox(bbox) if bbox is not None else bbox_around(lat, lon, radius_m)  # type: ignore[arg-type]
    except BBoxError as exc:
        raise invalid(str(exc), "query", "bbox" if bbox is not None else "radius_m") from None
    fp = fingerprint(session)
    key = repr((fp[1:], layer, [round(v, 7) for v in box], limit))
    etag = f'"m{hashlib.sha256(key.encode()).hexdigest()[:24]}"'
    last = fp[3] if isinstance(fp[3], datetime) else None
    return cached_json(request, lambda: features_geojson(session, layer, box, limit), etag, last)
