"""The per-second summary model (falls-11) through the live detect step, its training script, its file.

Real trials (FallAllD, UMAFall, read from `../shared/data/falls` or
`CHUMPHAE_FALLS_DATA`) are made into the summaries a band would advertise
and fed, one Reading a second, through `chumphae.detect.detect` / `tick`
(the step every band goes through). The shipped summary model was trained
on these sets: this checks the plumbing (falls found, the hardest daily
activities left alone, the live step saying what the offline features say),
not a figure: those come from scripts/eval_falls.py's held-out runs.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from chumphae.detect import PatientState, detect, fall_summary_model, thresholds_for, tick
from chumphae.detect import fall_summary as fs
from chumphae.detect import fall_summary_features as sf
from chumphae.detect.fall_data import pad_still, read_labels, trial_seed
from chumphae.detect.fall_model import FallModel, ModelError
from chumphae.detect.fall_model import load as load_raw
from chumphae.detect.recordings import read_recording
from chumphae.values import AlertType, Detection, Motion, Reading
from tests.detect.test_fall_train import script

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CHUMPHAE_FALLS_DATA", ROOT.parent / "shared" / "data" / "falls"))
T0 = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
TH = thresholds_for(adl_score=8)

needs_data = pytest.mark.skipif(not (DATA / "fallalld" / "labels.csv").is_file()
                                or not (DATA / "umafall" / "labels.csv").is_file(),
                                reason=f"real fall recordings not found at {DATA} (set CHUMPHAE_FALLS_DATA)")

FALLS = [
    ("fallalld", "S02_A101_T01", 50),
    ("fallalld", "S02_A120_T02", 50),
    ("fallalld", "S02_A130_T01", 50),
    ("umafall", "Subject_02_Fall_forwardFall_1", 20),
    ("umafall", "Subject_02_Fall_backwardFall_1", 20),
]
# daily activities loud enough to be candidates that the summary rule calls falls (in-sample for the model,
# which still calls others of S02 falls: see docs/fall-detection.md, falls-11)
HARD_ADL = [
    ("fallalld", "S02_A004_T04", 50),
    ("fallalld", "S02_A012_T02", 50),
    ("umafall", "Subject_02_ADL_HandsUp_2", 20),
    ("umafall", "Subject_02_ADL_LyingDown_OnABed_2", 20),
    ("umafall", "Subject_02_ADL_Hopping_3", 20),
]


def summaries(set_: str, name: str, hz: float) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[type-arg]
    rec = read_recording(DATA / set_ / f"{name}.csv", "g")
    t, xyz = pad_still(rec.t, rec.xyz, hz, seed=trial_seed(name))
    return sf.summarise(t, xyz, hz)


def live(ts: np.ndarray, ms: np.ndarray, model: FallModel | None | str = fs.SHIPPED  # type: ignore[type-arg]
         ) -> list[Detection]:
    """The summaries as one Reading a second through the detect step (all detectors, or fall_summary's alone
    with an explicit `model`), then ticks until nothing is pending."""
    state = PatientState(patient_id=1)
    found: list[Detection] = []
    for s, row in zip(ts.tolist(), ms.tolist(), strict=True):
        now = T0 + timedelta(seconds=s)
        r = Reading(address="C0:FF:EE:00:00:01", kind="chumphae", rssi=-70, receiver="rx", t=now,
                    authenticated=True, motion=Motion(*row))
        if model == fs.SHIPPED:
            state, d = detect(state, r, TH, now)
        else:
            state, d = fs.step(state, r, TH, now, model=model)
        found += [x for x in d if x.type == AlertType.FALL]
    end = T0 + timedelta(seconds=float(ts[-1]) + 20)
    state, d = tick(state, TH, end) if model == fs.SHIPPED else fs.tick(state, TH, end, model=model)
    return found + [x for x in d if x.type == AlertType.FALL]


def test_the_summary_model_ships_small_and_names_its_data() -> None:
    model = fall_summary_model.shipped()
    assert model is not None and model.features == sf.FEATURES and 0 < model.threshold < 1
    assert (ROOT / "chumphae" / "detect" / fall_summary_model.MODEL_FILE).stat().st_size <= 1_000_000
    names = " ".join(model.meta["trained_on"])
    assert "fallalld" in names and "umafall" in names and model.meta["candidate_g"] == sf.CANDIDATE_G


@needs_data
@pytest.mark.parametrize("set_, name, hz", FALLS)
def test_a_real_fall_advertised_as_summaries_raises_one_fall_within_10_s(set_: str, name: str, hz: int) -> None:
    found = live(*summaries(set_, name, hz))
    model = fall_summary_model.shipped()
    assert model is not None
    (d,) = found
    assert d.details["summary_model"] is True and d.confidence >= model.threshold
    assert 0 < d.details["decided_after_s"] <= 10 and d.details["band_flag"] is False
    assert d.details["peak_g"] >= sf.CANDIDATE_G


@needs_data
@pytest.mark.parametrize("set_, name, hz", HARD_ADL)
def test_hard_daily_activities_advertised_as_summaries_stay_silent(set_: str, name: str, hz: int) -> None:
    ts, ms = summaries(set_, name, hz)
    assert np.max(ms[:, sf.MAX]) >= sf.CANDIDATE_G  # loud enough to be a candidate: the model said no
    assert live(ts, ms) == []


@needs_data
def test_the_rule_called_them_falls() -> None:
    """The hard daily activities above fool the summary rule (the reason for the model)."""
    for set_, name, hz in HARD_ADL:
        assert live(*summaries(set_, name, hz), model=None), name


@needs_data
@pytest.mark.parametrize("set_, name, hz", [*FALLS[:3], *HARD_ADL[:3], ("fallalld", "S02_A003_T01", 50),
                                            ("umafall", "Subject_02_ADL_LyingDown_OnABed_1", 20),
                                            ("fallalld", "S05_A030_T02", 50)])
def test_the_live_step_says_what_the_offline_features_say(set_: str, name: str, hz: int) -> None:
    """Same candidate seconds, same features, same probability: training sees what the live path sees."""
    ts, ms = summaries(set_, name, hz)
    model = fall_summary_model.shipped()
    assert model is not None
    X, tc, dc = sf.recording_features(ts, ms)
    p = model.proba(X) if len(X) else np.zeros(0)
    found = live(ts, ms, model=model)
    expected: list[float] = []  # offline: candidates over the threshold, none within REFRACTORY_S of a fall
    for t, q in zip(tc.tolist(), p.tolist(), strict=True):
        if q >= model.threshold and (len(expected) < 2 or t - expected[-2] >= fs.REFRACTORY_S):
            expected += [t, q]
    assert [v for d in found for v in ((d.t - T0).total_seconds(), d.confidence)] == pytest.approx(expected, abs=5.1e-4)  # confidence: 3 decimals
    assert all(abs(d.details["decided_after_s"] - sf.DECIDE_S) < 1e-9 for d in found)


def test_the_band_flag_lowers_the_bar_but_walking_on_still_vetoes() -> None:
    walk = Motion(1.7, 0.5, 1.02, -70.0, 10.0)
    impact = Motion(3.2, 0.3, 1.2, -20.0, 30.0)
    lying = Motion(1.0, 1.0, 1.0, 5.0, 80.0)
    shipped = fall_summary_model.shipped()
    assert shipped is not None

    def run(after: Motion, flag: bool, model: FallModel) -> list[Detection]:
        state = PatientState(patient_id=1)
        out: list[Detection] = []
        for i, m in enumerate([walk] * 8 + [impact] + [after] * 12):
            r = Reading(address="a", kind="chumphae", rssi=-70, receiver="rx", t=T0 + timedelta(seconds=i),
                        authenticated=True, motion=m, fall_flag=flag and i >= 8)
            state, d = fs.step(state, r, TH, r.t, model=model)
            out += d
        return out

    assert run(walk, True, shipped) == []  # the band says fall, the wearer walks on: nothing
    (d,) = run(lying, False, shipped)
    p = d.confidence
    assert p >= shipped.threshold and d.details["band_flag"] is False
    # a model whose threshold is above this fall's probability: silent without the flag, a fall with it
    strict = replace(shipped, threshold=min(0.999, p / (0.5 * (1 + fs.FLAG_EVIDENCE))))
    assert strict.threshold > p and p >= strict.threshold * fs.FLAG_EVIDENCE
    assert run(lying, False, strict) == []
    (d,) = run(lying, True, strict)
    assert d.details["band_flag"] is True and d.confidence == p


def test_without_a_model_the_rule_decides() -> None:
    state = PatientState(patient_id=1)
    seq = [Motion(1.2, 0.8, 1.0, -70.0, 10.0)] * 5 + [Motion(4.5, 0.2, 1.3, -20.0, 30.0)] + \
        [Motion(1.0, 1.0, 1.0, 5.0, 80.0)] * 10
    found: list[Detection] = []
    for i, m in enumerate(seq):
        r = Reading(address="a", kind="chumphae", rssi=-70, receiver="rx", t=T0 + timedelta(seconds=i),
                    authenticated=True, motion=m)
        state, d = fs.step(state, r, TH, r.t, model=None)
        found += d
    (d,) = found
    assert "summary_model" not in d.details and d.details["decided_after_s"] < sf.DECIDE_S


@needs_data
def test_training_the_summary_model_on_a_small_subset(tmp_path: Path) -> None:
    train = script("train_falls")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert train.main(["--data", str(DATA), "--summary", "--out", str(a), "--subset", "6"]) == 0
    assert train.main(["--data", str(DATA), "--summary", "--out", str(b), "--subset", "6",
                       "--cache", str(tmp_path / "cache")]) == 0
    assert a.read_bytes() == b.read_bytes()
    model = fall_summary_model.load(a)
    assert model.meta["trained_on"] == ["fallalld (6 falls, 6 daily activities)", "umafall (6 falls, 6 daily activities)"]
    assert json.loads(a.read_text())["features"] == list(sf.FEATURES) and model.trees
    with pytest.raises(ModelError, match="features"):
        load_raw(a)  # a summary model is not a raw-stream model, nor the reverse
    with pytest.raises(ModelError, match="features"):
        fall_summary_model.load(ROOT / "chumphae" / "detect" / "fall_model.json")
    assert len(read_labels("umafall", DATA / "umafall")) > 12


def test_training_summaries_are_rounded_as_the_band_frame_carries_them() -> None:
    """The model is trained on what the live path decodes from an advert (1/16 g, 1° pitch, 2° roll)."""
    from gateway.decode import chumphae_band

    assert sf.G_UNIT == chumphae_band.G_UNIT
    rng = np.random.default_rng(5)
    t = np.arange(0, 6, 1 / 50)
    xyz = rng.normal(0, 0.4, (len(t), 3)) + [0.1, 0.3, 0.9]
    ts, ms = sf.summarise(t, xyz, 50.0)
    assert len(ts) == 6
    for row in ms:
        m = Motion(*row.tolist())
        key = bytes(range(16))
        frame = chumphae_band.encode("C0:FF:EE:00:00:01", key, chumphae_band.BandState(seq=1, motion=m))
        got = chumphae_band.decode_frame("C0:FF:EE:00:00:01", key, frame).motion
        assert got is not None
        assert (got.max_g, got.min_g, got.mean_g, got.pitch_deg, got.roll_deg) == pytest.approx(tuple(row.tolist()))


@needs_data
@pytest.mark.parametrize("set_, name, hz", FALLS[:2])
def test_adverts_heard_at_jittered_times_still_raise_the_fall(set_: str, name: str, hz: int) -> None:
    """Live, a summary is stamped when its advert is heard (±0.45 s here, one second lost in five): the
    windows are spans of time, not counts, so the fall is still found, once."""
    ts, ms = summaries(set_, name, hz)
    rng = np.random.default_rng(11)
    keep = (rng.random(len(ts)) > 0.2) | (ms[:, sf.MAX] >= sf.CANDIDATE_G)
    jittered = ts[keep] + rng.uniform(-0.45, 0.45, int(keep.sum()))
    (d,) = live(jittered, ms[keep])
    assert d.details["summary_model"] is True and 0 < d.details["decided_after_s"] <= 10


@pytest.mark.slow
def test_eval_falls_prints_the_summary_models_rows_beside_the_rule(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/eval_falls.py on two tiny sets in the real sets' shape: the summary section runs end to end."""
    from tests.detect.test_fall_train import labelled_synthetic_set

    root = tmp_path / "sets"
    root.mkdir()
    labelled_synthetic_set(root / "one")
    labelled_synthetic_set(root / "two")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import eval_falls as ev
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert ev.main(["--data", str(root), "--summary-only", "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    for label in ("summary model (one →)", "summary model (two →)", "summary model (leave-one-subject-out)",
                  "summary rule (1 s)", "peak ≥ 3 g"):
        assert label in out, label
    assert "(the same as offline)" in out and "DIFFERENT" not in out
    assert re.search(r"summary step speed .* rule [\d,]+×, model [\d,]+× real time", out)
    assert ev.main(["--data", str(root), "--cache", str(tmp_path / "cache")]) == 0  # the full run has them too
    out = capsys.readouterr().out
    assert "summary model, cross-set" in out and "summary model (leave-one-subject-out)" in out
    assert "summary rule (1 s)" in out and "== cross-set: trained on one set" in out


# --- falls-12: hand-made summaries as an advert carries them; walking on after an impact --------------------
WALK = Motion(1.5, 0.5, 1.02, -70.0, 10.0)  # under CANDIDATE_G: the impact is the only candidate
IMPACT = Motion(3.2, 0.3, 1.2, -20.0, 30.0)


def _after_impact(after: Motion, model: FallModel) -> list[Detection]:
    """8 s of walking, an impact, then 12 s of `after`, through the summary step alone (threshold 0: every
    decision is returned with its probability)."""
    state = PatientState(patient_id=1)
    out: list[Detection] = []
    for i, m in enumerate([WALK] * 8 + [IMPACT] + [after] * 12):
        r = Reading(address="a", kind="chumphae", rssi=-70, receiver="rx", t=T0 + timedelta(seconds=i),
                    authenticated=True, motion=m)
        state, d = fs.step(state, r, TH, r.t, model=model)
        out += [x for x in d if x.t == T0 + timedelta(seconds=8)]
    return out


def test_hand_made_summaries_are_judged_as_an_advert_carries_them() -> None:
    """A simulator's or a test's Motion is not on the advert's grid (1/16 g, 1°, 2°); the model was trained on
    that grid and a band can send nothing else, so the step rounds first: lying at 1.02/0.98 g after an impact
    is judged as the 1.00/1.00 g a band would send (before falls-12: 0.86 against 0.82, the trees saw a spread
    of 0.04 g no advert can carry)."""
    shipped = fall_summary_model.shipped()
    assert shipped is not None
    m = replace(shipped, threshold=0.0)
    (flat,) = _after_impact(Motion(1.0, 1.0, 1.0, 5.0, 80.0), m)
    (near,) = _after_impact(Motion(1.02, 0.98, 1.01, 5.3, 80.9), m)
    assert near.confidence == flat.confidence >= shipped.threshold  # lying still after an impact: a fall
    assert near.details["peak_g"] == 3.19  # 3.2 g as the advert carries it (3.1875), to 2 decimals


def test_an_impact_then_walking_on_is_not_a_fall() -> None:
    """An impact followed by 12 s of steady walking-like seconds (spread 1 g, mean 1 g, none loud) is no fall,
    whatever the trees say (before falls-12 they said 0.61 against a threshold of 0.46); lying still after the
    same impact still is one."""
    shipped = fall_summary_model.shipped()
    assert shipped is not None
    (d,) = _after_impact(Motion(1.5, 0.5, 1.0, 5.0, 80.0), replace(shipped, threshold=0.0))
    assert d.confidence == 0.0 < shipped.threshold  # fall_summary_features.walks_on
    (lying,) = _after_impact(Motion(1.0, 1.0, 1.0, 5.0, 80.0), replace(shipped, threshold=0.0))
    assert lying.confidence >= shipped.threshold
    # the band's flag does not overrule walking on (evidence, not proof)
    state = PatientState(patient_id=1)
    flagged: list[Detection] = []
    for i, m in enumerate([WALK] * 8 + [IMPACT] + [Motion(1.5, 0.5, 1.0, 5.0, 80.0)] * 12):
        r = Reading(address="a", kind="chumphae", rssi=-70, receiver="rx", t=T0 + timedelta(seconds=i),
                    authenticated=True, motion=m, fall_flag=i >= 8)
        state, found = fs.step(state, r, TH, r.t, model=shipped)
        flagged += found
    assert flagged == []


def test_walking_on_is_read_from_the_features() -> None:
    """The veto is the same offline (scripts/eval_falls.py, a row of features) and live (the step's features)."""
    ts = np.arange(0.0, 20.0)
    walk = np.tile([1.5, 0.5, 1.0, 5.0, 80.0], (20, 1))
    walk[5] = [3.2, 0.3, 1.2, -20.0, 30.0]
    x = sf.features(ts - ts[5], walk)
    assert sf.walks_on(x).tolist() == [True]
    for cols, v in (((sf.MEAN,), 1.25), ((sf.MAX, sf.MIN), 1.0), ((sf.MIN,), 1.2)):
        other = walk.copy()  # the mean 0.25 g off 1 g; lying still; +6…+8 s far calmer than +3…+5 s: not walking on
        other[5 + (6 if cols == (sf.MIN,) else 3):5 + 9, list(cols)] = v
        assert sf.walks_on(sf.features(ts - ts[5], other)).tolist() == [False], (cols, v)
    loud = walk.copy()
    loud[12, 0] = sf.CANDIDATE_G  # a loud second from +3 s: not steady walking
    assert sf.walks_on(sf.features(ts - ts[5], loud)).tolist() == [False]


def _simulated(seed: int, after: str) -> list[Motion]:
    """The simulator's trace (gateway.simulate.motion, 50 Hz): 10 s walking, its 3.5 g table slap, 15 s of
    walking or stillness, summarised a second at a time as the simulated band does (unrounded)."""
    import random

    from gateway.simulate import motion

    rng = random.Random(seed)
    s = motion.walking(rng, 10.0) + motion.table_slap(rng)
    s += motion.walking(rng, 15.0) if after == "walk" else motion.still(rng, 15.0)
    return [motion.summarise(s[i:i + motion.HZ]) for i in range(0, len(s) - motion.HZ + 1, motion.HZ)]


def test_the_simulators_table_slap_then_walking_is_no_fall_through_the_live_detector() -> None:
    """30 seeded traces through `chumphae.detect.detect` (every detector, the shipped summary model): the hand
    hitting a table and the wearer walking on raises no fall (before falls-12: 9 of these 30). Followed by
    stillness instead, the same slap is still called a fall in some (a known failure kind, docs/fall-detection.md,
    falls-12)."""
    alarmed = 0
    for seed in range(30):
        ms = _simulated(seed, "walk")
        alarmed += bool(live(np.arange(1.0, len(ms) + 1.0), np.array([[m.max_g, m.min_g, m.mean_g, m.pitch_deg,
                                                                        m.roll_deg] for m in ms])))
    assert alarmed == 0


def test_one_summary_rounded_live_as_the_training_copies_are() -> None:
    """`advertised` (the live step's pure-Python rounding of one Motion) is `as_advertised` (numpy, the training
    copies') written twice for speed: both must round, clip and pass NaN alike, or live and training part."""
    rng = np.random.default_rng(7)
    rows = np.column_stack([rng.uniform(-1, 20, 400), rng.uniform(-1, 20, 400), rng.uniform(-1, 20, 400),
                            rng.uniform(-120, 120, 400), rng.uniform(-200, 200, 400)])  # past every clip
    rows[::7, 3:] = np.nan  # bands that send no orientation
    rows[1::11, :3] = np.round(rows[1::11, :3] * sf.G_UNIT) / sf.G_UNIT + 0.5 / sf.G_UNIT  # exact ties
    want = sf.as_advertised(rows)
    for row, expect in zip(rows, want, strict=True):
        got = sf.advertised(Motion(*(float(v) for v in row)))
        values = [got.max_g, got.min_g, got.mean_g, got.pitch_deg, got.roll_deg]
        np.testing.assert_array_equal(np.array(values, dtype=np.float64), expect)
