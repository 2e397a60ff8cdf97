"""A site that lives: every band of a site config, day after day, until stopped.

`DistrictSource` is a `SimSource` with no end and no script of its own: each
patient spends the night at home (Asia/Bangkok, 22:00–06:00), and by day sits
at home and now and then walks one of their walking routes at 0.6–0.9 m/s,
out and back, always inside their safe zone; batteries drain. On top of that
`excursion()` plays one real event on one band: a walk out of the zone along
a route, a fall, an SOS, the band taken off, or the band going quiet.
Everything is the real band frame heard by the site's receivers (radio model),
so the gateway pipeline works on it exactly as on a radio.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from gateway.simulate import paths
from gateway.simulate.radio import distance_m
from gateway.simulate.scenario import Event, PatientPlan, Radio, Scenario
from gateway.simulate.source import SimSource
from gateway.siteconfig import SiteConfig

BANGKOK = ZoneInfo("Asia/Bangkok")
NIGHT = (22, 6)  # at home from 22:00 to 06:00 local time
# Village lanes, receivers on poles (the seeded receivers are calibrated the same way).
DISTRICT_RADIO = Radio(p1m_dbm=-59.0, path_loss_n=2.2, noise_db=3.0, shadowing_db=2.0, drop_rate=0.1,
                       sensitivity_dbm=-100.0, repeats=1)
WALK_OUT_SPEED = 1.1  # m/s: a brisk walk out of the zone
KINDS = ("walk_out", "fall", "sos", "remove_band", "quiet")


@dataclass(frozen=True, slots=True)
class Excursion:
    """One event played on one band: what, from when (simulated s), until when the routine resumes."""

    kind: str
    band: int
    patient_id: int | None
    at: float
    until: float
    leaves_zone_at: float | None = None  # walk_out: when the walk crosses the edge of the zone in force
    end_outside_m: float | None = None  # walk_out: how far outside that zone the walk ends


def is_night(t: datetime) -> bool:
    h = t.astimezone(BANGKOK).hour
    return h >= NIGHT[0] or h < NIGHT[1]


def night_rule(site: SiteConfig, patient_id: int | None) -> Callable[[datetime], bool]:
    """When the patient's night zone is in force, by the rule the gateway's matcher uses
    (`gateway.service.default_steps`: the night hours of the patient's thresholds), or the
    fallback matcher's (`gateway.basic`) on a gateway built without the detection package."""
    try:
        from chumphae.detect.thresholds import is_night as th_night
        from chumphae.detect.thresholds import thresholds_for
    except ImportError:  # pragma: no cover - the detection package ships with the gateway here
        from gateway.basic import default_night

        return lambda t: default_night(patient_id or 0, t)
    p = next((q for q in site.patients if q.get("id") == patient_id), {})
    try:
        th = thresholds_for(p.get("adl_score"), p.get("ltc_group"), p.get("thresholds") or None)
    except ValueError:  # bad overrides: the gateway falls back to the group defaults too
        th = thresholds_for(p.get("adl_score"), p.get("ltc_group"))
    return lambda t: th_night(t, th)


class DistrictSource(SimSource):
    def __init__(self, site: SiteConfig, *, speed: float = 1.0, seed: int = 4005, start: datetime | None = None,
                 radio: Radio = DISTRICT_RADIO, first_walk_s: tuple[float, float] = (60.0, 900.0)) -> None:
        rng = random.Random(seed)
        plans = tuple(PatientPlan(band=i, battery_pct=rng.uniform(55.0, 100.0),
                                  drain_pct_per_h=rng.uniform(0.8, 2.0)) for i in range(len(site.bands)))
        super().__init__(Scenario(name=f"district {site.site_id}", seed=seed, duration_s=math.inf,
                                  patients=plans, radio=radio, site=site), site, speed=speed, start=start)
        self.homes = [s.pos for s in self.sims]
        for s in self.sims:  # the routine decides who walks, not the scenario's back-and-forth
            s.route, s.path, s.walking = [], [], False
        self.next_walk = [rng.uniform(*first_walk_s) for _ in self.sims]
        self.busy_until = [0.0 for _ in self.sims]
        self.life_rng = rng

    # -- the routine ---------------------------------------------------------------
    def _routine(self, i: int) -> None:
        s = self.sims[i]
        if self._now < self.busy_until[i] or s.path:
            return
        s.walking = False
        if is_night(self.wall()) or self._now < self.next_walk[i]:
            return
        walk = paths.routine_walk(self.site, s.band.patient_id, self.homes[i], self.life_rng)
        if walk:
            s.path, s.walking, s.lying = list(walk), True, False
            s.speed = self.life_rng.uniform(0.6, 0.9)
        self.next_walk[i] = self._now + self.life_rng.uniform(900.0, 3600.0)

    def second(self) -> list:  # type: ignore[type-arg]
        for i in range(len(self.sims)):
            self._routine(i)
        return super().second()

    # -- the excursions ------------------------------------------------------------
    def walk_out_plan(self, band: int, at: float | None = None
                      ) -> tuple[list[paths.LatLon], float | None, float | None]:
        """Band `band`'s walk out of its zone (`paths.walk_out`) started at simulated second `at` (default
        now): the seconds from its start to the edge of the zone *in force when it gets there* (the
        night zone, home only, at night: `night_rule`) at `WALK_OUT_SPEED` (None without a zone), and
        how far outside the zone in force at its end the walk ends."""
        pid = self.sims[band].band.patient_id
        walk = paths.walk_out(self.site, pid, self.homes[band])
        frame = paths.frame_for(self.site)
        day, night_zone = paths.zone_of(self.site, frame, pid), paths.zone_of(self.site, frame, pid, night=True)
        night = night_rule(self.site, pid)
        t0 = self._now if at is None else at

        def zone_at(after_s: float) -> BaseGeometry | None:
            wall = self.start + timedelta(seconds=t0 + after_s)
            return night_zone if night_zone is not None and night(wall) else day

        leaves, run, prev = None, 0.0, self.homes[band]
        for p in walk:
            run += distance_m(prev, p)
            prev = p
            zone = zone_at(run / WALK_OUT_SPEED)
            if leaves is None and zone is not None and not zone.contains(Point(*frame.xy(p))):
                leaves = run / WALK_OUT_SPEED
        end = zone_at(run / WALK_OUT_SPEED)
        outside = end.distance(Point(*frame.xy(walk[-1]))) if end is not None else None
        return walk, leaves, outside

    def excursion(self, kind: str, band: int, at: float) -> Excursion:
        """Play `kind` on band `band` from simulated second `at`; the routine pauses until it is over."""
        s = self.sims[band]
        pid = s.band.patient_id
        home = self.homes[band]
        leaves = outside = None
        if kind == "walk_out":
            walk, leaves_after, outside = self.walk_out_plan(band, at)
            speed = WALK_OUT_SPEED
            leaves = None if leaves_after is None else at + leaves_after
            run = sum(distance_m(a, b) for a, b in zip(walk, walk[1:], strict=False))
            back = at + run / speed + 600.0  # found and walked home ten minutes after the walk ends
            self.inject(band, Event(at, "walk_path", {"path": walk, "speed_mps": speed}))
            self.inject(band, Event(back, "walk_path", {"path": walk[::-1], "speed_mps": 0.9}))
            until = back + run / 0.9
        elif kind == "fall":
            self.inject(band, Event(at, "fall"))
            until = at + 300.0
            self.inject(band, Event(until, "resume"))
        elif kind == "sos":
            self.inject(band, Event(at, "sos", {"duration_s": 20}))
            until = at + 60.0
        elif kind == "remove_band":
            self.inject(band, Event(at, "remove_band"))
            until = at + 900.0
            self.inject(band, Event(until, "put_on"))
        elif kind == "quiet":
            until = at + 4200.0  # longer than any group's silence threshold (15–60 min)
            self.inject(band, Event(at, "quiet", {"duration_s": until - at}))
        else:
            raise ValueError(f"unknown excursion {kind!r} (know: {', '.join(KINDS)})")
        if s.path and kind != "walk_out":
            s.path = [home]  # whoever was out walking is home by then
        self.busy_until[band] = until
        return Excursion(kind, band, pid, at, until, leaves, outside)
