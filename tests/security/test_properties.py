"""Property tests (hypothesis): decoders, the gateway envelope parser and the feed's client messages never raise.

Every decoder of `gateway/decode/` takes arbitrary bytes through the registry
without raising (a crash there silences every patient at a site), and our
band frame round-trips through its encoder. `chumphae.ingest.envelope.parse`
always answers a Message or a Rejection. The feed's client-message parser
always answers a checked message or the error to send back.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chumphae.api.schemas import MAX_CURSOR, MAX_ID, NOTE_MAX, FeedAck, FeedPing, FeedResolve
from chumphae.feed.socket import ClientError, parse_client_message
from chumphae.ingest.envelope import Message, Rejection, parse
from chumphae.models import Outcome
from gateway.decode import (
    DecodeError,
    Decoders,
    bthome,
    chumphae_band,
    default_decoders,
    eddystone,
    ibeacon,
    kkm,
    moko,
    uuid16,
)
from gateway.decode.chumphae_band import BandState, ReplayGuard, decode_frame, encode
from tests.gateway.builders import advert

KEY = bytes(range(16))
ADDRESS = "C0:FF:EE:00:00:01"
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Where each format lives in an advert: (manufacturer id | service uuid, first byte or None).
WHERE: dict[str, tuple[str, int | str, int | None]] = {
    "chumphae": ("m", chumphae_band.COMPANY_ID, chumphae_band.VERSION),
    "ibeacon": ("m", ibeacon.APPLE, 0x02),
    "eddystone": ("s", eddystone.EDDYSTONE, 0x20),
    "kkm": ("s", uuid16(0xFEAA), 0x21),
    "moko": ("s", uuid16(0xFEAB), 0x60),
    "bthome": ("s", bthome.BTHOME, None),
}


def registry() -> Decoders:
    return default_decoders(keys=lambda _a: KEY, guard=ReplayGuard())


def _advert_for(fmt: str, payload: bytes) -> Any:
    where, ident, first = WHERE[fmt]
    if first is not None:
        payload = bytes([first]) + payload
    if where == "m":
        return advert(manufacturer_data={int(ident): payload})
    return advert(service_data={str(ident): payload})


@PROPERTY
@given(fmt=st.sampled_from(sorted(WHERE)), payload=st.binary(max_size=64))
def test_random_bytes_never_raise_through_the_registry(fmt: str, payload: bytes) -> None:
    reg = registry()
    reading = reg.decode(_advert_for(fmt, payload))
    stats = reg.stats
    assert reading is not None or stats.unknown + stats.failures >= 1


@PROPERTY
@given(manufacturer=st.dictionaries(st.integers(0, 0xFFFF), st.binary(max_size=40), max_size=3),
       service=st.dictionaries(st.sampled_from([str(w[1]) for w in WHERE.values() if w[0] == "s"]
                                               + [uuid16(0x180F)]), st.binary(max_size=40), max_size=3))
def test_arbitrary_adverts_never_raise(manufacturer: dict[int, bytes], service: dict[str, bytes]) -> None:
    registry().decode(advert(manufacturer_data=manufacturer, service_data=service))


@PROPERTY
@given(parser=st.sampled_from([eddystone.parse, ibeacon.parse, kkm.parse, moko.parse]), payload=st.binary(max_size=40))
def test_parsers_raise_only_decode_errors(parser: Any, payload: bytes) -> None:
    """Each format's own parser: a value, or a DecodeError/ValueError the registry counts as malformed."""
    try:
        parser(payload)
    except (DecodeError, ValueError, IndexError, KeyError, TypeError, struct.error):
        pass


@PROPERTY
@given(payload=st.binary(min_size=0, max_size=40))
def test_band_frame_random_bytes_fail_cleanly(payload: bytes) -> None:
    try:
        decode_frame(ADDRESS, KEY, payload)
    except DecodeError:
        pass  # malformed or not authentic: counted and dropped, never a crash


@PROPERTY
@given(seq=st.integers(0, 2**32 - 1), sos=st.booleans(), fall=st.booleans(), worn=st.booleans(),
       charging=st.booleans(), low=st.booleans(), battery=st.integers(0, 100), steps=st.integers(0, 0xFFFF))
def test_band_frame_round_trips(seq: int, sos: bool, fall: bool, worn: bool, charging: bool, low: bool,
                                battery: int, steps: int) -> None:
    state = BandState(seq=seq, sos=sos, fall=fall, worn=worn, charging=charging, low_battery=low,
                      battery_pct=battery, steps=steps)
    back = decode_frame(ADDRESS, KEY, encode(ADDRESS, KEY, state))
    assert back == state


@PROPERTY
@given(seq=st.integers(0, 2**32 - 1), flip=st.integers(0, chumphae_band.FRAME_LEN - 1), bit=st.integers(0, 7))
def test_a_flipped_bit_never_authenticates(seq: int, flip: int, bit: int) -> None:
    frame = bytearray(encode(ADDRESS, KEY, BandState(seq=seq)))
    frame[flip] ^= 1 << bit
    try:
        decode_frame(ADDRESS, KEY, bytes(frame))
    except DecodeError:
        return
    raise AssertionError("a corrupted frame decoded")


@PROPERTY
@given(uuid=st.binary(min_size=16, max_size=16), major=st.integers(0, 0xFFFF), minor=st.integers(0, 0xFFFF),
       tx=st.integers(-128, 127))
