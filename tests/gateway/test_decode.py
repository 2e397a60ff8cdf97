"""Decoders against tables of hex frames, through the registry as the gateway uses it."""

from __future__ import annotations

import pytest

from gateway.decode import default_decoders, eddystone, ibeacon, kkm, moko, uuid16
from tests.gateway.builders import advert

FEAA = uuid16(0xFEAA)
FEAB = uuid16(0xFEAB)
FCD2 = uuid16(0xFCD2)

IBEACON = [
    # Apple AirLocate sample UUID, major 0, minor 0, measured power -59 dBm
    ("0215e2c56db5dffb48d2b060d0f5a71096e000000000c5", "e2c56db5-dffb-48d2-b060-d0f5a71096e0", 0, 0, -59),
    # Estimote default UUID, major 12345, minor 54321, -74 dBm
    ("0215b9407f30f5f8466eaff925556b57fe6d3039d431b6", "b9407f30-f5f8-466e-aff9-25556b57fe6d", 12345, 54321, -74),
]


@pytest.mark.parametrize(("hexframe", "uuid", "major", "minor", "tx"), IBEACON)
def test_ibeacon_table(hexframe: str, uuid: str, major: int, minor: int, tx: int) -> None:
    assert ibeacon.parse(bytes.fromhex(hexframe)) == (uuid, major, minor, tx)
    r = default_decoders().decode(advert(manufacturer_data={0x004C: bytes.fromhex(hexframe)}))
    assert r is not None and r.kind == "ibeacon" and r.tx_power == tx


TLM = [
    # 3000 mV, 23.5 °C, 42 adverts, 30.0 s up
    ("20000bb817800000002a0000012c", 3000, 23.5, 42, 30.0),
    # 3100 mV, no temperature sensor, 1111 adverts, 1000.0 s
    ("20000c1c80000000045700002710", 3100, None, 1111, 1000.0),
    # battery unknown, -5.25 °C
    ("20000000fac00000000100000001", None, -5.25, 1, 0.1),
]


@pytest.mark.parametrize(("hexframe", "mv", "temp", "count", "uptime"), TLM)
def test_eddystone_tlm_table(hexframe: str, mv: int | None, temp: float | None, count: int, uptime: float) -> None:
    raw = bytes.fromhex(hexframe)
    tlm = eddystone.parse(raw)
    assert (tlm.battery_mv, tlm.temperature_c, tlm.adv_count, tlm.uptime_s) == (mv, temp, count, uptime)
    r = default_decoders().decode(advert(service_data={FEAA: raw}))
    assert r is not None and r.kind == "eddystone_tlm" and r.battery_mv == mv


KKM = [
    # 3004 mV, 25.5 °C, x 16 mg, y -16 mg, z 1000 mg (lying flat)
    ("2101070bbc19800010fff003e8", 3004, 25.5, (0.016, -0.016, 1.0)),
    # 2812 mV, -1 + 0.5 °C, hanging on a wrist: x -980 mg
    ("2101070afcff80fc2c000000c8", 2812, -0.5, (-0.98, 0.0, 0.2)),
]


@pytest.mark.parametrize(("hexframe", "mv", "temp", "acc"), KKM)
def test_kkm_table(hexframe: str, mv: int, temp: float, acc: tuple[float, float, float]) -> None:
    assert kkm.parse(bytes.fromhex(hexframe)) == (mv, temp, acc)
    r = default_decoders().decode(advert(service_data={FEAA: bytes.fromhex(hexframe)}))
    assert r is not None and r.kind == "kkm" and r.accel_g == acc and r.battery_mv == mv


MOKO = [
    # ranging -59, interval 10, 1 Hz, ±2 g, threshold 1; x 12 mg, y -8 mg, z 1016 mg; 3021 mV
    ("60c50a010001000cfff803f80bcd", (0.012, -0.008, 1.016), 3021, -59),
    ("60c00a0203020400fc1800640b54", (1.024, -1.0, 0.1), 2900, -64),
]


@pytest.mark.parametrize(("hexframe", "acc", "mv", "ranging"), MOKO)
def test_moko_table(hexframe: str, acc: tuple[float, float, float], mv: int, ranging: int) -> None:
    assert moko.parse(bytes.fromhex(hexframe)) == (acc, mv, ranging)
    r = default_decoders().decode(advert(service_data={FEAB: bytes.fromhex(hexframe)}))
    assert r is not None and r.kind == "moko" and r.battery_mv == mv


def test_bthome_v2_battery_and_button_press() -> None:
    reg = default_decoders()
    # BTHome v2 spec example: battery 97 %, temperature 25.06 °C
    r = reg.decode(advert(address="A4:C1:38:8D:18:B2", service_data={FCD2: bytes.fromhex("40016102ca09")}))
    assert r is not None and r.kind == "bthome" and r.battery_pct == 97.0 and not r.sos
    # packet id 2, then button (0x3a) press (0x01): a panic button
    r = reg.decode(advert(address="A4:C1:38:8D:18:B2", service_data={FCD2: bytes.fromhex("4000023a01")}))
    assert r is not None and r.sos


MALFORMED = [
    ({"manufacturer_data": {0x004C: bytes.fromhex("0215e2c56db5")}}),  # truncated iBeacon
    ({"service_data": {FEAA: bytes.fromhex("2000")}}),  # truncated TLM
    ({"service_data": {FEAA: bytes.fromhex("2101")}}),  # truncated KKM
    ({"service_data": {FEAB: bytes.fromhex("60c5")}}),  # truncated Moko
    ({"service_data": {FCD2: b""}}),  # empty BTHome
    ({"service_data": {FCD2: bytes.fromhex("e0ffff")}}),  # BTHome with a bad version
    ({"manufacturer_data": {0xFFFF: bytes.fromhex("c1e803")}}),  # truncated band frame
]


@pytest.mark.parametrize("fields", MALFORMED)
def test_malformed_frames_are_counted_not_raised(fields: dict[str, object]) -> None:
    reg = default_decoders(lambda _a: bytes(16))
    assert reg.decode(advert(**fields)) is None
    assert reg.stats.malformed == 1


def test_strangers_are_unknown_not_failures() -> None:
    reg = default_decoders()
    # a phone's Microsoft CDP beacon and an unrelated service
    assert reg.decode(advert(manufacturer_data={0x0006: bytes.fromhex("0109202201aa")})) is None
    assert reg.decode(advert(service_data={uuid16(0xFE9F): b"\x00"})) is None
    assert reg.stats.unknown == 2 and reg.stats.failures == 0
