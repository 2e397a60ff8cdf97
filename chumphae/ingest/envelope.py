"""Parsing gateway frames (docs/gateway-protocol.md §3): envelope, then a typed body.

Pure: text in, a `Message` or a `Rejection` out. A rejection carries the
protocol's error code (`too_large`, `bad_json`, `bad_envelope`,
`unknown_type`, `bad_body`) and a short English reason for the gateway's log.

Validation happens here, at the edge, so nothing that reaches the database
can break it (protocol §3.5): a frame of at most `MAX_FRAME_CHARS`, nested at
most `MAX_DEPTH` deep, no NUL character; finite floats in documented ranges;
integers that fit their columns; times within `PAST`…`FUTURE` around now.
The message id is read even from a frame too big or too deep to parse
(`scan_id`), so the gateway can drop what we refuse. Position and reading
bodies that are plainly valid are decoded by msgspec (`fast_body`); every
other body goes through the pydantic models, which also word every refusal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from chumphae.timeutil import as_utc, utcnow
from chumphae.values import AlertType

MAX_FRAME_CHARS = 65_536  # a position is ~600 characters
MAX_DEPTH = 16  # objects and arrays nested in one frame (a position has 4)
PAST = timedelta(days=30)  # older messages are refused (bad_body): the gateway drops them
FUTURE = timedelta(minutes=10)  # clocks drift; further ahead is a broken clock
SCAN_MAX_CHARS = 1 << 20  # how far `scan_id` looks for the id in a frame it could not parse

INT32 = 2**31 - 1  # integer columns (patient ids, zone versions, band sequence numbers)
INT64 = 2**63 - 1

Id32 = Annotated[int, Field(ge=1, le=INT32)]
Count = Annotated[int, Field(ge=0, le=INT64)]
Metres = Annotated[float, Field(ge=-1_000_000, le=1_000_000)]


def _utc(v: datetime) -> datetime:
    """`as_utc` (naive is UTC), a time that has no UTC instant refused as a validation error."""
    try:
        return as_utc(v)
    except (OverflowError, ValueError):  # year 1 with a positive offset, year 9999 with a negative one
        raise ValueError("time out of range") from None


def _in_window(v: datetime, info: ValidationInfo) -> datetime:
    """Aware UTC, within PAST…FUTURE of now (the parser's `now`, from the validation context)."""
    t = _utc(v)
    now = (info.context or {}).get("now") or utcnow()
    if not now - PAST <= t <= now + FUTURE:
        raise ValueError("time outside the accepted window (-30 days … +10 minutes around now)")
    return t


def _alert_window(v: datetime, info: ValidationInfo) -> datetime:
    """An alert's time: as `_in_window`, but a time further ahead than FUTURE is let through, for
    `AlertBody._clock_ahead` to take as now (a gateway whose clock jumped ahead still has a patient pressing SOS)."""
    try:
        return _in_window(v, info)
    except ValueError:
        t = _utc(v)
        now = (info.context or {}).get("now") or utcnow()
        if t > now + FUTURE:
            return t
        raise


class _Body(BaseModel):
    # Gateways may add fields; floats must be finite (1e999 and NaN are refused). Strict: a number is a JSON
    # number and a flag a JSON boolean (`true` is no patient id 1, `"16.5"` no latitude, `1` no `sos`), as the
    # fast path's msgspec structs take them; only times (ISO 8601 text) and the alert type are read from text.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, strict=True)


class PlaceBody(_Body):
    parcel_code: str | None = Field(default=None, max_length=32)
    building_code: str | None = Field(default=None, max_length=40)
    landmark: str | None = Field(default=None, max_length=200)
    description_th: str | None = Field(default=None, max_length=500)
    description_en: str | None = Field(default=None, max_length=500)


class MatchBody(_Body):
    status: str | None = Field(default=None, max_length=16)
    zone_version: int | None = Field(default=None, ge=0, le=INT32)
    distance_to_boundary_m: Metres | None = None
    distance_to_route_m: Metres | None = None
    place: PlaceBody | None = None  # null or without words: the backend names the place


class HelloBody(_Body):
    gateway_version: str | None = Field(default=None, max_length=64)
    site_id: str | None = Field(default=None, max_length=64)
    config_etag: str | None = Field(default=None, max_length=128)
    queue_depth: Count | None = None
    simulated: bool = False


class PositionBody(_Body):
    address: str = Field(min_length=1, max_length=17)
    patient_id: Id32 | None = None
    t: datetime = Field(strict=False)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    uncertainty_m: float = Field(ge=0, le=100_000)
    source: Literal["ble", "gps", "search"] = "ble"
    receivers: int = Field(default=0, ge=0, le=10_000)
    in_coverage: bool = True
    match: MatchBody | None = None

    _t = field_validator("t")(_in_window)


class AlertBody(_Body):
    type: AlertType = Field(strict=False)
    severity: str | None = Field(default=None, max_length=16)  # informative: the server's table decides
    address: str | None = Field(default=None, min_length=1, max_length=17)
    patient_id: Id32 | None = None
    t: datetime = Field(strict=False)
    confidence: float = Field(default=1.0, ge=0, le=1)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    uncertainty_m: float | None = Field(default=None, ge=0, le=100_000)
    match: MatchBody | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    _t = field_validator("t")(_alert_window)

    @model_validator(mode="after")
    def _clock_ahead(self, info: ValidationInfo) -> AlertBody:
        """A time more than FUTURE ahead is the gateway's clock, not the patient: the alert is stored at the
        backend's time, the gateway's kept in `details.gateway_t` (positions and readings are still refused)."""
        now = (info.context or {}).get("now") or utcnow()
        if self.t > now + FUTURE:
            self.details = {**self.details, "gateway_t": self.t.isoformat()}
            self.t = now
        return self


class ReadingBody(_Body):
    address: str = Field(min_length=1, max_length=17)
    patient_id: Id32 | None = None
    kind: str | None = Field(default=None, max_length=32)
    t: datetime = Field(strict=False)
    rssi: int | None = Field(default=None, ge=-127, le=20)
    receiver: str | None = Field(default=None, max_length=64)
    seq: int | None = Field(default=None, ge=0, le=INT32)  # informative, need not increase
    battery_pct: float | None = Field(default=None, ge=0, le=100)
    battery_mv: int | None = Field(default=None, ge=0, le=10_000)
    sos: bool = False
    fall_flag: bool = False
    worn: bool | None = None
    charging: bool | None = None
    steps: int | None = Field(default=None, ge=0, le=INT32)
    authenticated: bool = False

    _t = field_validator("t")(_in_window)


class HeartbeatBody(_Body):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, strict=True)  # kept whole as the gateway's health
    uptime_s: float | None = Field(default=None, ge=0)
    queue_depth: Count | None = None
    rejected: Count | None = None


