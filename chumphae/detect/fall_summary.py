"""Falls from the per-second motion summaries a band advertises, and its own fall flag.

A BLE advert carries one summary a second (max, min and mean |a|, and the
orientation at the end of the second), not a stream, so the physics of
fall_stream.py is judged at one-second grain:
  - impact: a second whose max |a| reaches `fall_impact_g`;
  - free fall: a min |a| under 0.6 g in that second or the one before;
  - low activity after: in the seconds from +2 s, the spread (max − min) is
    small and the mean is near 1 g, in most of them (the median);
  - turn: the angle between the gravity directions given by pitch/roll
    before the impact and after it.
The band's fall flag is evidence, not proof: it opens a candidate like an
impact does and adds to the confidence, but a band that flags and then
shows its wearer walking on raises nothing. A flag from a band that sends
no summaries at all is all we have: it is reported, with a lower confidence,
once its 10 s are up. Every candidate is decided by impact + 10 s (`tick`
decides when the band goes quiet).

When the package ships the summary model (fall_summary_model.json, falls-11),
it decides instead of the rule above: a second whose max |a| reaches
fall_summary_features.CANDIDATE_G (1.6 g) opens a candidate, a louder second
before the decision replaces it, and at impact + 8 s the trees judge the
summaries from 3 s before to 8 s after it (the same seconds and features as
training: fall_summary_features.candidates), each summary rounded as an
advert carries it (`advertised`, the one-summary twin of `as_advertised`: what the model was trained on; a decoded
advert already is, a simulator's or a test's hand-made Motion becomes so,
falls-12). A fall when the probability
reaches the model's threshold; the band's flag stays evidence: a flagged
candidate needs only `FLAG_EVIDENCE` × the threshold, and a flag with no
summaries at all is reported as before. The rule stays as the fallback
(`model=None`) and as the baseline scripts/eval_falls.py measures.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta
from statistics import median

import numpy as np

from chumphae.detect import fall_summary_features as sf
from chumphae.detect import fall_summary_model
from chumphae.detect._common import detection, seconds
from chumphae.detect.fall_model import FallModel
from chumphae.detect.state import Event, FallCandidate, FallState, PatientState
from chumphae.detect.thresholds import Thresholds
from chumphae.values import AlertType, Detection, Motion, Reading

WINDOW_S = 15.0
POST_FROM_S = 2.0
DECIDE_BY_S = 10.0
MIN_POST = 4  # summaries after +2 s needed to decide before the deadline
FREE_FALL_G = 0.6
QUIET_SPREAD_G = 0.35
REFRACTORY_S = 30.0
FLAG_EVIDENCE = 0.5  # with the band's fall flag, the model's threshold × this is enough
SHIPPED = "shipped"  # step's default: the shipped summary model if the package has one, else the rule


def gravity(pitch: float, roll: float) -> tuple[float, float, float]:
    p, r = math.radians(pitch), math.radians(roll)
    return (-math.sin(p), math.cos(p) * math.sin(r), math.cos(p) * math.cos(r))


def turn_deg(a: tuple[float | None, float | None], b: tuple[float | None, float | None]) -> float | None:
    if None in a or None in b:
        return None
    u, v = gravity(a[0], a[1]), gravity(b[0], b[1])  # type: ignore[arg-type]
    dot = max(-1.0, min(1.0, sum(x * y for x, y in zip(u, v, strict=True))))
    return math.degrees(math.acos(dot))


def _clamp(v: float) -> float:
    return max(0.0, min(1.0, v))


def _candidate(fs: FallState, t: datetime, m: Motion | None, flag: bool, th: Thresholds) -> FallCandidate | None:
    if fs.last_fall is not None and seconds(fs.last_fall, t) < REFRACTORY_S:
        return None
    impact = m is not None and m.max_g >= th.fall_impact_g
    if not (impact or flag):
        return None
    earlier = [x for u, x in fs.window if seconds(u, t) >= 2.0]
    prev = [x for u, x in fs.window if 0 < seconds(u, t) <= 1.5]
    ff = any(x.min_g < FREE_FALL_G for x in [*prev, *([m] if m else [])])
    before = earlier[-1] if earlier else None
    return FallCandidate(t=t, peak_g=m.max_g if m else 0.0, free_fall=ff, flag=flag,
                         pitch_before=before.pitch_deg if before else None,
                         roll_before=before.roll_deg if before else None)


def _decide(state: PatientState, c: FallCandidate, post: list[Motion], at: datetime,
            th: Thresholds) -> list[Detection]:
    if not post:
        if not c.flag:
            return []
        conf, still, turn = 0.6, None, None  # only the band's word for it
    else:
        spread = median(x.max_g - x.min_g for x in post)
        level = median(x.mean_g for x in post)
        if spread > QUIET_SPREAD_G or not 0.75 <= level <= 1.3:
            return []  # active afterwards: not a fall (whatever the flag says)
        still = spread
        last = post[-1]
        turn = turn_deg((c.pitch_before, c.roll_before), (last.pitch_deg, last.roll_deg))
        s_peak = _clamp((c.peak_g - 1.8) / (4.0 - 1.8))
        s_still = _clamp((QUIET_SPREAD_G - spread) / (QUIET_SPREAD_G - 0.05))
        s_turn = 0.4 if turn is None else _clamp((turn - 20.0) / 50.0)
        conf = (0.3 * s_peak + 0.2 * float(c.free_fall) + 0.2 * s_still + 0.15 * s_turn
                + 0.3 * float(c.flag))
        conf = min(1.0, conf)
        if conf < th.fall_min_confidence:
            return []
    return [detection(state, AlertType.FALL, c.t, confidence=conf,
                      th="สงสัยผู้ป่วยหกล้ม กรุณาตรวจดูทันที",
                      en="Suspected fall: please check on the patient now",
                      peak_g=round(c.peak_g, 2), free_fall=c.free_fall, band_flag=c.flag,
                      post_spread_g=None if still is None else round(still, 3),
                      turn_deg=None if turn is None else round(turn, 1),
                      decided_after_s=round(seconds(c.t, at), 1))]


def _settle(state: PatientState, th: Thresholds, now: datetime, final: bool) -> tuple[PatientState, list[Detection]]:
    fs = state.fall
    c = fs.pending
    if c is None:
        return state, []
    post = [m for t, m in fs.window if seconds(c.t, t) >= POST_FROM_S]
    deadline = c.t + timedelta(seconds=DECIDE_BY_S)
    if len(post) < MIN_POST and now < deadline and not final:
        return state, []
    at = min(now, deadline) if post or final else now
    found = _decide(state, c, post, at, th)
    fs = replace(fs, pending=None, last_fall=c.t if found else fs.last_fall)
    return replace(state, fall=fs), found


def _model(model: FallModel | None | str) -> FallModel | None:
    return fall_summary_model.shipped() if isinstance(model, str) else model


def step(state: PatientState, event: Event, th: Thresholds, now: datetime,
         model: FallModel | None | str = SHIPPED) -> tuple[PatientState, list[Detection]]:
    """One event: the summary model's step when there is a model, else the rule's."""
    m = _model(model)
    if m is not None:
        return _model_step(state, event, th, m)
    return _rule_step(state, event, th, now)


def _rule_step(state: PatientState, event: Event, th: Thresholds, now: datetime) -> tuple[PatientState, list[Detection]]:
    if not isinstance(event, Reading):
        return state, []
    fs, t = state.fall, event.t
    flag_rise = event.fall_flag and fs.flag_since is None
    flag_since = (fs.flag_since or t) if event.fall_flag else None
    if flag_since != fs.flag_since:  # (a replace that changes nothing is skipped: states compare by value)
        fs = replace(fs, flag_since=flag_since)
    if event.motion is not None and not (fs.window and t <= fs.window[-1][0]):  # not a repeat of a second
        fs = replace(fs, window=tuple(w for w in fs.window if seconds(w[0], t) <= WINDOW_S)
                     + ((t, event.motion),))
    elif not flag_rise:
        return (replace(state, fall=fs) if fs != state.fall else state), []
    if fs.pending is not None:
        if flag_rise:
            fs = replace(fs, pending=replace(fs.pending, flag=True))
        return _settle(replace(state, fall=fs), th, t, final=False)
    cand = _candidate(fs, t, event.motion, flag_rise, th)
    if cand is not None:
        fs = replace(fs, pending=cand)
    return (replace(state, fall=fs) if fs is not state.fall else state), []


def tick(state: PatientState, th: Thresholds, now: datetime,
         model: FallModel | None | str = SHIPPED) -> tuple[PatientState, list[Detection]]:
    """Decide a candidate whose 10 s are up though the band sent nothing more."""
    c = state.fall.pending
    if c is None or now < c.t + timedelta(seconds=DECIDE_BY_S):
        return state, []
    m = _model(model)
    if m is not None:
        found = _model_decide(state, c, th, m, min(now, c.t + timedelta(seconds=DECIDE_BY_S)))
        fs = replace(state.fall, pending=None, last_fall=c.t if found else state.fall.last_fall)
        return replace(state, fall=fs), found
    return _settle(state, th, now, final=True)


# --- the summary model (falls-11) ------------------------------------------------------------------------
def _model_candidate(fs: FallState, t: datetime, m: Motion | None, flag: bool) -> FallCandidate:
    prev = [x for u, x in fs.window if 0 < seconds(u, t) <= 1.5]
    ff = any(x.min_g < FREE_FALL_G for x in [*prev, *([m] if m else [])])
    return FallCandidate(t=t, peak_g=m.max_g if m else 0.0, free_fall=ff, flag=flag, pitch_before=None,
                         roll_before=None)


def _model_decide(state: PatientState, c: FallCandidate, th: Thresholds, model: FallModel,
                  at: datetime) -> list[Detection]:
    fs = state.fall
    win = [(seconds(c.t, u), x) for u, x in fs.window if seconds(c.t, u) <= sf.DECIDE_S]
    if not any(abs(d) < 1e-6 for d, _ in win):  # a flag without a summary of its own
        win.append((0.0, Motion(c.peak_g, 1.0, 1.0)))
    if not any(d > 1e-6 for d, _ in win):
        if not c.flag:
            return []
        conf, x = 0.6, None  # only the band's word for it
    else:
        win.sort(key=lambda w: w[0])
        dt = np.array([d for d, _ in win])
        arr = np.array([[m.max_g, m.min_g, m.mean_g, math.nan if m.pitch_deg is None else m.pitch_deg,
                         math.nan if m.roll_deg is None else m.roll_deg] for _, m in win])
        x = sf.features(dt, arr)
        conf = float(model.proba(x)[0])
        if conf < model.threshold * (FLAG_EVIDENCE if c.flag else 1.0):
            return []
    f = dict(zip(sf.FEATURES, x.tolist(), strict=True)) if x is not None else {}

    def num(k: str, nd: int) -> float | None:
        v = f.get(k)
        return None if v is None or math.isnan(v) else round(v, nd)

    return [detection(state, AlertType.FALL, c.t, confidence=conf,
                      th="สงสัยผู้ป่วยหกล้ม กรุณาตรวจดูทันที",
                      en="Suspected fall: please check on the patient now",
                      peak_g=round(c.peak_g, 2), free_fall=c.free_fall, band_flag=c.flag,
                      post_spread_g=num("post3_spread_g", 3), turn_deg=num("turn_deg", 1),
                      summary_model=True, decided_after_s=round(seconds(c.t, at), 1))]


def _model_step(state: PatientState, event: Event, th: Thresholds,
                model: FallModel) -> tuple[PatientState, list[Detection]]:
    if not isinstance(event, Reading):
        return state, []
    fs, t = state.fall, event.t
    flag_rise = event.fall_flag and fs.flag_since is None
    flag_since = (fs.flag_since or t) if event.fall_flag else None
    if flag_since != fs.flag_since:
        fs = replace(fs, flag_since=flag_since)
    m = None if event.motion is None else sf.advertised(event.motion)  # as the model was trained (falls-12)
    if m is not None and not (fs.window and t <= fs.window[-1][0]):  # not a repeat of a second
        fs = replace(fs, window=tuple(w for w in fs.window if seconds(w[0], t) <= WINDOW_S) + ((t, m),))
    elif not flag_rise:
        return (replace(state, fall=fs) if fs != state.fall else state), []
    else:
        m = None
    found: list[Detection] = []
    c = fs.pending
    if c is not None and seconds(c.t, t) >= sf.DECIDE_S:  # its 8 s are here: decide before anything new
        found = _model_decide(replace(state, fall=fs), c, th, model, t)
        fs = replace(fs, pending=None, last_fall=c.t if found else fs.last_fall)
        c = None
    loud = m is not None and m.max_g >= sf.CANDIDATE_G
    quiet_after_fall = fs.last_fall is not None and seconds(fs.last_fall, t) < REFRACTORY_S
    if c is None:
        if (loud or flag_rise) and not quiet_after_fall:
            fs = replace(fs, pending=_model_candidate(fs, t, m, flag_rise))
    elif loud and m is not None and m.max_g > c.peak_g:  # the louder second is the impact
        fs = replace(fs, pending=_model_candidate(fs, t, m, flag_rise or c.flag))
    elif flag_rise:
        fs = replace(fs, pending=replace(c, flag=True))
    return (replace(state, fall=fs) if fs != state.fall else state), found
