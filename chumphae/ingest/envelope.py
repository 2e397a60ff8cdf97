"""Parsing gateway frames (docs/gateway-protocol.md §3): envelope, then a typed body.

Pure: text in, a `Message` or a `Rejection` out. A rejection carries the
protocol's error code (`bad_json`, `bad_envelope`, `unknown_type`,
`bad_body`) and a short English reason for the gateway's log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chumphae.timeutil import as_utc
from chumphae.values import AlertType


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")  # gateways may add fields


def _aware(v: datetime) -> datetime:
    return as_utc(v)


class PlaceBody(_Body):
    parcel_code: str | None = None
    building_code: str | None = None
    landmark: str | None = None
    description_th: str | None = None
    description_en: str | None = None


class MatchBody(_Body):
    status: str | None = None
    zone_version: int | None = None
    distance_to_boundary_m: float | None = None
    distance_to_route_m: float | None = None
    place: PlaceBody | None = None


class HelloBody(_Body):
    gateway_version: str | None = None
    site_id: str | None = None
    config_etag: str | None = None
    queue_depth: int | None = None
    simulated: bool = False


class PositionBody(_Body):
    address: str = Field(min_length=1, max_length=17)
    patient_id: int | None = None
    t: datetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    uncertainty_m: float = Field(ge=0)
    source: Literal["ble", "gps", "search"] = "ble"
    receivers: int = 0
    in_coverage: bool = True
    match: MatchBody | None = None

    _t = field_validator("t")(_aware)


class AlertBody(_Body):
    type: AlertType
    severity: str | None = None  # informative: the server's table decides
    address: str | None = Field(default=None, max_length=17)
    patient_id: int | None = None
    t: datetime
    confidence: float = Field(default=1.0, ge=0, le=1)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    uncertainty_m: float | None = Field(default=None, ge=0)
    match: MatchBody | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    _t = field_validator("t")(_aware)


class ReadingBody(_Body):
    address: str = Field(min_length=1, max_length=17)
    patient_id: int | None = None
    kind: str | None = None
    t: datetime
    rssi: int | None = None
    receiver: str | None = None
    seq: int | None = None
    battery_pct: float | None = Field(default=None, ge=0, le=100)
    battery_mv: int | None = None
    sos: bool = False
    fall_flag: bool = False
    worn: bool | None = None
    charging: bool | None = None
    steps: int | None = None
    authenticated: bool = False

    _t = field_validator("t")(_aware)


class HeartbeatBody(_Body):
    model_config = ConfigDict(extra="allow")  # kept whole as the gateway's health
    uptime_s: float | None = None
    queue_depth: int | None = None
    rejected: int | None = None


BODIES: dict[str, type[_Body]] = {
    "hello": HelloBody, "position": PositionBody, "alert": AlertBody,
    "reading": ReadingBody, "heartbeat": HeartbeatBody,
}


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    type: str
    t: datetime | None
    seq: int | None
    body: Any  # one of the *Body models


@dataclass(frozen=True, slots=True)
class Rejection:
    id: str | None
    code: str
    message: str


def parse(text: str | bytes) -> Message | Rejection:
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        return Rejection(None, "bad_json", "frame is not JSON")
    if not isinstance(doc, dict):
        return Rejection(None, "bad_envelope", "frame is not a JSON object")
    mid = doc.get("id")
    if not isinstance(mid, str) or not 0 < len(mid) <= 64:
        return Rejection(None, "bad_envelope", "id missing or not a string of 1-64 characters")
    kind = doc.get("type")
    if not isinstance(kind, str) or not isinstance(doc.get("body"), dict):
        return Rejection(mid, "bad_envelope", "type or body missing")
    model = BODIES.get(kind)
    if model is None:
        return Rejection(mid, "unknown_type", f"unknown type {kind[:32]!r}")
    try:
        body = model.model_validate(doc["body"])
        t = as_utc(datetime.fromisoformat(doc["t"])) if isinstance(doc.get("t"), str) else None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return Rejection(mid, "bad_body", f"body.{where}: {first.get('msg', 'invalid')}")
    except ValueError:
        return Rejection(mid, "bad_envelope", "t is not an ISO 8601 time")
    seq = doc.get("seq")
    return Message(id=mid, type=kind, t=t, seq=seq if isinstance(seq, int) else None, body=body)
