"""default_steps: the zone matcher judges night by the patient's own night hours (the detectors' rule),
uses the night geometry then, and says which schedule applied on the Match."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from chumphae.timeutil import BANGKOK
from chumphae.values import Position, ZoneStatus
from gateway import siteconfig
from gateway.basic import ZoneMatcher
from gateway.service import default_steps
from tests.gateway.test_simulate import run

DAY = {"type": "Polygon", "coordinates": [[[102.0991339, 16.5438383], [102.1000774, 16.5438383],
                                           [102.1000774, 16.5447426], [102.0991339, 16.5447426],
                                           [102.0991339, 16.5438383]]]}
NIGHT = {"type": "Polygon", "coordinates": [[[102.0993226, 16.5440191], [102.0998887, 16.5440191],
                                             [102.0998887, 16.5445617], [102.0993226, 16.5445617],
                                             [102.0993226, 16.5440191]]]}
# inside the day zone, about 13 m west of the night zone
LAT, LON = 16.5442, 102.0992


def site(thresholds: dict[str, Any] | None = None, night_zone: bool = True) -> siteconfig.SiteConfig:
    zone: dict[str, Any] = {"patient_id": 1, "version": 1, "dwell_s": 30, "geometry": DAY}
    if night_zone:
        zone["night_geometry"] = NIGHT
    return siteconfig.parse({
        "site_id": "s", "version": 1, "receivers": [],
        "bands": [{"address": "C0:FF:EE:00:00:01", "key_hex": "01" * 16, "patient_id": 1}],
        "patients": [{"id": 1, "ltc_group": 2, "thresholds": thresholds or {}}],
        "zones": [zone],
    })


def at(hh: int, mm: int = 0) -> Position:
    t = datetime(2025, 6, 1, hh, mm, tzinfo=BANGKOK)
    return Position("C0:FF:EE:00:00:01", t, LAT, LON, 1.0)


def test_matcher_follows_the_patients_own_night_hours() -> None:
    matcher, _detector = default_steps(site({"night_start": "22:30", "night_end": "05:00"}))
    m = matcher(at(21), 1)  # the fixed 20-06 rule would call this night and use the night zone
    assert m is not None and (m.status, m.schedule) == (ZoneStatus.INSIDE, "day")
    m = matcher(at(23), 1)
    assert m is not None and (m.status, m.schedule) == (ZoneStatus.OUTSIDE, "night")
    m = matcher(at(5, 30), 1)
    assert m is not None and (m.status, m.schedule) == (ZoneStatus.INSIDE, "day")


def test_schedule_is_night_only_when_a_night_shape_is_in_force() -> None:
    """As the tax-map matcher says it (`gateway.steps`, `chumphae.map.match`): "night" is the night geometry
    applied. A zone without one was "night" at 23:00 though the day geometry applied (debt33)."""
    for matcher in (default_steps(site(night_zone=False))[0], ZoneMatcher(site(night_zone=False))):
        m = matcher(at(23), 1)
        assert m is not None and (m.status, m.schedule) == (ZoneStatus.INSIDE, "day")
        m = matcher(at(10), 1)
        assert m is not None and m.schedule == "day"
    m = default_steps(site())[0](at(23), 1)  # with a night shape: the night zone, and said so
    assert m is not None and (m.status, m.schedule) == (ZoneStatus.OUTSIDE, "night")


def test_no_zone_switch_at_20_without_a_night_shape() -> None:
    """The wander detector takes a move to "night" for a switch of the zone in force and floors an excursion's
    smoothed past there (night30): without a night shape nothing switches at 20:00, so it records no switch."""
    for night_zone, switched in ((False, None), (True, at(20, 0))):
        matcher, detectors = default_steps(site(night_zone=night_zone))
        for t in (at(19, 59), at(20, 0), at(20, 1)):
            p = Position("C0:FF:EE:00:00:01", t.t, LAT, 102.09955, 1.0)  # inside the day and the night zone
            m = matcher(p, 1)
            assert m is not None and m.status == ZoneStatus.INSIDE
            detectors.on_position(p, m, 1)
        assert detectors.states[1].wander.switched_at == (switched.t if switched else None)  # type: ignore[attr-defined]


def test_fallback_matcher_sets_the_schedule_too() -> None:
    m = ZoneMatcher(site())(at(22), 1)
    assert m is not None and (m.status, m.schedule) == (ZoneStatus.OUTSIDE, "night")
    m = ZoneMatcher(site())(at(12), 1)
    assert m is not None and (m.status, m.schedule) == (ZoneStatus.INSIDE, "day")
    assert ZoneMatcher(site())(at(12), 9).schedule is None  # type: ignore[union-attr]  # no zone


def test_night_wander_alert_carries_the_night_schedule(tmp_path: Path) -> None:
    _src, alerts = run("night-wander", tmp_path)
    wander = next(a for a in alerts if a["type"] == "wander")
    assert wander["match"]["schedule"] == "night"  # type: ignore[index]
    assert wander["details"]["night"] is True  # type: ignore[index]
