"""The fast path of `envelope.parse` (msgspec) for positions and readings agrees with the pydantic models.

For bodies near the limits (each field valid, missing, null, of another JSON
type, just inside or just outside its range, times in and out of the window
and in other formats), the fast path either declines (None: the models
decide) or returns exactly the body the models build. So a frame is accepted
or refused, and worded, as before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from chumphae.ingest import envelope
from chumphae.ingest.envelope import Message, PositionBody, ReadingBody, Rejection, parse

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PROPERTY = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OTHER = st.none() | st.booleans() | st.sampled_from(["", "x", "1", "1.5", "true"]) | st.lists(st.integers(-5, 5), max_size=1)


def num(lo: float, hi: float) -> st.SearchStrategy[Any]:
    edges = [lo, hi, lo - 1, hi + 1, lo - 1e-9, hi + 1e-9, 0, 0.5]
    return (st.sampled_from(edges) | st.integers(int(lo) - 2, int(hi) + 2)
            | st.floats(lo - 10, hi + 10, allow_nan=False) | OTHER)


def text(most: int) -> st.SearchStrategy[Any]:
    return st.text(max_size=most + 2) | st.sampled_from(["", "a" * most, "a" * (most + 1), "ก" * most]) | OTHER


def times() -> st.SearchStrategy[Any]:
    offsets = st.sampled_from([timedelta(0), timedelta(minutes=9), timedelta(minutes=11), -timedelta(days=29),
                               -timedelta(days=31), timedelta(microseconds=123)])
    zones = st.sampled_from(["Z", "+00:00", "+07:00", "-05:30", "", "z", "+0700", "+07"])
    fmt = st.tuples(offsets, zones, st.sampled_from(["T", " ", "t"]), st.sampled_from(["", ".1", ".123456", ".1234567"]))

    def render(v: tuple[timedelta, str, str, str]) -> str:
        off, zone, sep, frac = v
        t = NOW + off
        if zone.startswith(("+07", "+0700")):
            t = t + timedelta(hours=7)
        elif zone == "-05:30":
            t = t - timedelta(hours=5, minutes=30)
        return t.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + zone

    return fmt.map(render) | st.sampled_from(["2026-12-01", "2026-12-01T24:00:00Z", "2026-02-30T10:00:00Z",
                                              "2026-12-01T10:00:60Z", "0001-01-01T00:00:00+01:00"]) | OTHER


MISSING = object()


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.just(MISSING) | st.none() | strategy


def body(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({k: optional(v) for k, v in fields.items()}).map(
        lambda d: {k: v for k, v in d.items() if v is not MISSING})


PLACE = body(parcel_code=text(32), building_code=text(40), landmark=text(200), description_th=text(500),
             description_en=text(500), extra=text(3))
MATCH = body(status=text(16), zone_version=num(0, 2**31 - 1), distance_to_boundary_m=num(-1e6, 1e6),
             distance_to_route_m=num(-1e6, 1e6), place=PLACE | OTHER)
POSITION_FIELDS = dict(
    address=text(17), patient_id=num(1, 2**31 - 1), t=times(), lat=num(-90, 90), lon=num(-180, 180),
    uncertainty_m=num(0, 100_000), source=st.sampled_from(["ble", "gps", "search", "BLE"]) | OTHER,
    receivers=num(0, 10_000), in_coverage=st.booleans() | OTHER, match=MATCH | OTHER, other=OTHER)
READING_FIELDS = dict(
    address=text(17), patient_id=num(1, 2**31 - 1), kind=text(32), t=times(), rssi=num(-127, 20),
    receiver=text(64), seq=num(0, 2**31 - 1), battery_pct=num(0, 100), battery_mv=num(0, 10_000),
    sos=st.booleans() | OTHER, fall_flag=st.booleans() | OTHER, worn=st.booleans() | OTHER,
    charging=st.booleans() | OTHER, steps=num(0, 2**31 - 1), authenticated=st.booleans() | OTHER)
POSITION = body(**POSITION_FIELDS)
READING = body(**READING_FIELDS)


def _plain(value: Any) -> Any:
    """A pydantic model or msgspec struct as nested dicts of its fields."""
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, msgspec.Struct):
        return {k: _plain(getattr(value, k)) for k in value.__struct_fields__}
    return value


def _agrees(model: Any, kind: str, raw: dict[str, Any]) -> bool:
    text = orjson.dumps({"id": "m-1", "type": kind, "body": raw}).decode()
    doc = orjson.loads(text)["body"]  # as the parser sees it
    got = envelope.fast_body(kind, text, NOW)
    try:
        want = model.model_validate(doc, context={"now": NOW})
    except ValidationError:
        assert got is None, f"fast path accepted what the model refuses: {raw}"
        return False
    if got is not None:
        assert _plain(got) == _plain(want)
        assert {k: type(v) for k, v in _plain(got).items()} == {k: type(v) for k, v in _plain(want).items()}
        return True
    return False


@PROPERTY
@given(raw=POSITION)
def test_fast_positions_agree_with_the_model(raw: dict[str, Any]) -> None:
    _agrees(PositionBody, "position", raw)


@PROPERTY
@given(raw=READING)
def test_fast_readings_agree_with_the_model(raw: dict[str, Any]) -> None:
    _agrees(ReadingBody, "reading", raw)


GOOD_POSITION = {"address": "C0:1D:00:00:00:01", "patient_id": 7, "t": "2026-12-01T11:59:00.250000+07:00",
                 "lat": 16.5, "lon": 102, "uncertainty_m": 18.5, "source": "gps", "receivers": 3,
                 "in_coverage": False, "match": {"status": "inside", "zone_version": 2,
                                                 "distance_to_boundary_m": -20, "place": {
                                                     "parcel_code": "03I002", "description_th": "บ้าน"}}}


GOOD_READING = {"address": "C0:1D:00:00:00:01", "patient_id": 7, "kind": "band", "t": "2026-12-01T11:58:00Z",
                "rssi": -70, "receiver": "rx-1", "seq": 4, "battery_pct": 80.5, "battery_mv": 3000, "sos": False,
                "fall_flag": False, "worn": True, "charging": False, "steps": 10, "authenticated": True}


@PROPERTY
@given(data=st.data(), field=st.sampled_from(sorted(POSITION_FIELDS)), drop=st.booleans())
def test_one_field_off_a_good_position(data: st.DataObject, field: str, drop: bool) -> None:
    raw = dict(GOOD_POSITION)
    if drop:
        raw.pop(field, None)
    else:
        raw[field] = data.draw(POSITION_FIELDS[field])
    _agrees(PositionBody, "position", raw)


@PROPERTY
@given(data=st.data(), field=st.sampled_from(sorted(READING_FIELDS)), drop=st.booleans())
def test_one_field_off_a_good_reading(data: st.DataObject, field: str, drop: bool) -> None:
    raw = dict(GOOD_READING)
    if drop:
        raw.pop(field, None)
    else:
        raw[field] = data.draw(READING_FIELDS[field])
    _agrees(ReadingBody, "reading", raw)


def test_a_plain_position_takes_the_fast_path_and_matches_the_model() -> None:
    raw = {**GOOD_POSITION, "t": (NOW - timedelta(minutes=1)).isoformat()}
    assert _agrees(PositionBody, "position", raw)
    assert _agrees(ReadingBody, "reading", GOOD_READING)
    assert _agrees(ReadingBody, "reading", {"address": "C0:1D:00:00:00:01", "t": "2026-12-01T11:58:00Z"})


@pytest.mark.parametrize(("field", "value", "words"), [
    ("lat", 91, "body.lat: Input should be less than or equal to 90"),
    ("t", "2026-11-01T00:00:00Z", "body.t: Value error, time outside the accepted window"),
    ("source", "wifi", "body.source: Input should be 'ble', 'gps' or 'search'"),
    ("address", "", "body.address: String should have at least 1 character"),
])
def test_refusals_are_worded_by_the_model(field: str, value: Any, words: str) -> None:
    raw = {**GOOD_POSITION, field: value}
    frame = orjson.dumps({"id": "m-1", "type": "position", "t": "2026-12-01T11:59:00Z", "body": raw}).decode()
    got = parse(frame, now=NOW)
    assert isinstance(got, Rejection) and got.code == "bad_body" and got.id == "m-1"
    assert got.message.startswith(words)
    ok = parse(orjson.dumps({"id": "m-2", "type": "position", "body": GOOD_POSITION}).decode(), now=NOW)
    assert isinstance(ok, Message) and ok.body.lat == 16.5 and ok.body.t == NOW - timedelta(minutes=1, hours=7) \
        + timedelta(milliseconds=250)
