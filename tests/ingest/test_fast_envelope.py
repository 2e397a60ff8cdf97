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


# --------------------------------------------------------------------------- one pass for a whole frame

GATEWAY_EXTRA_POSITION = body(region_cell_m=num(0, 50), other=OTHER)
GATEWAY_EXTRA_MATCH = body(schedule=text(16), clearance_m=num(0, 500), outside_share=num(0, 1), outside_p=num(0, 1))
SEQ = st.sampled_from([0, 1, 2**63 - 1, 2**63, -1, 1.0, 1.5, True]) | st.integers(0, 2**64 - 1) | OTHER


def _frame(kind: str, raw: dict[str, Any], t: Any, seq: Any, *, mid: str = "m-1") -> str:
    env: dict[str, Any] = {"id": mid, "type": kind}
    if t is not MISSING:
        env["t"] = t
    if seq is not MISSING:
        env["seq"] = seq
    env["body"] = raw
    return orjson.dumps(env).decode()


def _same_as_slow(text: str) -> bool:
    """`parse` (which tries the one-pass decode first) gives what the orjson + models path gives."""
    got = parse(text, now=NOW)
    want = parse(text, now=NOW, doc=orjson.loads(text))  # a decoded frame never takes the one-pass decode
    fast = envelope.fast_message(text, NOW)
    if fast is None:
        assert type(got) is type(want)
        return False
    assert isinstance(want, Message), f"one pass accepted what the parser refuses: {text}"
    assert (fast.id, fast.type, fast.t, fast.seq, fast.raw) == (want.id, want.type, want.t, want.seq, want.raw)
    names = type(want.body).__struct_fields__ if isinstance(want.body, msgspec.Struct) else None
    plain_fast = {k: v for k, v in _plain(fast.body).items() if names is None or k in names}
    if isinstance(plain_fast.get("match"), dict):
        plain_fast["match"] = {k: v for k, v in plain_fast["match"].items()
                               if k in envelope.FastMatch.__struct_fields__}
    assert plain_fast == _plain(want.body)
    assert got == fast
    return True


@PROPERTY
@given(raw=POSITION, extra=GATEWAY_EXTRA_POSITION, mextra=GATEWAY_EXTRA_MATCH, t=optional(times()), seq=optional(SEQ))
def test_one_pass_positions_agree_with_the_parser(raw: dict[str, Any], extra: dict[str, Any],
                                                 mextra: dict[str, Any], t: Any, seq: Any) -> None:
    raw = {**raw, **extra}
    if isinstance(raw.get("match"), dict):
        raw["match"] = {**raw["match"], **mextra}
    _same_as_slow(_frame("position", raw, t, seq))


@PROPERTY
@given(raw=READING, t=optional(times()), seq=optional(SEQ))
def test_one_pass_readings_agree_with_the_parser(raw: dict[str, Any], t: Any, seq: Any) -> None:
    _same_as_slow(_frame("reading", raw, t, seq))


@PROPERTY
@given(data=st.data(), field=st.sampled_from(sorted(POSITION_FIELDS)), t=optional(times()), seq=optional(SEQ))
def test_one_pass_one_field_off_a_good_position(data: st.DataObject, field: str, t: Any, seq: Any) -> None:
    raw = {**GOOD_POSITION, field: data.draw(POSITION_FIELDS[field])}
    _same_as_slow(_frame("position", raw, t, seq))


def test_a_gateways_position_takes_the_one_pass_decode() -> None:
    raw = {**GOOD_POSITION, "region_cell_m": 10.0,
           "match": {**GOOD_POSITION["match"], "schedule": "day", "clearance_m": None, "outside_share": 0.0,
                     "outside_p": 0.0, "distance_to_route_m": 4.0}}
    text = _frame("position", raw, "2026-12-01T11:59:01.5+00:00", 7)
    assert envelope.route(text) == "position"
    assert _same_as_slow(text)
    assert _same_as_slow(_frame("reading", GOOD_READING, "2026-12-01T11:58:00Z", 3))


@pytest.mark.parametrize("text", [
    '{"id":"m-1","type":"position","t":"2026-12-01T11:59:00Z","seq":1,"body":%s,"more":1}',  # unknown field
    '{"id":"m-1","type":"position","seq":1,"body":%s,"x":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}',  # too deep
    '{"id":"m-1","type":"position","seq":1,"body":%s,"type":"alert"}',  # two types: the last one counts
    '{"id":"m\\u0000","type":"position","body":%s}',  # NUL
    '{"id":"m-1","type":"position","body":%s,"seq":1e999}',  # not a number orjson takes
])
def test_frames_the_one_pass_decode_leaves_to_the_parser(text: str) -> None:
    text = text % orjson.dumps(GOOD_POSITION).decode()
    assert envelope.fast_message(text, NOW) is None
    got, want = parse(text, now=NOW), parse(text, now=NOW, doc=None)
    assert type(got) is type(want)
    if isinstance(got, Rejection):
        assert isinstance(want, Rejection) and (got.id, got.code, got.message) == (want.id, want.code, want.message)


def test_route_reads_the_head_as_a_gateway_writes_it() -> None:
    assert envelope.route('{"id":"a","type":"position","body":{}}') == "position"
    assert envelope.route('{"id":"a","type":"alert","body":{}}') == "alert"
    assert envelope.route('{"type":"position","id":"a","body":{}}') is None  # another order: decoded to route
    assert envelope.route('{"id":"a\\"b","type":"position"}') is None
    assert envelope.route(" " * 3) is None


@pytest.mark.parametrize("text, expected", [
    ('{"id": 5, "type": "position"' + " " * 10 + "[" * 80, None),  # a number: no id, not the next string
    ('{"id": null, "type": "sos", "body": ' + "[" * 80, None),
    ('{"id": true, "type": "sos"}', None),
    ('{"type": "sos", "id": "m-7", "body": ' + "[" * 80, "m-7"),  # a string id found wherever it is
    ('{"body": {"id": "inner"}, "id": "outer", "x": ' + "[" * 80, "outer"),
])
def test_scan_id_names_only_a_string_id(text: str, expected: str | None) -> None:
    assert envelope.scan_id(text) == expected