BODIES: dict[str, type[_Body]] = {
    "hello": HelloBody, "position": PositionBody, "alert": AlertBody,
    "reading": ReadingBody, "heartbeat": HeartbeatBody,
}


class Message(msgspec.Struct, frozen=True, gc=False):
    """A frame validated, ready to store (a msgspec struct: made in C, ~0.2 µs against a frozen dataclass's 3).

    `gc=False` here and on the fast path's structs: they hold text, numbers, times and one another, never a
    cycle, so the garbage collector need not track them (the ingest makes several per frame)."""

    id: str
    type: str
    t: datetime | None
    seq: int | None
    body: Any  # one of the *Body models
    raw: str = ""  # the frame as received (for the dead-letter table if it cannot be stored)


@dataclass(frozen=True, slots=True)
class Rejection:
    id: str | None
    code: str
    message: str
    raw: str = ""


# A JSON string (with escapes) or one structural character: enough to walk a frame without parsing it.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:,]')
_LEADING_ID = re.compile(r'\s*\{\s*"id"\s*:\s*"([^"\\]{1,64})"')


def _valid_id(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


def scan_id(text: str) -> str | None:
    """The top-level `"id"` of a frame we will not parse (too big, too deep, bad numbers)."""
    m = _LEADING_ID.match(text)
    if m:
        return m.group(1)
    depth, last, is_id = 0, None, False
    for m in _TOKEN.finditer(text, 0, min(len(text), SCAN_MAX_CHARS)):
        tok = m.group()
        c = tok[0]
        if c == '"':
            if depth == 1:
                if is_id:
                    try:
                        return _valid_id(json.loads(tok))
                    except ValueError:
                        return None
                last = tok
            is_id = False
        elif c == ":":
            is_id = depth == 1 and last == '"id"'
            last = None
        elif c == "{" or c == "[":
            if depth == 0 and c == "[":
                return None  # not an object
            depth += 1
            is_id = False
        elif c == "}" or c == "]":
            depth -= 1
            if depth <= 0:
                return None
        else:  # a comma: whatever `"id"` held was no string (a number, true, false, null)
            last, is_id = None, False
    return None


def _depth(doc: object, limit: int) -> int:
    """Nesting depth of parsed JSON, walking no deeper than `limit` + 1."""
    deepest = 0
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        stack.extend((c, d + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def _reject(text: str, code: str, message: str, mid: str | None = None) -> Rejection:
    return Rejection(mid if mid is not None else scan_id(text), code, message, text)


def peek(text: str) -> tuple[str | None, Any]:
    """A frame's top-level `type` and decoded JSON, cheaply, to route it before full validation.

    (None, None) for a frame `parse` would refuse before decoding it (too long, NUL, not JSON).
    """
    if len(text) > MAX_FRAME_CHARS or "\\u0000" in text or "\x00" in text:
        return None, None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None, None
    kind = doc.get("type") if isinstance(doc, dict) else None
    return (kind if isinstance(kind, str) else None), doc


_UNDECODED: Any = object()


def parse(text: str | bytes, *, now: datetime | None = None, doc: Any = _UNDECODED, kind: str | None = None
          ) -> Message | Rejection:
    """One frame → a `Message` ready to store, or the `Rejection` to answer with.

    `doc`: the frame already decoded by `peek` (not decoded again). `kind`: what `route` said of this very
    text, when the caller asked it already (not asked again).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    now = now or utcnow()
    if doc is _UNDECODED or doc is None:
        fast = fast_message(text, now, kind)
        if fast is not None:
            return fast
    if len(text) > MAX_FRAME_CHARS:
        return _reject(text, "too_large", f"frame longer than {MAX_FRAME_CHARS} characters")
    if "\\u0000" in text or "\x00" in text:
        return _reject(text, "bad_body", "NUL character in a string")
    if doc is _UNDECODED or doc is None:
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:  # also: nested > 1024, infinite or NaN numbers
            return _reject(text, "bad_json", f"frame is not valid JSON ({str(exc).split(':')[0][:80]})")
    if not isinstance(doc, dict):
        return _reject(text, "bad_envelope", "frame is not a JSON object", None)
    mid = _valid_id(doc.get("id"))
    if mid is None:
        return _reject(text, "bad_envelope", "id missing or not a string of 1-64 characters", None)
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        return _reject(text, "bad_json", f"nested deeper than {MAX_DEPTH}", mid)
    kind = doc.get("type")
    if not isinstance(kind, str) or not isinstance(doc.get("body"), dict):
        return _reject(text, "bad_envelope", "type or body missing", mid)
    model = BODIES.get(kind)
    if model is None:
        return _reject(text, "unknown_type", f"unknown type {kind[:32]!r}", mid)
    body: Any = fast_body(kind, text, now) if kind in _FAST_DECODERS else None
    if body is None:  # not certainly valid: pydantic decides, and words the refusal
        try:
            body = model.model_validate(doc["body"], context={"now": now})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return _reject(text, "bad_body", f"body.{where}: {first.get('msg', 'invalid')}"[:200], mid)
    t = None
    if isinstance(doc.get("t"), str):
        try:
            t = as_utc(datetime.fromisoformat(doc["t"]))
        except (ValueError, OverflowError):
            return _reject(text, "bad_envelope", "t is not an ISO 8601 time within range", mid)
    seq = doc.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= INT64:
        seq = None  # informative only
    return Message(id=mid, type=kind, t=t, seq=seq, body=body, raw=text)


# ----------------------------------------------------------------------------- the fast path
# Positions and readings are most of the traffic. Their frames are decoded straight from the text by
# msgspec into the structs below: the same fields, types and limits as the models above, in C (about
# 2 µs a frame against 12 for pydantic over orjson's dict). A frame the structs take whose times are in the
# window is stored as decoded; any other (a field missing, of another type, out of range, a time in another
# format or outside the window) goes through the models above, which accept it or refuse it in their own
# words. So the fast path accepts nothing the models refuse (tests/ingest/test_fast_envelope.py), and every
# refusal is worded as before.

_Str16 = Annotated[str, msgspec.Meta(max_length=16)]
_Str32 = Annotated[str, msgspec.Meta(max_length=32)]
_Str40 = Annotated[str, msgspec.Meta(max_length=40)]
_Str64 = Annotated[str, msgspec.Meta(max_length=64)]
_Str200 = Annotated[str, msgspec.Meta(max_length=200)]
_Str500 = Annotated[str, msgspec.Meta(max_length=500)]
_Address = Annotated[str, msgspec.Meta(min_length=1, max_length=17)]
_Id32 = Annotated[int, msgspec.Meta(ge=1, le=INT32)]
_Metres = Annotated[float, msgspec.Meta(ge=-1_000_000, le=1_000_000)]


class FastPlace(msgspec.Struct, gc=False):
    parcel_code: _Str32 | None = None
    building_code: _Str40 | None = None
    landmark: _Str200 | None = None
    description_th: _Str500 | None = None
    description_en: _Str500 | None = None


class FastMatch(msgspec.Struct, gc=False):
    status: _Str16 | None = None
    zone_version: Annotated[int, msgspec.Meta(ge=0, le=INT32)] | None = None
    distance_to_boundary_m: _Metres | None = None
    distance_to_route_m: _Metres | None = None
    place: FastPlace | None = None


class FastPosition(msgspec.Struct, gc=False):
    """`PositionBody`'s fields and limits (the time's window is checked after decoding)."""

    address: _Address
    t: Any  # an RFC 3339 string on the wire, checked and made a UTC datetime by `fast_body`
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    uncertainty_m: Annotated[float, msgspec.Meta(ge=0, le=100_000)]
    patient_id: _Id32 | None = None
    source: Literal["ble", "gps", "search"] = "ble"
    receivers: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 0
    in_coverage: bool = True
    match: FastMatch | None = None


class FastReading(msgspec.Struct, gc=False):
    """`ReadingBody`'s fields and limits (the time's window is checked after decoding)."""

    address: _Address
    t: Any  # as in FastPosition
    patient_id: _Id32 | None = None
    kind: _Str32 | None = None
    rssi: Annotated[int, msgspec.Meta(ge=-127, le=20)] | None = None
    receiver: _Str64 | None = None
    seq: Annotated[int, msgspec.Meta(ge=0, le=INT32)] | None = None
    battery_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    battery_mv: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | None = None
    sos: bool = False
    fall_flag: bool = False
    worn: bool | None = None
    charging: bool | None = None
    steps: Annotated[int, msgspec.Meta(ge=0, le=INT32)] | None = None
    authenticated: bool = False


class _PositionFrame(msgspec.Struct, gc=False):
    body: FastPosition


class _ReadingFrame(msgspec.Struct, gc=False):
    body: FastReading


# Both parsers read these alike (msgspec rounds a seventh decimal of a second, pydantic cuts it: not here).
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)?")
_FAST_DECODERS: dict[str, Any] = {"position": msgspec.json.Decoder(_PositionFrame),
                                  "reading": msgspec.json.Decoder(_ReadingFrame)}


# ----------------------------------------------------------------------------- one pass for a whole frame
# A gateway writes `{"id":…,"type":…,"t":…,"seq":…,"body":{…}}` (gateway/queue.py `envelope`). Such a position
# or reading frame is decoded in one msgspec pass, envelope and body, without the dict orjson builds. These
# structs take only the fields a gateway sends (any other field: declined), so a frame they take is at most 4
# deep, and they decline what orjson would refuse (numbers out of range) or might read otherwise: a frame
# with any `\u` escape (NUL, surrogates) is declined. Declined: `parse` as before (orjson, then the models).
_Finite = Annotated[float, msgspec.Meta(ge=-1e300, le=1e300)]
_HEAD = re.compile(r'\{"id":"[^"\\]{1,64}","type":"([a-z_]{1,16})"')


class _GatewayPlace(FastPlace, forbid_unknown_fields=True):
    pass


class _GatewayMatch(FastMatch, forbid_unknown_fields=True):
    place: _GatewayPlace | None = None
    schedule: _Str16 | None = None  # the gateway's own details of its match (not stored)
    clearance_m: _Finite | None = None
    outside_share: _Finite | None = None
    outside_p: _Finite | None = None


class _GatewayPosition(FastPosition, forbid_unknown_fields=True):
    match: _GatewayMatch | None = None
    region_cell_m: _Finite | None = None  # not stored


class _GatewayReading(FastReading, forbid_unknown_fields=True):
    pass


class _Envelope(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    """The envelope fields every bulk message has; each kind adds its `type` and `body`."""
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    t: str | None = None
    seq: Annotated[int, msgspec.Meta(ge=0, le=INT64)] | None = None


class _PositionMessage(_Envelope, kw_only=True):
    type: Literal["position"]
    body: _GatewayPosition


class _ReadingMessage(_Envelope, kw_only=True):
    type: Literal["reading"]
    body: _GatewayReading


_MESSAGE_DECODERS: dict[str, Any] = {"position": msgspec.json.Decoder(_PositionMessage),
                                     "reading": msgspec.json.Decoder(_ReadingMessage)}
BULK_KINDS = frozenset({"position", "reading", "heartbeat", "hello"})


def route(text: str) -> str | None:
    """The type a frame names at its head, as a gateway writes it (None if it does not look so): only where
    to queue it. `parse` decides what it is (a frame naming two types is what its last one says)."""
    m = _HEAD.match(text)
    return m.group(1) if m else None


def fast_message(text: str, now: datetime, kind: str | None = None) -> Message | None:
    """A position or reading frame as a gateway writes it, decoded in one pass when plainly valid, else None."""
    decoder = _MESSAGE_DECODERS.get(kind if kind is not None else route(text) or "")
    if decoder is None or len(text) > MAX_FRAME_CHARS or "\\u" in text:
        return None
    try:
        frame = decoder.decode(text)
    except msgspec.DecodeError:  # also its ValidationError
        return None
    body = frame.body
    raw = body.t
    if type(raw) is not str or not _RFC3339.fullmatch(raw):
        return None
    try:
        bt = as_utc(datetime.fromisoformat(raw))
        t = None if frame.t is None else as_utc(datetime.fromisoformat(frame.t))
    except (OverflowError, ValueError):
        return None
    if not now - PAST <= bt <= now + FUTURE:
        return None
    body.t = bt
    return Message(id=frame.id, type=frame.type, t=t, seq=frame.seq, body=body, raw=text)


def fast_body(kind: str, text: str, now: datetime) -> FastPosition | FastReading | None:
    """The body of a position or reading frame if it is plainly valid, else None (the models decide)."""
    decoder = _FAST_DECODERS.get(kind)
    if decoder is None:
        return None
    try:
        body = decoder.decode(text).body
    except msgspec.DecodeError:  # also its ValidationError
        return None
    raw = body.t
    if type(raw) is not str or not _RFC3339.fullmatch(raw):  # another format: pydantic's parser decides
        return None
    try:
        t = as_utc(datetime.fromisoformat(raw))
    except (OverflowError, ValueError):
        return None
    if not now - PAST <= t <= now + FUTURE:
        return None
    body.t = t
    return body  # type: ignore[no-any-return]
