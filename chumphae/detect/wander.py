"""Wander and left coverage, from Matches (the match step's output) and the clock.

Why this shape (DOMAIN.md, Wandering; Traccar fires on the first outside fix):
  - a wander needs the patient *confirmed* outside: the whole uncertainty disc
    (or the locate step's region) clear of the zone (status OUTSIDE, and
    clearance ≥ `wander_margin_m`). While it still touches the zone (UNCERTAIN)
    no excursion starts. A confirmed excursion is dated from the first fix of
    the unbroken run leaning outside (`leaning_out`: the centre outside, or
    `OUT_SHARE` of the region's cells outside the zone: when the patient most
    likely left, not when the region finally cleared the zone). An unbroken run of
    `HOLD_S` of fixes *held outside* (`held_out`: the centre outside and `P_OUT` of
    the probability outside) confirms one too (a slow walk out along the road,
    whose region touches the zone for minutes). Once started,
    uncertain fixes whose centre stays `STILL_OUT_M` outside, or with
    `P_OUT` of the probability outside (`Match.outside_p`), or that are
    heard only faintly (uncertainty ≥ `FAINT_M`), keep it running and may end
    the dwell (`still_outside`): off the road the region flickers between
    clearing the zone and touching it, and a faint ring's centre may sit
    anywhere. Before its alert, an excursion lapses after `LAPSE_S` with no
    such fix (a confirming blip must not run a dwell through minutes of fixes
    leaning inside), and when such a fix comes back after more than
    `REDATE_S` without one, its dwell restarts from the current leaning run;
  - it needs a dwell: outside for `wander_dwell_s` by day, or the
    stricter `wander_dwell_night_s` at night (the Match's `schedule` "night", or
    the patient's night hours in Asia/Bangkok: a zone without a night shape keeps
    the night dwell, `night_for`). `tick`
    fires the dwell even when no new fix arrives;
  - one detection per excursion; a fix inside (status INSIDE) ends it;
  - an excursion the zone switch creates (20:00: the night zone is the home only, so a wearer on a route
    is outside from then on) is dated no earlier than the first fix under the new schedule: the smoothed
    past must not reach into the other schedule (night30). One already running keeps its date; one whose
    run of fixes leaning outside began before the switch dates from that run (review31);
  - left coverage is its own alert: the band stops being heard (for
    `left_coverage_s`, or the locate step marks the position out of
    coverage) while the last fix was outside or within `edge_m` of the edge.
    It is hysteretic: re-armed only after the band is back in coverage for
    `left_coverage_s` (or on a fix inside), not by every packet heard.
    A band falling silent deep inside the home is `band_silent` instead
    (band.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from chumphae.detect._common import detection, seconds
from chumphae.detect.state import Event, PatientState, WanderState
from chumphae.detect.thresholds import Thresholds, is_night
from chumphae.values import AlertType, Detection, Match, Reading, ZoneStatus


def confirmed_outside(m: Match, th: Thresholds) -> bool:
    # the matcher's clearance when it gave one (the locate step's region may clear the zone
    # while the disc covering it still touches it), else the disc's own; or a faint fix (heard
    # faintly by every receiver: far from all of them) with `P_OUT` of its probability outside
    if faint_and_out(m):
        return True
    if m.status != ZoneStatus.OUTSIDE:
        return False
    if m.clearance_m is not None:
        return m.clearance_m >= th.wander_margin_m
    d = m.distance_to_boundary_m
    return d is not None and d - m.position.uncertainty_m >= th.wander_margin_m


STILL_OUT_M = 30.0  # an uncertain fix keeps an excursion going only with its centre this far out
FAINT_M = 300.0  # …or with an uncertainty this large (heard faintly by every receiver: far from all of them)
CENTRE_OUT_M = 0.0  # a confirmed excursion is dated from the first of a run of fixes with the centre this far out
OUT_SHARE = 0.6  # …or with this share of the region outside the zone (most of the probability outside)
LAPSE_S = 90.0  # an excursion not yet alerted lapses after this long with no fix saying "still outside"
P_OUT = 0.96  # …or with this probability outside (`Match.outside_p`: the cloud's weight outside the zone)
REDATE_S = 45.0  # a started, not yet alerted dwell after this long with no support restarts from the current run
HOLD_S = 20.0  # an unbroken run of fixes held outside (`held_out`) this long confirms an excursion
SMOOTHED_LEAD_S = 60.0  # the smoothed past dates an excursion at most this long before its leaning run (wander-15)
PASSAGE_MATCH_S = 5.0  # …read at the locate step's snapshot within this of the run's start
LEAN_GAP_S = 0.0  # wander-17 (off: 0): a run leaning outside survives dips (fixes not leaning out) this short
HOLD_W_S = 0.0  # wander-22 (off: 0; tried at 45): the fixes of the last HOLD_W_S s held outside on the whole…
HOLD_W_P = 0.9  # …their `outside_p` averaging at least this…
HOLD_W_F = 0.8  # …and this share of them with the centre outside: confirms an excursion, as `HOLD_S` does
HOLD_W_DATE = False  # wander-22's second variant: an excursion the window alone started dates from the window
LONG_S = 0.0  # wander-23 (off: 0; 360 met its rule, left off): a lean run this long confirms an excursion…
LONG_MIN_FIXES = 30  # …with at least this many fixes…
LONG_GAP_S = 90.0  # …none further than this from the previous leaning one (a longer gap restarts the run)…
LONG_P = 0.5  # …and their `outside_p` averaging at least this
FAR_M = 0.0  # wander-25 (off: 0; tried at 30): an unbroken run of HOLD_S of fixes with the centre this far out…
FAR_P = 0.8  # …and at least this probability outside (`far_out`) confirms an excursion, as `HOLD_S` does


def smoothed_start(m: Match, run_start: datetime | None) -> datetime | None:
    """When the locate step's smoothed path (`Position.passages`) passed the place its centre was at when
    the run leaning outside began: a slow walker's filtered centre crosses the edge a minute after the
    patient did, the smoothed path passes that place on time. None without a smoothed past, or when it
    says no earlier than the run; at most `SMOOTHED_LEAD_S` before the run (wander-15)."""
    ps = m.position.passages
    if run_start is None or not ps:
        return None
    a = seconds(run_start, m.position.t)
    age, passed = min(ps, key=lambda p: abs(p[0] - a))
    if abs(age - a) > PASSAGE_MATCH_S or passed <= age:
        return None
    return run_start - timedelta(seconds=min(passed - age, SMOOTHED_LEAD_S))


def faint_and_out(m: Match) -> bool:
    """A faint fix (uncertainty `FAINT_M` or more) with `P_OUT` of its probability outside the zone: off the
    road, 100+ m from every receiver, the region may never clear the zone (its centre within metres of
    the edge) while almost all of the cloud's weight is outside; such a fix confirms an excursion."""
    q = m.outside_p
    return (m.status != ZoneStatus.INSIDE and q is not None and q >= P_OUT
            and m.position.uncertainty_m >= FAINT_M)