def test_ibeacon_round_trips_its_fields(uuid: bytes, major: int, minor: int, tx: int) -> None:
    """Built from the published layout (no encoder in the code): 02 15 | uuid | major | minor | tx."""
    frame = bytes([0x02, 0x15]) + uuid + struct.pack(">HHb", major, minor, tx)
    got_uuid, got_major, got_minor, got_tx = ibeacon.parse(frame)
    assert (got_major, got_minor, got_tx) == (major, minor, tx)
    assert got_uuid.replace("-", "").lower() == uuid.hex()


# -- the gateway envelope --------------------------------------------------------------------------
JSON_LEAVES = st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | \
    st.floats(allow_nan=False) | st.text(max_size=20)
JSON = st.recursive(JSON_LEAVES, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
KINDS = st.sampled_from(["hello", "position", "alert", "reading", "heartbeat", "place", "match", "nope"])


def _is_answer(result: object) -> bool:
    return isinstance(result, Message | Rejection)


@PROPERTY
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(bytes))
def test_envelope_parse_answers_any_text(text: str | bytes) -> None:
    assert _is_answer(parse(text))


@PROPERTY
@given(mid=st.text(max_size=70) | st.integers(), kind=KINDS, body=st.dictionaries(st.text(max_size=16), JSON,
                                                                                   max_size=8), extra=JSON)
def test_envelope_parse_answers_any_envelope(mid: object, kind: str, body: dict[str, Any], extra: Any) -> None:
    doc = {"v": 1, "id": mid, "type": kind, "body": body, "x": extra}
    assert _is_answer(parse(json.dumps(doc)))


@PROPERTY
@given(depth=st.integers(1, 200_000), opener=st.sampled_from(["[", "{\"a\":"]))
def test_envelope_parse_answers_deep_nesting(depth: int, opener: str) -> None:
    assert _is_answer(parse(opener * depth))


@settings(max_examples=50, deadline=None)
@given(value=st.sampled_from(["1e999", "-1e999", "NaN", "Infinity", str(2**70), str(-(2**70)), "1e308"]),
       field=st.sampled_from(["rssi", "patient_id", "uncertainty_m", "lat", "lon", "t", "seq"]),
       kind=KINDS)
def test_envelope_parse_answers_extreme_numbers(value: str, field: str, kind: str) -> None:
    text = '{"v": 1, "id": "m-1", "type": "' + kind + '", "body": {"' + field + '": ' + value + '}}'
    assert _is_answer(parse(text))


# -- the feed's client messages ---------------------------------------------------------------------
REQ = st.none() | st.text(max_size=64) | st.integers(-MAX_CURSOR, MAX_CURSOR)


@PROPERTY
@given(text=st.text(max_size=400))
def test_feed_message_parser_answers_any_text(text: str) -> None:
    result = parse_client_message(text)
    assert isinstance(result, FeedPing | FeedAck | FeedResolve | ClientError)


@PROPERTY
@given(doc=JSON, kind=st.sampled_from(["ack", "resolve", "ping", "auth", "x"]))
def test_feed_message_parser_answers_any_json(doc: Any, kind: str) -> None:
    message = {"type": kind, "alert_id": doc, "note": doc, "outcome": doc, "req": doc}
    result = parse_client_message(json.dumps(message))
    assert isinstance(result, FeedPing | FeedAck | FeedResolve | ClientError)
    if isinstance(result, FeedAck | FeedResolve):  # accepted only within the REST limits
        assert 1 <= result.alert_id <= MAX_ID
        assert result.note is None or len(result.note) <= NOTE_MAX


@PROPERTY
@given(alert_id=st.integers(1, MAX_ID), note=st.none() | st.text(max_size=NOTE_MAX).filter(
    lambda s: not any(ord(c) < 32 and c not in "\t\n\r" or ord(c) == 127 for c in s)),
    outcome=st.sampled_from(list(Outcome)), req=REQ, kind=st.sampled_from(["ack", "resolve"]))
def test_valid_actions_round_trip(alert_id: int, note: str | None, outcome: Outcome, req: Any, kind: str) -> None:
    sent = {"type": kind, "req": req, "alert_id": alert_id, "note": note, "outcome": outcome.value}
    result = parse_client_message(json.dumps(sent))
    assert isinstance(result, FeedAck if kind == "ack" else FeedResolve), result
    assert (result.alert_id, result.note, result.req) == (alert_id, note, req)


@PROPERTY
def _not_an_id(value: Any) -> bool:
    try:
        return not 1 <= float(value) <= MAX_ID or not float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        return True


@given(alert_id=(st.integers(MAX_ID + 1, 2**200) | st.integers(max_value=0) | st.floats() | st.text(max_size=5)
                 | st.lists(st.integers(), max_size=2)).filter(_not_an_id),
       kind=st.sampled_from(["ack", "resolve"]))
def test_alert_ids_that_do_not_fit_are_refused(alert_id: Any, kind: str) -> None:
    text = json.dumps({"type": kind, "alert_id": alert_id, "outcome": "other"})
    result = parse_client_message(text)
    assert isinstance(result, ClientError) and result.code == "feed_bad_message"


def test_a_note_longer_than_rest_allows_is_refused() -> None:
    result = parse_client_message(json.dumps({"type": "ack", "alert_id": 1, "note": "x" * (NOTE_MAX + 1)}))
    assert isinstance(result, ClientError) and result.code == "feed_bad_message"
    result = parse_client_message(json.dumps({"type": "ack", "alert_id": 1, "note": "x" * 3_000_000}))
    assert isinstance(result, ClientError) and result.code == "feed_too_large"
