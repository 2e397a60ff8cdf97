"""Locate: accuracy within the uncertainty, IQR filtering, no flapping between two receivers, coverage, GPS."""

from __future__ import annotations

import math
import random

from chumphae.values import PositionSource
from gateway.locate import Fix, Locator, robust_rssi, rssi_to_distance
from gateway.siteconfig import Receiver
from gateway.track import V_MAX
from tests.gateway.builders import T0

LAT0, LON0 = 16.5442, 102.0997
M_LAT = 110_574.0
M_LON = M_LAT * math.cos(math.radians(LAT0))


def at(x: float, y: float) -> tuple[float, float]:
    return LAT0 + y / M_LAT, LON0 + x / M_LON


def rx(rid: str, x: float, y: float) -> Receiver:
    lat, lon = at(x, y)
    return Receiver(rid, lat, lon, -59.0, 2.7)


SQUARE = [rx("a", 0, 0), rx("b", 120, 0), rx("c", 0, 120), rx("d", 120, 120)]


def rssi_at(r: Receiver, x: float, y: float, noise: float, rnd: random.Random) -> float:
    rx_, ry_ = (r.lon - LON0) * M_LON, (r.lat - LAT0) * M_LAT
    d = max(0.5, math.hypot(x - rx_, y - ry_))
    return r.p1m_dbm - 10 * r.path_loss_n * math.log10(d) + rnd.gauss(0, noise)


def error_m(lat: float, lon: float, x: float, y: float) -> float:
    return math.hypot((lon - LON0) * M_LON - x, (lat - LAT0) * M_LAT - y)


def test_log_distance_model() -> None:
    assert rssi_to_distance(-59, -59, 2.7) == 1.0
    assert math.isclose(rssi_to_distance(-86, -59, 2.7), 10.0, rel_tol=1e-9)


def test_iqr_rejects_a_body_blocked_outlier() -> None:
    assert robust_rssi([-70, -71, -69, -70, -72, -95]) == -70


def test_position_is_within_its_uncertainty() -> None:
    rnd = random.Random(4)
    loc = Locator(SQUARE)
    errors = []
    for x, y in [(30, 40), (60, 60), (100, 20), (20, 100)]:
        addr = f"C0:FF:EE:00:{int(x):02X}:{int(y):02X}"
        for i in range(15):
            for r in SQUARE:
                loc.observe(addr, r.id, rssi_at(r, x, y, 3.0, rnd), T0, now=float(i))
        p = loc.estimate(addr, now=15.0)
        assert p is not None and p.receivers == 4 and p.in_coverage
        err = error_m(p.lat, p.lon, x, y)
        assert err <= p.uncertainty_m, (x, y, err, p.uncertainty_m)
        errors.append(err)
    assert max(errors) < 25.0  # noise 3 dB, 15 samples each: metres, not tens of metres


def test_two_receivers_a_sitting_patient_does_not_flap_and_a_walk_is_followed() -> None:
    """Between two receivers, equal and noisy: the position creeps (never faster than a walk), it
    does not jump from one receiver to the other; walking up to b, the position follows."""
    loc = Locator([rx("a", 0, 0), rx("b", 40, 0)])
    rnd = random.Random(1)
    track = []
    for i in range(60):
        for r in loc.receivers.values():
            loc.observe("AA:00:00:00:00:01", r.id, rssi_at(r, 20, 0, 4.0, rnd), T0, now=float(i))
        p = loc.estimate("AA:00:00:00:00:01", now=float(i))
        assert p is not None and p.receivers == 2
        track.append((p.lat, p.lon))
    steps = [error_m(a[0], a[1], *xy_of(b)) for a, b in zip(track, track[1:], strict=False)]
    assert max(steps) <= V_MAX + 1.0 + 1e-6
    for i in range(60, 90):  # now at b's side
        for r in loc.receivers.values():
            loc.observe("AA:00:00:00:00:01", r.id, rssi_at(r, 39, 0, 1.0, rnd), T0, now=float(i))
        p = loc.estimate("AA:00:00:00:00:01", now=float(i))
    assert p is not None and error_m(p.lat, p.lon, 39, 0) < 15.0 < error_m(p.lat, p.lon, 0, 0)


def xy_of(ll: tuple[float, float]) -> tuple[float, float]:
    return (ll[1] - LON0) * M_LON, (ll[0] - LAT0) * M_LAT


def test_silent_band_goes_out_of_coverage_once_with_last_position() -> None:
    loc = Locator(SQUARE, coverage_timeout_s=60.0)
    loc.observe("AA:00:00:00:00:02", "a", -60, T0, now=0.0)
    p = loc.estimate("AA:00:00:00:00:02", now=0.0)
    assert p is not None
    assert loc.sweep(now=30.0) == []
    out = loc.sweep(now=61.0)
    assert len(out) == 1 and not out[0].in_coverage and (out[0].lat, out[0].lon) == (p.lat, p.lon)
    assert out[0].t == T0
    assert loc.sweep(now=120.0) == []  # reported once
    loc.observe("AA:00:00:00:00:02", "b", -60, T0, now=130.0)
    assert loc.estimate("AA:00:00:00:00:02", now=130.0) is not None


def test_unknown_receiver_is_not_used() -> None:
    loc = Locator(SQUARE)
    assert not loc.observe("AA:00:00:00:00:03", "uncalibrated", -60, T0, now=0.0)
    assert loc.estimate("AA:00:00:00:00:03", now=0.0) is None


def test_gps_fix_goes_through_with_its_accuracy() -> None:
    loc = Locator(SQUARE, coverage_timeout_s=60.0)
    lat, lon = at(500, 500)
    p = loc.locate_fix(Fix("AA:00:00:00:00:04", T0, lat, lon, 8.0), now=0.0)
    assert (p.source, p.uncertainty_m, p.lat, p.lon) == (PositionSource.GPS, 8.0, lat, lon)
    out = loc.sweep(now=61.0)
    assert len(out) == 1 and out[0].source == PositionSource.GPS and not out[0].in_coverage