def leaning_out(m: Match, th: Thresholds) -> bool:
    """The fix says the patient is more likely outside than in: its centre is `CENTRE_OUT_M` outside,
    or `OUT_SHARE` of its region is. Off the road the centre (the mean of a faint ring) may sit well
    inside the zone while most of the region is already outside; this dates an excursion, it never
    confirms one."""
    d = m.distance_to_boundary_m
    if d is not None and d >= CENTRE_OUT_M + th.wander_margin_m:
        return True
    return m.outside_share is not None and m.outside_share >= OUT_SHARE


def held_out(m: Match, th: Thresholds) -> bool:
    """The fix holds the patient outside: its centre outside (`CENTRE_OUT_M`) *and* `P_OUT` of its
    probability outside (`Match.outside_p`), while its region may still touch the zone. A walk out
    along the road keeps the centre 10–40 m outside with 0.96–1.0 of the weight out for a minute or
    more before the 95 % region (60–250 m across) clears the zone; an unbroken run of `HOLD_S` of such
    fixes confirms the excursion (wander-13). The centre condition keeps a cloud run ahead of its
    centre (the weight outside, the centre inside: wander-10) from confirming."""
    d, q = m.distance_to_boundary_m, m.outside_p
    return (m.status != ZoneStatus.INSIDE and q is not None and q >= P_OUT and d is not None
            and d >= CENTRE_OUT_M + th.wander_margin_m)


