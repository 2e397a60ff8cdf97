"""A far receiver's ONE stray packet does not drag the cloud across the road (gateway/locate.py, wander-21).

wander-19 traced the bench's false starts of the wander alert to a receiver 360–420 m away catching ONE packet
of the band at −99 dBm. If that receiver had learnt a full window (≥ 5 packets), its row is faint and bounded
the band within `MAX_RANGE_M` (300 m); if it had only ever heard 1–2 packets a window, the same packet is a
*heard* row (median −99 dBm, reach ≤ 300 m, and it narrows the search box). Either way the cloud ran across the
road towards it for the 15 s the packet stayed in the window. `STRAY_REACH_Z` (wander-21) reads only such a
row — one packet, from a receiver beyond the reach of every receiver that hears the band well (≥ half its
packets, ≥ 2 packets) — as faint with wander-19's 4-sigma reach; rows of two packets or more keep main's 300 m
wall, and so does everything when no receiver hears the band well. Real locator, real particle filter, the radio
model of test_locate_track."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from gateway import locate
from gateway.locate import Locator
from tests.gateway.builders import T0
from tests.gateway.test_locate_region import RECEIVERS, rx, xy
from tests.gateway.test_locate_track import heard

ON = 4.0  # STRAY_REACH_Z of the variant
ADDR = "AA:00:00:00:00:21"
NEIGHBOUR = "AA:00:00:00:00:22"  # another patient's band at home by the far receiver: it fills that receiver's window
FAR = rx("far", 250.0, 380.0)  # a receiver on another street, 380 m from the road
SITE = [*RECEIVERS, FAR]  # the road: receivers at x = 0, 100, …, 400 on y = 0
STRAY_AT = 40  # the second the far receiver catches one packet of the band, at −99 dBm
SEEDS = range(6)


def _walk(seed: int, *, full_far: bool, addr: str = ADDR, neighbour: str = NEIGHBOUR) -> list[tuple[float, float, float]]:
    """(second, centre's x, centre's y) while the band walks along the road 8 m off its centreline. With
    `full_far` the far receiver hears a neighbour's every packet (its stray packet of ours is then a faint row);
    without, it never heard more than that one packet in a window (a heard row, wander-19's 268 p9 / 267 p7).
    wander-19's test walks the same walk (`full_far`, its own band addresses)."""
    rnd, shadow, other = random.Random(seed), {}, {}
    loc = Locator(SITE, seed=seed)
    out = []
    for i in range(90):
        t = T0 + timedelta(seconds=i)
        if full_far:
            for rid, v in heard([FAR], rnd, other, 240.0, 370.0):
                loc.observe(neighbour, rid, v, t, float(i))
            loc.estimate(neighbour, float(i))
        x = 150.0 + 0.8 * i
        for rid, v in heard(RECEIVERS, rnd, shadow, x, 8.0):
            loc.observe(addr, rid, v, t, float(i))
        if i == STRAY_AT:
            loc.observe(addr, FAR.id, -99.0, t, float(i))
        p = loc.estimate(addr, float(i))
        if p is not None:
            out.append((float(i), *xy(p.lat, p.lon)))
    return out


def _swing(seed: int, *, full_far: bool) -> float:
    """How far off the road the centre went while the stray packet was in the window (and 10 s after)."""
    return max(abs(y) for i, _x, y in _walk(seed, full_far=full_far) if STRAY_AT <= i <= STRAY_AT + 25)


@pytest.mark.parametrize("full_far", [False, True], ids=["heard_row", "faint_row"])
def test_one_stray_packet_keeps_the_centre_on_the_road(monkeypatch: pytest.MonkeyPatch, full_far: bool) -> None:
    monkeypatch.setattr(locate, "STRAY_REACH_Z", ON)
    monkeypatch.setattr(locate, "FAINT_REACH_Z", 0.0)  # wander-19's broader rule stays off
    swings = [_swing(s, full_far=full_far) for s in SEEDS]
    assert max(swings) < 20.0, swings  # inside the zone's 20 m corridor, every seed


@pytest.mark.parametrize("full_far", [False, True], ids=["heard_row", "faint_row"])
def test_without_the_rule_the_same_packet_drags_the_centre_out(monkeypatch: pytest.MonkeyPatch,
                                                               full_far: bool) -> None:
    """The test above can fail: main's rows (the rule off) let the one packet pull the cloud out of the corridor."""
    monkeypatch.setattr(locate, "STRAY_REACH_Z", 0.0)
    monkeypatch.setattr(locate, "FAINT_REACH_Z", 0.0)
    swings = [_swing(s, full_far=full_far) for s in SEEDS]
    assert sum(s > 20.0 for s in swings) >= len(swings) // 2, swings


def _reach4(loc: Locator, rid: str) -> float:
    r = loc.receivers[rid]
    at = loc.sensitivity_dbm - ON * math.hypot(locate.SIGMA_SLOW_DB, locate.SIGMA_FAST_DB)
    return max(locate.MAX_RANGE_M, 10 ** ((r.p1m_dbm - at) / (10 * r.path_loss_n)))


def test_only_a_single_packet_row_beyond_the_good_receivers_reach_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(locate, "STRAY_REACH_Z", ON)
    monkeypatch.setattr(locate, "FAINT_REACH_Z", 0.0)
    loc = Locator(SITE)
    b = locate._Band()
    loc._rows(b, {"r1": [-70.0] * 15, "r2": [-70.0] * 15, "r4": [-70.0] * 15}, 0.0)  # 15 packets a window learnt
    i_far, i1, i4 = loc._rx_index[FAR.id], loc._rx_index["r1"], loc._rx_index["r4"]
    # r2 (x = 200) hears the band well; r4 (200 m from it) and FAR (380 m) catch one packet; r1 two
    counts = {"r2": [-80.0] * 14, "r4": [-99.0], FAR.id: [-99.0], "r1": [-98.0, -99.0]}
    rows, box = loc._rows(b, counts, 0.0)
    by = {r[0]: r for r in rows}
    reach2 = next(r[4] for r in rows if r[0] == loc._rx_index["r2"])
    assert reach2 < 200.0  # r4 lies beyond r2's reach too
    assert by[i_far][1] == 1 and by[i_far][4] == pytest.approx(_reach4(loc, FAR.id))  # the far lone packet
    assert by[i4][1] == 1 and by[i4][4] == pytest.approx(_reach4(loc, "r4"))
    assert by[i1][1] == 1 and by[i1][4] == locate.MAX_RANGE_M  # two packets: main's wall
    # a lone packet from a receiver WITHIN a good receiver's reach (r2 at −95 dBm: ~136 m; r3 100 m away) is main's
    rows, _box = loc._rows(b, {"r2": [-95.0] * 14, "r3": [-99.0]}, 0.0)
    assert next(r for r in rows if r[0] == loc._rx_index["r2"])[4] > 100.0
    assert next(r for r in rows if r[0] == loc._rx_index["r3"])[4] == locate.MAX_RANGE_M
    # no receiver hears the band well: main's rows
    only_faint = {"r1": [-99.0, -98.0], "r4": [-99.0], FAR.id: [-99.0]}
    on = loc._rows(b, only_faint, 0.0)
    monkeypatch.setattr(locate, "STRAY_REACH_Z", 0.0)
    assert loc._rows(b, only_faint, 0.0) == on
    assert [r[4] for r in on[0] if r[1] == 1] == [locate.MAX_RANGE_M] * 2  # r1, r4 (FAR learnt 1 a window: heard)


def test_a_lone_heard_packet_leaves_the_search_box(monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver that never heard more than one packet a window makes its stray packet a heard row (and a
    300 m box around it); with the rule it is faint and the box is the good receivers' alone."""
    loc = Locator(SITE)
    b = locate._Band()
    counts = {"r2": [-80.0, -81.0, -80.5], FAR.id: [-99.0]}  # FAR has never heard more than 1 a window
    monkeypatch.setattr(locate, "STRAY_REACH_Z", 0.0)
    rows_off, box_off = loc._rows(b, counts, 0.0)
    assert next(r for r in rows_off if r[0] == loc._rx_index[FAR.id])[1] == 0  # main: heard
    monkeypatch.setattr(locate, "STRAY_REACH_Z", ON)
    rows_on, box_on = loc._rows(b, counts, 0.0)
    assert next(r for r in rows_on if r[0] == loc._rx_index[FAR.id])[1] == 1
    _rows_r2, box_r2 = loc._rows(b, {"r2": [-80.0, -81.0, -80.5]}, 0.0)
    assert box_on == box_r2 and box_on != box_off
