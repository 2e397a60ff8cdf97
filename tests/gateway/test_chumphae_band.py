"""Our band frame: golden vector, tampering, wrong key, other band, replay."""

from __future__ import annotations

import pytest

from chumphae.values import Motion
from gateway.decode import ReplayError, default_decoders
from gateway.decode import chumphae_band as band
from tests.gateway.builders import advert

ADDR = "C0:FF:EE:00:00:01"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
# Golden vector, also printed in docs/band-frame.md: band firmware must produce these bytes.
GOLDEN = "c1e8030000bd007c22007e4713d63a05fffec96b2ebd"
GOLDEN_STATE = band.BandState(
    seq=1000, sos=True, worn=True, battery_pct=64, motion=Motion(3.5, 0.25, 1.0, -70.0, 40.0), steps=1520
)


def test_golden_vector_both_ways() -> None:
    assert band.encode(ADDR, KEY, GOLDEN_STATE).hex() == GOLDEN
    assert band.decode_frame(ADDR, KEY, bytes.fromhex(GOLDEN)) == GOLDEN_STATE


def test_registry_reading_carries_flags_and_motion() -> None:
    reg = default_decoders({ADDR: KEY}.get)
    r = reg.decode(advert(address=ADDR, rssi=-77, manufacturer_data={0xFFFF: bytes.fromhex(GOLDEN)}))
    assert r is not None
    assert (r.kind, r.sos, r.fall_flag, r.worn, r.charging, r.seq, r.steps) == ("chumphae", True, False, True, False, 1000, 1520)
    assert r.authenticated and r.rssi == -77 and r.battery_pct == 64.0
    assert r.motion == Motion(3.5, 0.25, 1.0, -70.0, 40.0)


@pytest.mark.parametrize("index", range(1, 22))
def test_any_flipped_bit_is_rejected(index: int) -> None:
    frame = bytearray.fromhex(GOLDEN)
    frame[index] ^= 0x01
    reg = default_decoders({ADDR: KEY}.get)
    assert reg.decode(advert(address=ADDR, manufacturer_data={0xFFFF: bytes(frame)})) is None
    assert reg.stats.auth_failures == 1


def test_unknown_version_is_not_taken_for_our_frame() -> None:
    frame = bytearray.fromhex(GOLDEN)
    frame[0] = 0xC2
    reg = default_decoders({ADDR: KEY}.get)
    assert reg.decode(advert(address=ADDR, manufacturer_data={0xFFFF: bytes(frame)})) is None
    assert reg.stats.unknown == 1


def test_phone_without_key_cannot_fake_sos() -> None:
    forged = band.encode(ADDR, bytes(16), band.BandState(seq=5000, sos=True))
    reg = default_decoders({ADDR: KEY}.get)
    assert reg.decode(advert(address=ADDR, manufacturer_data={0xFFFF: forged})) is None
    assert reg.stats.auth_failures == 1


def test_frame_copied_to_another_address_is_rejected() -> None:
    other = "C0:FF:EE:00:00:02"
    reg = default_decoders({ADDR: KEY, other: KEY}.get)
    assert reg.decode(advert(address=other, manufacturer_data={0xFFFF: bytes.fromhex(GOLDEN)})) is None
    assert reg.stats.auth_failures == 1


def test_replay_of_old_frame_rejected_but_multi_receiver_sightings_pass() -> None:
    reg = default_decoders({ADDR: KEY}.get)
    home = band.encode(ADDR, KEY, band.BandState(seq=10))  # "patient is home", recorded
    later = band.encode(ADDR, KEY, band.BandState(seq=11, sos=True))
    assert reg.decode(advert(address=ADDR, monotonic=1.0, manufacturer_data={0xFFFF: home})) is not None
    assert reg.decode(advert(address=ADDR, monotonic=2.0, manufacturer_data={0xFFFF: later})) is not None
    # the same frame heard by a second receiver a moment later: accepted
    assert reg.decode(advert(address=ADDR, receiver="rx-b", monotonic=2.3, manufacturer_data={0xFFFF: later})) is not None
    # the old "home" frame replayed: rejected
    assert reg.decode(advert(address=ADDR, monotonic=3.0, manufacturer_data={0xFFFF: home})) is None
    # the newest frame replayed long after: rejected too
    assert reg.decode(advert(address=ADDR, monotonic=60.0, manufacturer_data={0xFFFF: later})) is None
    assert reg.stats.replays == 2


def test_guard_restored_after_restart_refuses_old_counters() -> None:
    g = band.ReplayGuard()
    assert g.check(ADDR, 7, now=1.0)
    g2 = band.ReplayGuard()
    g2.restore(g.snapshot(), now=0.0)
    with pytest.raises(ReplayError):
        g2.check(ADDR, 7, now=0.5)
    assert g2.check(ADDR, 8, now=0.6)


def test_unknown_band_is_not_ours() -> None:
    reg = default_decoders({}.get)
    assert reg.decode(advert(address=ADDR, manufacturer_data={0xFFFF: bytes.fromhex(GOLDEN)})) is None
    assert reg.stats.unknown == 1 and reg.stats.failures == 0