def far_out(m: Match, th: Thresholds) -> bool:
    """The fix holds the patient *far* outside at lower confidence (wander-25): its centre `FAR_M` or more
    outside and `FAR_P` of its probability outside. A band well off the road is heard by 2–5 receivers on
    one side; the cloud's centre sits 36–83 m out for minutes while a tail on the road keeps `outside_p`
    at 0.78–0.93, under the `P_OUT` that `held_out` needs (wander-24's 9 p3, confirmed a minute late by a
    faint fix). An unbroken run of `HOLD_S` of such fixes confirms the excursion. Off (False) at `FAR_M` 0."""
    d, q = m.distance_to_boundary_m, m.outside_p
    return (FAR_M > 0 and m.status != ZoneStatus.INSIDE and q is not None and q >= FAR_P and d is not None
            and d >= FAR_M + th.wander_margin_m)


def _window(recent: tuple[tuple[datetime, float, bool], ...], m: Match, th: Thresholds,
            t: datetime) -> tuple[tuple[datetime, float, bool], ...]:
    """The fixes of the last `HOLD_W_S` (time, `outside_p`, centre outside), as of fix `m` (wander-22). A fix
    without `outside_p` (no cloud weights: a GPS fix, the gateway's fallback) empties it."""
    if HOLD_W_S <= 0:
        return ()
    if m.outside_p is None:
        return ()
    d = m.distance_to_boundary_m
    out = d is not None and d >= CENTRE_OUT_M + th.wander_margin_m
    return tuple(r for r in recent if seconds(r[0], t) <= HOLD_W_S) + ((t, m.outside_p, out),)


def window_held(recent: tuple[tuple[datetime, float, bool], ...], t: datetime) -> bool:
    """Held outside on the whole over the last `HOLD_W_S` (wander-22): the fixes span the window (the oldest
    at least 0.9 of it back, at least one fix per two seconds), their `outside_p` averages `HOLD_W_P` or more
    and `HOLD_W_F` of them have the centre outside. Near the edge a lingering patient's centre hovers a few
    metres out with 0.7–0.95 of the weight outside; single fixes dipping under `P_OUT` break `HOLD_S`'s
    unbroken run every few seconds, and the excursion waited minutes for a faint fix or a clearing region."""
    if HOLD_W_S <= 0 or not recent:
        return False
    if seconds(recent[0][0], t) < 0.9 * HOLD_W_S or len(recent) < HOLD_W_S / 2:
        return False
    n = len(recent)
    return (sum(r[1] for r in recent) / n >= HOLD_W_P
            and sum(1 for r in recent if r[2]) >= HOLD_W_F * n)


def _long_run(w: WanderState, m: Match, th: Thresholds, t: datetime) -> tuple[datetime | None, float, int]:
    """wander-23: the run of fixes leaning outside (`leaning_out`) as (first fix, sum of `outside_p`, fixes), as of
    fix `m`: restarted by a fix not leaning out or by a gap over `LONG_GAP_S` since the last one that did."""
    if LONG_S <= 0 or not leaning_out(m, th):
        return None, 0.0, 0
    q = m.outside_p if m.outside_p is not None else 0.0
    if w.long_since is None or w.leaned_at is None or seconds(w.leaned_at, t) > LONG_GAP_S:
        return t, q, 1
    return w.long_since, w.long_p + q, w.long_n + 1


def long_held(w: WanderState, t: datetime) -> bool:
    """Leaning outside for `LONG_S` (wander-23): the run of `_long_run` that long, with `LONG_MIN_FIXES` fixes and
    their `outside_p` averaging `LONG_P`. With receivers along one road a band off it is heard faintly on both
    sides of the road, or it stands just past the corridor's edge: the cloud's centre sits on the road, its
    weight outside 0.55–0.9 for minutes and never the `P_OUT` that `HOLD_S` needs; such an excursion ran
    7–8 min unconfirmed. Runs leaning out that were not excursions lasted at most 258 s (seeds 280–289)."""
    return (LONG_S > 0 and w.long_since is not None and seconds(w.long_since, t) >= LONG_S
            and w.long_n >= LONG_MIN_FIXES and w.long_p >= LONG_P * w.long_n)


def still_outside(m: Match, th: Thresholds) -> bool:
    """Once an excursion is confirmed: still outside while fixes clear the zone, or stay uncertain
    (the region touches the zone) with the centre outside, or with `P_OUT` of the probability
    outside (`Match.outside_p`), or are heard only faintly (uncertainty `FAINT_M` or more). A
    patient 100 m off the road is heard faintly by every receiver, and the region flickers between
    clearing the zone and touching it from one fix to the next, while its centre (the mean of a
    ring, or of a cloud with a tail back onto the road) may sit anywhere, inside the zone too; such
    a fix does not say the patient came back. Only a fix inside (status INSIDE) ends the excursion."""
    if confirmed_outside(m, th):
        return True
    if m.status == ZoneStatus.INSIDE:
        return False
    if m.outside_p is not None and m.outside_p >= P_OUT:
        return True
    if m.status != ZoneStatus.UNCERTAIN:
        return False
    d = m.distance_to_boundary_m
    return (d is not None and d >= STILL_OUT_M + th.wander_margin_m) or m.position.uncertainty_m >= FAINT_M


def near_edge_or_outside(m: Match, th: Thresholds) -> bool:
    if m.status in (ZoneStatus.OUTSIDE, ZoneStatus.UNCERTAIN):
        return True
    d = m.distance_to_boundary_m
    return d is not None and d + m.position.uncertainty_m >= -th.edge_m


def zone_night(m: Match, th: Thresholds, t: datetime) -> bool:
    """The night zone in force: the Match's schedule (which geometry applied) when the matcher set one, else the
    patient's night hours. What the zone switch follows (night30): a zone without a night shape never switches."""
    return m.schedule == "night" if m.schedule else is_night(t, th)


def night_for(m: Match, th: Thresholds, t: datetime) -> bool:
    """Night for the dwell and the alert: the night zone in force, or the patient's night hours. A zone without
    a night shape keeps its day geometry at night, but its wearer still has the stricter night dwell (debt33)."""
    return m.schedule == "night" or is_night(t, th)  # `zone_night` or the hours, with the hours read once


def dwell_s(m: Match, th: Thresholds, t: datetime) -> float:
    return th.wander_dwell_night_s if night_for(m, th, t) else th.wander_dwell_s


def duration_text(s: float) -> tuple[str, str]:
    """'45 วินาที' / '45 s' under two minutes, else whole minutes ('4 นาที' / '4 min'). Seconds are
    rounded as `outside_for_s` is, so the sentence and the field agree (58.6 s: both say 59)."""
    r = round(s)
    if r < 120:
        return f"{r} วินาที", f"{r} s"
    return f"{r // 60} นาที", f"{r // 60} min"


def distance_from_zone(m: Match) -> float:
    """How far from the zone: the centre's distance, never less than what the whole region clears."""
    return max(m.distance_to_boundary_m or 0.0, m.clearance_m or 0.0)


def _wander(state: PatientState, m: Match, since: datetime, at: datetime, th: Thresholds) -> Detection:
    out_for = seconds(since, at)
    # asked directly, not inferred from which dwell applied: equal day/night dwells (a zone's
    # own dwell_s sets both) would otherwise make every night wander read as a day one
    night = night_for(m, th, at)
    p = m.place
    dur_th, dur_en = duration_text(out_for)
    dist = distance_from_zone(m)
    return detection(state, AlertType.WANDER, at, match=m,
                     confidence=1.0 if m.position.uncertainty_m <= 50 else 0.8,
                     th=f"ผู้ป่วยออกนอกเขตปลอดภัยมา {dur_th} ห่างจากเขตประมาณ {dist:.0f} ม.: {p.description_th}",
                     en=f"Patient outside the safe zone for {dur_en}, about {dist:.0f} m from it: "
                        f"{p.description_en}",
                     outside_for_s=round(out_for), outside_since=since.isoformat(), night=night,
                     distance_m=round(dist, 1), clearance_m=round(m.clearance_m, 1) if m.clearance_m else None,
                     uncertainty_m=round(m.position.uncertainty_m, 1))


def _left(state: PatientState, m: Match, at: datetime, silent_s: float, since: datetime | None) -> Detection:
    """Left coverage; says how long the patient had been outside (when confirmed) and how far."""
    p = m.place
    sil_th, sil_en = duration_text(silent_s)
    dist = distance_from_zone(m)
    out_th = out_en = ""
    out_for = None if since is None else max(0.0, seconds(since, at))
    if out_for is not None:
        o_th, o_en = duration_text(out_for)
        out_th, out_en = f" ออกนอกเขตปลอดภัยมา {o_th}", f" Outside the safe zone for {o_en}."
    where_th = f" ห่างจากเขตประมาณ {dist:.0f} ม." if dist > 0 else ""
    where_en = f" {dist:.0f} m from the zone." if dist > 0 else ""
    return detection(state, AlertType.LEFT_COVERAGE, at, match=m,
                     confidence=0.9 if m.status != ZoneStatus.INSIDE else 0.7,
                     th=f"ไม่ได้รับสัญญาณสายรัดข้อมือ {sil_th}{out_th}{where_th} ตำแหน่งสุดท้าย: {p.description_th}",
                     en=f"Band not heard for {sil_en}.{out_en}{where_en} Last seen: {p.description_en}",
                     silent_for_s=round(silent_s), last_status=m.status.value,
                     outside_for_s=None if out_for is None else round(out_for),
                     distance_m=None if m.distance_to_boundary_m is None else round(dist, 1))


def _rearm_left(w: WanderState, m: Match, th: Thresholds) -> WanderState:
    """Left coverage is hysteretic: after an alert it re-arms only once the band is back in coverage
    for `left_coverage_s` without a silence that long (or on a fix inside the zone, which ends the
    excursion anyway). A patient far outside is heard now and then; each packet is not a new return."""
    if not w.left_alerted:
        return w
    back = w.back_since or m.position.t
    if seconds(back, m.position.t) >= th.left_coverage_s:
        return replace(w, left_alerted=False, back_since=None)
    return replace(w, back_since=back)


def step(state: PatientState, event: Event, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    w = state.wander
    if isinstance(event, Reading):  # a packet alone neither re-arms left coverage nor moves the excursion
        return state, []
    m = event
    t = m.position.t
    if not m.position.in_coverage:  # the locate step says the band is gone: the last fix is stale
        if not w.left_alerted and near_edge_or_outside(m, th):
            silent = seconds(t, now)
            return replace(state, wander=replace(w, left_alerted=True, back_since=None)), [
                _left(state, m, t, silent, w.outside_since)]
        return (replace(state, wander=replace(w, back_since=None)) if w.back_since else state), []
    night = zone_night(m, th, t)
    if w.night is not None and night != w.night:  # the zone in force switched (20:00 / 06:00): night30
        # only the switch to the night zone (the home only) creates excursions; 06:00 widens the zone (review31)
        w = replace(w, night=night, switched_at=t if night else None)
    elif w.night is None:
        w = replace(w, night=night)
    if m.status == ZoneStatus.NO_ZONE:
        return replace(state, wander=_rearm_left(w, m, th)), []
    if m.status == ZoneStatus.INSIDE:
        return replace(state, wander=WanderState(night=w.night, switched_at=w.switched_at)), []
    w = _rearm_left(w, m, th)
    if LONG_S > 0:
        long_since, long_p, long_n = _long_run(w, m, th, t)
        w = replace(w, long_since=long_since, long_p=long_p, long_n=long_n)
    w = replace(w, centre_out_since=_lean_run(w, m, th, t), leaned_at=t if leaning_out(m, th) else w.leaned_at,
                held_since=(w.held_since or t) if held_out(m, th) else None, recent=_window(w.recent, m, th, t))
    if FAR_M > 0:
        w = replace(w, far_since=(w.far_since or t) if far_out(m, th) else None)
    out: list[Detection] = []
    main_held = w.held_since is not None and seconds(w.held_since, t) >= HOLD_S  # confirms, as a clearing region does
    main_held = main_held or (w.far_since is not None and seconds(w.far_since, t) >= HOLD_S)  # wander-25
    win = window_held(w.recent, t)
    held = main_held or win or long_held(w, t)
    supported = confirmed_outside(m, th) or held or (w.outside_since is not None and still_outside(m, th))
    if (not supported and w.outside_since is not None and not w.alerted and w.supported_at is not None
            and seconds(w.supported_at, t) > LAPSE_S):
        # nothing has said "outside" for a while (the centre back in, the region mostly in): a blip that
        # confirmed it once must not run a dwell through minutes of fixes that lean inside
        w = replace(w, outside_since=None, supported_at=None, date_floor=None)
    if (supported and w.outside_since is not None and not w.alerted and w.supported_at is not None
            and seconds(w.supported_at, t) > REDATE_S):
        # support comes back after a gap (under LAPSE_S) of fixes that said nothing: the dwell restarts
        # from the run of fixes leaning outside that led to this one, not from before the gap (a
        # consistent but wrong fix near the edge, then a minute of nothing, must not make a due dwell)
        w = replace(w, outside_since=None, date_floor=None)
    if supported:
        # the excursion began when the patient most likely left (the run of fixes leaning outside
        # that led to this confirmed one), not when the whole region first cleared the zone
        since = w.outside_since or min(w.centre_out_since or t, t)
        if w.date_floor is not None and (main_held or confirmed_outside(m, th)):
            # an excursion the window alone started, now confirmed as main confirms: dated as main dates it
            since = min(w.centre_out_since or t, t)
            w = replace(w, date_floor=None)
        elif HOLD_W_DATE and w.outside_since is None and win and not confirmed_outside(m, th) and not main_held:
            w = replace(w, date_floor=w.recent[0][0])  # started by the window alone: dated from its start at most
        early = None if w.alerted else smoothed_start(m, w.centre_out_since)  # wander-15: the smoothed past
        if early is not None and early < since:
            since = early
        if w.date_floor is not None and since < w.date_floor:
            since = w.date_floor
        floor = None if w.switched_at is None else min(w.switched_at, w.centre_out_since or w.switched_at)
        if floor is not None and (w.outside_since is None or w.outside_since >= floor):
            # an excursion the zone switch created (outside only under the geometry now in force) began no
            # earlier than the switch: the smoothed past may reach into the other schedule (night30); one whose
            # run leaning outside the old zone began before the switch dates from that run's first fix, the
            # smoothed past not before the switch (review31); one dated earlier still was running: kept
            since = max(since, floor)
        w = replace(w, outside_since=since, supported_at=t)
        if not w.alerted and seconds(since, t) >= dwell_s(m, th, t):
            out.append(_wander(state, m, since, t, th))
            w = replace(w, alerted=True)
    return replace(state, wander=w), out


def _lean_run(w: WanderState, m: Match, th: Thresholds, t: datetime) -> datetime | None:
    """The start of the run of fixes leaning outside (`leaning_out`), as of fix `m`: kept through a dip of
    fixes not leaning out no longer than `LEAN_GAP_S` since the last one that did (wander-17). Off the road a
    slow walker's region hovers about `OUT_SHARE` for a minute or more (the far-out cloud keeps weight on the
    road); a dip of a fix or two used to restart the run, and the excursion was dated 50–100 s late."""
    if leaning_out(m, th):
        return w.centre_out_since or t
    if (LEAN_GAP_S > 0 and w.centre_out_since is not None and w.leaned_at is not None
            and seconds(w.leaned_at, t) <= LEAN_GAP_S):
        return w.centre_out_since
    return None


def tick(state: PatientState, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    """Fire what is due with no new data: the dwell running out, the band falling silent."""
    w, m = state.wander, state.last_match
    if m is None or state.last_heard is None:
        return state, []
    out: list[Detection] = []
    silent = seconds(state.last_heard, now)
    if (not w.left_alerted and silent >= th.left_coverage_s and m.status != ZoneStatus.NO_ZONE
            and near_edge_or_outside(m, th)):
        out.append(_left(state, m, state.last_heard, silent, w.outside_since))
        w = replace(w, left_alerted=True, back_since=None)
    elif w.left_alerted and w.back_since is not None and silent >= th.left_coverage_s:
        w = replace(w, back_since=None)  # silent again before it had been back long enough
    elif (w.outside_since is not None and not w.alerted and silent < th.left_coverage_s
          and (still_outside(m, th) or window_held(w.recent, m.position.t))):
        due = w.outside_since + timedelta(seconds=dwell_s(m, th, now))
        if now >= due:
            out.append(_wander(state, m, w.outside_since, due, th))
            w = replace(w, alerted=True)
    return (replace(state, wander=w) if w != state.wander else state), out
