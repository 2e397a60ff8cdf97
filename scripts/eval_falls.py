"""Evaluate the wrist fall detector on labelled recordings: cross-set, leave-subjects-out, baselines.

    .venv/bin/python scripts/eval_falls.py --data ../shared/data/falls [--units g|ms2] [--cache DIR] [--no-loso]
        [--summary-only]
    .venv/bin/python scripts/eval_falls.py --synthetic [--per-kind 30] [--daily-hours 4] [--seed 1]

--data is one set (a folder with `labels.csv`: name, kind fall|adl,
activity, subject, age, hz; one CSV per trial, `t,ax,ay,az` in g) or a
folder of such sets. Other shapes are read as `chumphae falls detect` reads
a file (other loggers' headers such as `timestamp,x,y,z`, `,` `;` or tab, an
ms/µs/ns clock) and as fall_data.read_labels reads labels: kind fall|adl in
any case, age optional, hz optional or empty (then the trial's own stamps
give it), `--units g|ms2` for every trial or a `units` column (g|ms2) per
trial. Every set is read and checked before any long work; it prints what
it found (trials, falls, subjects, rates) and refuses with one line, exit
status 2, a set it cannot read (a missing column or file, a kind other than
fall|adl) or whose values are not in the stated units (the median over its
trials of the gravity check `chumphae falls detect` applies to a file).

With one set, the cross-set parts say they are not run (they need two);
the shipped model's figures and leave-subjects-out are printed (the latter
needs three subjects, and falls and daily activities left without each).
Every trial is followed by 15 s of stillness at its
last orientation (a band keeps streaming; the trials stop). A fall trial is
detected when the detector reports a fall anywhere in it; a daily-activity
trial is a false positive when it reports one anywhere. Per set it prints
sensitivity, specificity, the five daily-activity kinds with the most false
alarms, false alarms per hour with the set's daily-activity trials played
back to back (per subject, joined by a 1 s blend), and the decision delay.

Never on data a model was fitted to:
  - cross-set: a model trained (scripts/train_falls.py's procedure, with
    the ±2 g clipped and other-watch copies) on each set is scored on each other set, as
    recorded and clipped at ±2 g;
  - leave-subjects-out: within a set, each subject is scored by a model
    fitted on the other subjects only (threshold chosen inside the fold);
  - the shipped model (or --model's) is scored only on trials it was not
    trained on: the trials' contents are compared with the fingerprints of
    its training trials (fall_model.trials.txt beside fall_model.json,
    written by scripts/train_falls.py), so a folder named like a training set
    but holding other recordings is scored and the training trials under
    any other name are not (a set with some of them is scored on the rest,
    and says so). A converted copy (another rate or units) of a training
    trial is not recognised. A model file without fingerprints falls back on
    its set names.
Measured in the same run, on the same padded trials: the previous
rule-only detector (fall_stream.detect_falls_rules) and a peak threshold
(a fall when |a| ≥ 3 g anywhere), which were not fitted to these sets
either; and the summary-level rule (fall_summary.py) on per-second
summaries simulated from the same recordings (max/min/mean |a| and the
orientation at the end of each second; no band fall flag, as these
watches had none). Last, speed: the shipped model on the back-to-back
stream, offline and live (1 s batches), as × real time on one core.

The per-second summary model (falls-11; fall_summary_model.json, used by
fall_summary.py for bands that only advertise) is measured the same way:
cross-set both ways and leave-one-subject-out, on summaries simulated from
the padded trials, threshold chosen on the training data only; its rows are
printed beside the summary rule's and the peak threshold's of the same run,
and the cross-set models are also played through the live step
(fall_summary.step) as a check that the live path says what the offline
features say. The shipped summary model is scored too, on the trials it
was not trained on (the same sets as the raw model: its fingerprints).
--summary-only runs that part alone (a few minutes).

--synthetic keeps the synthetic set of scripts/synth_falls.py as a
regression check for recording defects (rates, jitter, repeated stamps,
clipping, m/s² files): not a yardstick for people.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chumphae.detect import fall_features as ff  # noqa: E402
from chumphae.detect import fall_summary_data, fall_summary_model, fall_train  # noqa: E402
from chumphae.detect import fall_summary_features as sf  # noqa: E402
from chumphae.detect.fall_data import (  # noqa: E402
    RECIPE_BAGS,
    RECIPE_DROP_KS,
    RECIPE_SUBJECT_POWER,
    RECIPE_SUBJECT_POWERS,
    RECIPE_SUBJECT_WEIGHT,
    RECIPES,
    LabelsError,
    SetFeatures,
    Trial,
    check_units,
    find_sets,
    fingerprints_path,
    pad_still,
    read_fingerprints,
    read_labels,
    set_features,
    training_set,
    trial_fingerprint,
    trial_recording,
    trial_seed,
)
from chumphae.detect.fall_detector import LiveFallDetector, detect_falls  # noqa: E402
from chumphae.detect.fall_model import MODEL_FILE, FallModel, load, shipped  # noqa: E402
from chumphae.detect.fall_stream import detect_falls_rules, prepare  # noqa: E402
from chumphae.detect.recordings import RecordingError, read_recording  # noqa: E402

Array = NDArray[np.float64]
PEAK_G = 3.0
TOLERANCE_S = 2.0  # synthetic set: a report within 2 s of the true impact


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- scoring --------------------------------------------------------------------------
@dataclass
class Figures:
    sens: float
    spec: float
    n_falls: int
    n_adl: int
    fa_per_h: float
    worst: list[tuple[str, int, int]]  # activity, false alarms, trials
    delay: list[float]

    def line(self) -> str:
        d = f"{statistics.median(self.delay):.1f}/{max(self.delay):.1f} s" if self.delay else "—"
        return (f"sens {self.sens:.3f}  spec {self.spec:.3f}  FA/h {self.fa_per_h:6.2f}  "
                f"delay med/max {d}  ({self.n_falls} falls, {self.n_adl} ADL)")


def figures(trials: list[Trial], detected: NDArray[np.bool_], delay: list[float], fa: int, hours: float) -> Figures:
    fall = np.array([t.fall for t in trials])
    kinds: Counter[str] = Counter()
    n_kind: Counter[str] = Counter()
    for t, d in zip(trials, detected.tolist(), strict=True):
        if not t.fall:
            n_kind[t.activity] += 1
            kinds[t.activity] += int(d)
    worst = [(k, c, n_kind[k]) for k, c in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))[:5] if c]
    return Figures(float(detected[fall].mean()) if fall.any() else float("nan"),
                   float((~detected[~fall]).mean()) if (~fall).any() else float("nan"),
                   int(fall.sum()), int((~fall).sum()), fa / hours if hours else float("nan"), worst, delay)


SPEC_GOAL = 0.95
SENS_GOAL = 0.96


def ranking(scores: Array, fall: NDArray[np.bool_]) -> tuple[float, float]:
    """(sensitivity at specificity SPEC_GOAL, specificity at sensitivity SENS_GOAL), the threshold swept on
    these very scores (trial score: highest candidate probability). How far a ranking is from the goal; not
    a detector's figure (no threshold chosen on training data reaches these)."""
    return fall_train.goal_ranking(scores, fall, SPEC_GOAL, SENS_GOAL)


def ranking_line(scores: Array, fall: NDArray[np.bool_]) -> str:
    s95, p96 = ranking(scores, fall)
    return (f"ranking (threshold swept on the test scores, not a detector's figure): "
            f"sens at spec {SPEC_GOAL:.2f} {s95:.3f}, spec at sens {SENS_GOAL:.2f} {p96:.3f}")


def test_scores(model: FallModel, S: SetFeatures) -> Array:
    """Per trial of S: the highest candidate probability (0 without candidates)."""
    p = model.proba(S.X) if len(S.X) else np.zeros(0)
    return fall_train.trial_scores(p, S.trial_of, len(S.trials))


def fired(p: Array, t: Array, threshold: float) -> Array:
    """Times of reported falls: candidates over threshold, one per refractory period."""
    out: list[float] = []
    for ti in t[np.argsort(t, kind="stable")][p[np.argsort(t, kind="stable")] >= threshold].tolist():
        if not out or ti >= out[-1] + 10.0:
            out.append(ti)
    return np.asarray(out)


def model_on_set(model: FallModel, S: SetFeatures, trial_mask: NDArray[np.bool_] | None = None
                 ) -> tuple[NDArray[np.bool_], list[float]]:
    """Per trial: detected?, and the decision delays of detected fall trials."""
    p = model.proba(S.X) if len(S.X) else np.zeros(0)
    hit = p >= model.threshold
    det = np.zeros(len(S.trials), dtype=bool)
    np.logical_or.at(det, S.trial_of[hit], True)
    delay: list[float] = []
    for k in np.flatnonzero(det).tolist():
        if S.trials[k].fall and (trial_mask is None or trial_mask[k]):
            rows = np.flatnonzero(hit & (S.trial_of == k))
            r = rows[np.argmin(S.t[rows])]
            delay.append(float(S.decided_at[r] - S.t[r]))
    return det, delay


# --- back-to-back daily activity ------------------------------------------------------
@dataclass
class B2B:
    """Candidates of the daily-activity trials played back to back, per subject."""

    X: Array
    t: Array
    subject: list[str]
    hours: dict[str, float]
    streams: dict[str, tuple[Array, Array, float]]  # subject → (t, xyz, hz) for the baselines


def back_to_back(trials: list[Trial]) -> B2B:
    by_subject: dict[str, list[Trial]] = {}
    for tr in trials:
        if not tr.fall:
            by_subject.setdefault(tr.subject, []).append(tr)
    Xs, ts, subs, hours, streams = [], [], [], {}, {}
    for subj, trs in by_subject.items():
        tt: list[Array] = []
        xx: list[Array] = []
        clock = 0.0
        hz = trs[0].hz
        for tr in trs:
            rt, rx = trial_recording(tr)
            order = np.argsort(rt, kind="stable")
            t, xyz = rt[order] - rt.min(), rx[order]
            if xx:  # 1 s blend from the last sample to the next trial's first, |a| kept sensible
                n = int(hz)
                w = (np.arange(1, n + 1) / (n + 1))[:, None]
                a, b = xx[-1][-1], xyz[0]
                mid = (1 - w) * a + w * b
                mag = (1 - w[:, 0]) * np.linalg.norm(a) + w[:, 0] * np.linalg.norm(b)
                mid = mid / np.maximum(np.linalg.norm(mid, axis=1), 1e-6)[:, None] * mag[:, None]
                tt.append(clock + np.arange(1, n + 1) / hz)
                xx.append(mid)
                clock += n / hz
            tt.append(clock + 1.0 / hz + t)
            xx.append(xyz)
            clock = float(tt[-1][-1])
        t_all, x_all = np.concatenate(tt), np.vstack(xx)
        hours[subj] = float(t_all[-1] - t_all[0]) / 3600
        streams[subj] = (t_all, x_all, hz)
        _, ss = ff.streams(t_all, x_all, hz)
        for s in ss:
            for c in ff.stream_candidates(s):
                Xs.append(c.features)
                ts.append(c.t)
                subs.append(subj)
    X = np.vstack(Xs) if Xs else np.zeros((0, len(ff.FEATURES)))
    return B2B(X, np.asarray(ts), subs, hours, streams)


def b2b_alarms(model: FallModel, b: B2B, subjects: set[str] | None = None) -> tuple[int, float]:
    subj = np.asarray(b.subject)
    total, hours = 0, 0.0
    p = model.proba(b.X) if len(b.X) else np.zeros(0)
    for s, h in b.hours.items():
        if subjects is not None and s not in subjects:
            continue
        m = subj == s
        total += len(fired(p[m], b.t[m], model.threshold))
        hours += h
    return total, hours


# --- training runs that never see the test data ----------------------------------------
def fit(S: SetFeatures, keep: NDArray[np.bool_], meta: dict[str, object], folds: int = 4, bags: int = 0,
        drop_ks: tuple[int, ...] = (), subject_weight: bool = False, subject_power: float = 1.0,
        subject_powers: tuple[float, ...] = ()) -> FallModel:
    """A model fitted on the trials in `keep` only (`bags`: fall_train.fit_model's bagging over subjects;
    `drop_ks`: its leaving out of subject-identifying features, falls-15; `subject_powers`: its choice of the
    subject-balance power inside the training set, falls-17)."""
    rows, trial_of, fall, groups = _kept(S, keep)
    acts = [S.trials[k].activity for k in np.flatnonzero(keep)]
    model, _ = fall_train.fit_model(S.X[rows], trial_of, fall, groups, meta, folds=folds, bags=bags,
                                    activities=acts, drop_ks=drop_ks, subject_weight=subject_weight,
                                    subject_power=subject_power, subject_powers=subject_powers)
    if subject_powers:
        say(f"    subject power chosen: {model.meta['subject_power']}; p → (sens at spec 0.95, spec at sens 0.96) "
            f"out of fold: {model.meta['power_choice']}")
    if drop_ks:
        say(f"    left out: {', '.join(model.meta['dropped_features']) or 'none'}; k → (sens at spec 0.95, spec at "
            f"sens 0.96) out of fold: {model.meta['drop_choice']}")
    return model


def _kept(S: SetFeatures, keep: NDArray[np.bool_]) -> tuple[NDArray[np.bool_], NDArray[np.int64], NDArray[np.bool_], list[str]]:
    """The candidates of the trials in `keep`, their trials renumbered 0.., the trials' labels and subjects."""
    idx = np.flatnonzero(keep)
    remap = -np.ones(len(S.trials), dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    rows = keep[S.trial_of]
    fall = np.array([S.trials[k].fall for k in idx])
    return rows, remap[S.trial_of[rows]], fall, [S.trials[k].subject for k in idx]


def loso(S: SetFeatures, T: SetFeatures, b: B2B, bags: int = 0, drop_ks: tuple[int, ...] = (),
         subject_weight: bool = False, subject_power: float = 1.0, subject_powers: tuple[float, ...] = ()
         ) -> tuple[Figures, list[float], Array]:
    """S: the set as recorded (scored); T: the same set as trained on (with its clipped and other-watch copies).
    Returns the figures, the per-fold thresholds and every trial's score by the model that held it out."""
    subjects = sorted({t.subject for t in S.trials})
    subj_of = np.array([t.subject for t in S.trials])
    subj_T = np.array([t.subject for t in T.trials])
    det = np.zeros(len(S.trials), dtype=bool)
    delay: list[float] = []
    thresholds: list[float] = []
    fa, hours = 0, 0.0
    scores = np.zeros(len(S.trials))
    for i, s in enumerate(subjects):
        held = subj_of == s
        model = fit(T, subj_T != s, {}, folds=3, bags=bags, drop_ks=drop_ks, subject_weight=subject_weight,
                    subject_power=subject_power, subject_powers=subject_powers)
        thresholds.append(model.threshold)
        scores[held] = test_scores(model, S)[held]
        d, dl = model_on_set(model, S, held)
        det[held] = d[held]
        delay += dl
        f, h = b2b_alarms(model, b, {s})
        fa += f
        hours += h
        say(f"    leave-subjects-out: {i + 1}/{len(subjects)} subjects done")
    return figures(S.trials, det, delay, fa, hours), thresholds, scores


# --- baselines on the same padded trials ------------------------------------------------
def padded(tr: Trial) -> tuple[Array, Array]:
    return pad_still(*trial_recording(tr), tr.hz, seed=trial_seed(tr.name))


def peak_times(t: Array, xyz: Array, hz: float) -> list[float]:
    out: list[float] = []
    for g in prepare(t, xyz, hz).grids:
        for i in np.flatnonzero(g.peak >= PEAK_G).tolist():
            if not out or g.t[i] >= out[-1] + 10.0:
                out.append(float(g.t[i]))
    return out


def summary_times(t: Array, xyz: Array, hz: float, model: FallModel | None = None) -> list[float]:
    """fall_summary.py's live step on per-second summaries simulated from the recording (no band fall flag):
    the summary rule (`model` None) or the summary model `model`."""
    from datetime import UTC, datetime, timedelta

    from chumphae.detect import PatientState, thresholds_for
    from chumphae.detect import fall_summary as fs
    from chumphae.values import Motion, Reading

    th = thresholds_for(adl_score=8)
    state = PatientState(patient_id=1)
    t0 = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
    found: list[float] = []
    ts, ms = sf.summarise(t, xyz, hz)
    for s, row in zip(ts.tolist(), ms.tolist(), strict=True):
        motion = Motion(*row)
        now = t0 + timedelta(seconds=s)
        r = Reading(address="C0:FF:EE:00:00:01", kind="chumphae", rssi=-70, receiver="rx", t=now,
                    authenticated=True, motion=motion)
        state, dets = fs.step(state, r, th, now, model=model)
        found += [(d.t - t0).total_seconds() for d in dets]
    state, dets = fs.tick(state, th, t0 + timedelta(seconds=float(t.max()) + 60), model=model)
    found += [(d.t - t0).total_seconds() for d in dets]
    return found


def baselines(trials: list[Trial], b: B2B) -> dict[str, Figures]:
    names = ("previous rules", f"peak ≥ {PEAK_G:g} g", "summary rule (1 s)")
    det = {n: np.zeros(len(trials), dtype=bool) for n in names}
    delay: dict[str, list[float]] = {n: [] for n in names}
    for k, tr in enumerate(trials):
        t, xyz = padded(tr)
        rules = detect_falls_rules(t, xyz, tr.hz)
        det[names[0]][k] = bool(rules)
        if rules and tr.fall:
            delay[names[0]].append(rules[0].decided_at - rules[0].t)
        det[names[1]][k] = bool(peak_times(t, xyz, tr.hz))
        det[names[2]][k] = bool(summary_times(t, xyz, tr.hz))
        if (k + 1) % 500 == 0:
            say(f"    baselines: {k + 1}/{len(trials)} trials")
    fa = dict.fromkeys(names, 0)
    hours = sum(b.hours.values())
    for t, xyz, hz in b.streams.values():
        fa[names[0]] += len(detect_falls_rules(t, xyz, hz))
        fa[names[1]] += len(peak_times(t, xyz, hz))
        fa[names[2]] += len(summary_times(t, xyz, hz))
    return {n: figures(trials, det[n], delay[n], fa[n], hours) for n in names}


def speed(model: FallModel, b: B2B) -> tuple[float, float]:
    """× real time of the shipped model on the back-to-back streams: offline, live in 1 s batches."""
    span = sum(float(t[-1] - t[0]) for t, _, _ in b.streams.values())
    offline, live = [], []
    for _ in range(3):
        t0 = time.process_time()
        for t, xyz, hz in b.streams.values():
            detect_falls(t, xyz, hz, model)
        offline.append(time.process_time() - t0)
        t0 = time.process_time()
        for t, xyz, hz in b.streams.values():
            det = LiveFallDetector(hz, model)
            edges = np.searchsorted(t, np.arange(t[0], t[-1] + 1.0, 1.0))
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                det.push(t[lo:hi], xyz[lo:hi])
            det.flush()
        live.append(time.process_time() - t0)
    return span / max(1e-9, statistics.median(offline)), span / max(1e-9, statistics.median(live))


# --- the per-second summary model (falls-11) ---------------------------------------------
def summary_b2b(b: B2B) -> B2B:
    """The back-to-back daily activity as summary candidates (same subjects, hours and streams)."""
    Xs, ts, subs = [], [], []
    for subj, (t, xyz, hz) in b.streams.items():
        X, tc, _ = sf.recording_features(*sf.summarise(t, xyz, hz))
        Xs.append(X)
        ts.append(tc)
        subs += [subj] * len(X)
    return B2B(np.vstack(Xs) if Xs else np.zeros((0, len(sf.FEATURES))), np.concatenate(ts) if ts else np.zeros(0),
               subs, b.hours, b.streams)


def fit_summary(S: SetFeatures, keep: NDArray[np.bool_], folds: int = 4) -> FallModel:
    """A summary model fitted on the trials in `keep` only (train_falls.py --summary's procedure), with the
    walking-on veto the shipped one runs with (fall_summary_model.SummaryModel)."""
    rows, trial_of, fall, groups = _kept(S, keep)
    X = S.X[rows]
    model, _ = fall_train.fit_model(X, trial_of, fall, groups, {}, folds=folds,
                                    features=sf.FEATURES, score=fall_summary_data.top_score(X))
    return fall_summary_model.vetoing(model)  # as shipped: the walking-on veto (falls-12)


def live_summary(trials: list[Trial], model: FallModel) -> Figures:
    """`model` through fall_summary.step on every padded trial (the live path, trial by trial)."""
    det = np.array([bool(summary_times(*padded(tr), tr.hz, model=model)) for tr in trials])
    return figures(trials, det, [], 0, 0.0)


def summary_section(sets: dict[str, Path], cache: Path | None, b2b: dict[str, B2B], no_loso: bool,
                    rows: dict[str, dict[str, Figures]], units: str = "g") -> None:
    """Cross-set and leave-one-subject-out figures of the summary model; fills rows[set][label]."""
    rec: dict[str, SetFeatures] = {}
    train: dict[str, SetFeatures] = {}
    sb: dict[str, B2B] = {}
    for name, folder in sets.items():
        say(f"{name}: per-second summaries …")
        rec[name] = fall_summary_data.set_features(name, folder, cache, units=units)
        train[name] = fall_summary_data.training_set(name, folder, cache, units=units)
        sb[name] = summary_b2b(b2b[name])
    shipped_summary = fall_summary_model.shipped()
    if shipped_summary is not None:
        raw = shipped()
        same = shipped_summary.meta.get("trained_on") == raw.meta.get("trained_on")
        seen = read_fingerprints(fingerprints_path(Path(str(resources.files("chumphae.detect").joinpath(MODEL_FILE)))))
        print("\n== shipped summary model on trials it was not trained on"
              + (" (the raw model's training sets: its fall_model.trials.txt) ==" if same and seen is not None
                 else " (known by set name) =="))
        for name, fg in score_unseen(shipped_summary, rec, sb, seen if same else None, model_set_names(shipped_summary),
                                     lambda trs: summary_b2b(back_to_back(trs))).items():
            rows[name]["shipped summary model"] = fg
    if len(rec) == 1:
        print("\n== summary model, cross-set: not run: it needs two sets ==")
    if len(rec) > 1:
        print("\n== summary model, cross-set: trained on one set's summaries, tested on another's ==")
        for a_name in rec:
            say(f"  summary model: training on {a_name} …")
            m = fit_summary(train[a_name], np.ones(len(train[a_name].trials), dtype=bool))
            for b_name, B in rec.items():
                if a_name == b_name:
                    continue
                det, delay = model_on_set(m, B)
                fa, h = b2b_alarms(m, sb[b_name])
                fg = figures(B.trials, det, delay, fa, h)
                rows[b_name][f"summary model ({a_name} →)"] = fg
                print(f"  {a_name:>9} → {b_name:<9} threshold {m.threshold:.2f}  {fg.line()}")
                print(f"  {'':21} worst ADL kinds: {worst(fg)}")
                say(f"  summary model {a_name} → {b_name}: the live step on every trial …")
                lv = live_summary(B.trials, m)
                same = "the same" if (lv.sens, lv.spec) == (fg.sens, fg.spec) else "DIFFERENT"
                print(f"  {'':21} through fall_summary.step (live path): sens {lv.sens:.3f}  spec {lv.spec:.3f} "
                      f"({same} as offline)")
    if not no_loso:
        print("\n== summary model, leave-one-subject-out within each set ==")
        for name, S in rec.items():
            why = loso_problem(S.trials)
            if why:
                print(f"  {name:10} not run: {why}")
                continue
            T = train[name]
            subjects = sorted({t.subject for t in S.trials})
            k, fold_of = fall_train.subject_folds(subjects, len(subjects))
            subj_of = np.array([fold_of[t.subject] for t in S.trials])
            subj_T = np.array([fold_of[t.subject] for t in T.trials])
            det = np.zeros(len(S.trials), dtype=bool)
            delay: list[float] = []
            ths: list[float] = []
            fa, hours = 0, 0.0
            for f in range(k):
                held = subj_of == f
                m = fit_summary(T, subj_T != f, folds=3)
                ths.append(m.threshold)
                d, dl = model_on_set(m, S, held)
                det[held] = d[held]
                delay += dl
                x, h = b2b_alarms(m, sb[name], {s for s in subjects if fold_of[s] == f})
                fa += x
                hours += h
            fg = figures(S.trials, det, delay, fa, hours)
            rows[name]["summary model (leave-one-subject-out)"] = fg
            print(f"  {name:10} {fg.line()}  thresholds {min(ths):.2f}–{max(ths):.2f}")
            print(f"  {'':10} worst ADL kinds: {worst(fg)}")


def summary_only(a: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    sets = load_sets(a.data, a.units)
    trials = {name: set_features(name, folder, a.cache, units=a.units).trials for name, folder in sets.items()}
    b2b = {name: back_to_back(trs) for name, trs in trials.items()}
    rows: dict[str, dict[str, Figures]] = {name: {} for name in sets}
    summary_section(sets, a.cache, b2b, a.no_loso, rows, a.units)
    print("\n== summary level, per set: the model's held-out rows beside the rule and the peak threshold ==")
    for name, trs in trials.items():
        say(f"  {name}: baselines …")
        base = baselines(trs, b2b[name])
        for label in ("summary rule (1 s)", f"peak ≥ {PEAK_G:g} g"):
            rows[name][label] = base[label]
        for label, fg in rows[name].items():
            print(f"  {name:10} {label:40} {fg.line()}")
            print(f"  {'':51} worst ADL kinds: {worst(fg)}")
    name0 = next(iter(b2b))
    rule_x, model_x = summary_speed(b2b[name0])
    print(f"\nsummary step speed ({name0} daily activities back to back as one Reading a second, one core, CPU time, "
          f"rule and model alternated, median of 3): rule {rule_x:,.0f}×, model {model_x:,.0f}× real time")
    print(f"evaluation took {time.perf_counter() - t_start:.0f} s")


def summary_speed(b: B2B) -> tuple[float, float]:
    """× real time of fall_summary.step over the back-to-back summaries: the rule, the shipped summary model."""
    from datetime import UTC, datetime, timedelta

    from chumphae.detect import PatientState, fall_summary_model, thresholds_for
    from chumphae.detect import fall_summary as fs
    from chumphae.values import Motion, Reading

    th = thresholds_for(adl_score=8)
    t0 = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
    readings = []
    span = 0.0
    for t, xyz, hz in b.streams.values():
        ts, ms = sf.summarise(t, xyz, hz)
        off = span + 3600.0
        readings += [Reading(address="C0:FF:EE:00:00:01", kind="chumphae", rssi=-70, receiver="rx",
                             t=t0 + timedelta(seconds=off + s), authenticated=True, motion=Motion(*row))
                     for s, row in zip(ts.tolist(), ms.tolist(), strict=True)]
        span = off + float(ts[-1]) if len(ts) else off
    secs = float(len(readings))
    model = fall_summary_model.shipped()
    runs: dict[str, list[float]] = {"rule": [], "model": []}
    for _ in range(3):
        for label, m in (("rule", None), ("model", model)):
            state = PatientState(patient_id=1)
            c0 = time.process_time()
            for r in readings:
                state, _ = fs.step(state, r, th, r.t, model=m)
            runs[label].append(time.process_time() - c0)
    return secs / max(1e-9, statistics.median(runs["rule"])), secs / max(1e-9, statistics.median(runs["model"]))


# --- main -----------------------------------------------------------------------------
def real(a: argparse.Namespace) -> None:
    t_start = time.perf_counter()
    sets = load_sets(a.data, a.units)
    recipes = a.recipes.split(",")
    for r in recipes:
        if r not in RECIPES:
            raise SystemExit(f"unknown recipe {r!r}; known: {', '.join(RECIPES)}")
    feats: dict[str, SetFeatures] = {}
    train: dict[str, dict[str, SetFeatures]] = {r: {} for r in recipes}
    clipped: dict[str, SetFeatures] = {}
    b2b: dict[str, B2B] = {}
    for name, folder in sets.items():
        say(f"{name}: candidates and features (cached in {a.cache}) …" if a.cache else f"{name}: features …")
        feats[name] = set_features(name, folder, a.cache, units=a.units)
        for r in recipes:
            train[r][name] = training_set(name, folder, a.cache, copies=RECIPES[r], units=a.units)
        clipped[name] = set_features(name, folder, a.cache, clip_g=2.0, units=a.units)
        say(f"{name}: daily activities back to back …")
        b2b[name] = back_to_back(feats[name].trials)
    model = load(a.model) if a.model else shipped()
    model_path = a.model or Path(str(resources.files("chumphae.detect").joinpath(MODEL_FILE)))
    seen = read_fingerprints(fingerprints_path(model_path))
    trained_names = model_set_names(model)

    print(f"\n== {'the model in ' + str(a.model) if a.model else 'shipped model'} on trials it was not trained on ==")
    if seen is None:
        print(f"  (no {fingerprints_path(model_path).name} beside the model: its training trials are known by "
              f"set name only: {', '.join(trained_names) or 'none'})")
    score_unseen(model, feats, b2b, seen, trained_names, back_to_back)

    if len(feats) == 1 and not a.no_cross:
        print(f"\n== cross-set: not run: it needs two sets and {a.data} holds one ({next(iter(feats))}); "
              "give a folder of set folders to train on each and test on the others ==")
    if len(feats) > 1 and not a.no_cross:
        print("\n== cross-set: trained on one set, tested on another ==")
        for a_name in feats:
            for b_name, B in feats.items():
                if a_name == b_name:
                    continue
                for r in recipes:
                    tag = f" [{r}]" if len(recipes) > 1 else ""
                    say(f"  training on {a_name}{tag} …")
                    T = train[r][a_name]
                    m = fit(T, np.ones(len(T.trials), dtype=bool), {}, bags=RECIPE_BAGS.get(r, 0),
                            drop_ks=RECIPE_DROP_KS.get(r, ()), subject_weight=r in RECIPE_SUBJECT_WEIGHT,
                            subject_power=RECIPE_SUBJECT_POWER.get(r, 1.0),
                            subject_powers=RECIPE_SUBJECT_POWERS.get(r, ()))
                    det, delay = model_on_set(m, B)
                    fa, h = b2b_alarms(m, b2b[b_name])
                    fg = figures(B.trials, det, delay, fa, h)
                    print(f"  {a_name:>9} → {b_name:<9}{tag} threshold {m.threshold:.2f}  {fg.line()}")
                    if "subject_power" in m.meta:
                        print(f"  {'':21} subject power (chosen on {a_name} alone): {m.meta['subject_power']}; "
                              f"out of fold {m.meta['power_choice']}")
                    if "dropped_features" in m.meta:
                        print(f"  {'':21} left out (chosen on {a_name} alone): "
                              f"{', '.join(m.meta['dropped_features']) or 'none'}")
                    print(f"  {'':21} worst ADL kinds: {worst(fg)}")
                    fall = np.array([t.fall for t in B.trials])
                    print(f"  {'':21} {ranking_line(test_scores(m, B), fall)}")
                    det, delay = model_on_set(m, clipped[b_name])
                    fg = figures(B.trials, det, delay, 0, 0.0)
                    print(f"  {'':21} {b_name} clipped at ±2 g: sens {fg.sens:.3f}  spec {fg.spec:.3f}")

    if not a.no_loso:
        print("\n== leave-subjects-out within each set (each subject scored by a model fitted without them) ==")
        for name, S in feats.items():
            if a.loso_sets and name not in a.loso_sets.split(","):
                continue
            why = loso_problem(S.trials)
            if why:
                print(f"  {name:10} not run: {why}")
                continue
            for r in recipes:
                tag = f" [{r}]" if len(recipes) > 1 else ""
                say(f"  {name}{tag}: leave-subjects-out, {len({t.subject for t in S.trials})} subjects …")
                fg, ths, sc = loso(S, train[r][name], b2b[name], RECIPE_BAGS.get(r, 0), RECIPE_DROP_KS.get(r, ()),
                                   r in RECIPE_SUBJECT_WEIGHT, RECIPE_SUBJECT_POWER.get(r, 1.0),
                                   RECIPE_SUBJECT_POWERS.get(r, ()))
                print(f"  {name:10}{tag} {fg.line()}  thresholds {min(ths):.2f}–{max(ths):.2f}")
                print(f"  {'':10} worst ADL kinds: {worst(fg)}")
                print(f"  {'':10} {ranking_line(sc, np.array([t.fall for t in S.trials]))} (pooled over the folds)")

    rows: dict[str, dict[str, Figures]] = {name: {} for name in feats}
    if not a.no_summary:
        summary_section(sets, a.cache, b2b, a.no_loso, rows, a.units)
    if a.no_baselines:
        print(f"\nevaluation took {time.perf_counter() - t_start:.0f} s")
        return

    print("\n== baselines in the same run (not fitted to these sets), the summary model's held-out rows beside ==")
    for name, S in feats.items():
        say(f"  {name}: baselines …")
        for bname, fg in [*baselines(S.trials, b2b[name]).items(), *rows[name].items()]:
            print(f"  {name:10} {bname:40} {fg.line()}")
            print(f"  {'':51} worst ADL kinds: {worst(fg)}")

    name0 = next(iter(b2b))
    off, live = speed(model, b2b[name0])
    size = len(resources.files("chumphae.detect").joinpath("fall_model.json").read_bytes()) if not a.model \
        else Path(a.model).stat().st_size
    print(f"\nspeed ({name0} daily activities back to back, one core, CPU time, median of 3): "
          f"offline {off:,.0f}× real time, live in 1 s batches {live:,.0f}× real time; "
          f"model file {size / 1024:.0f} KiB, {len(model.trees)} trees")
    print(f"evaluation took {time.perf_counter() - t_start:.0f} s")


def model_set_names(model: FallModel) -> list[str]:
    """The set names in a model's `trained_on` ("umafall (208 falls, 538 daily activities)" → "umafall")."""
    return [str(x).split(" (")[0] for x in model.meta.get("trained_on", [])]


def held_out(name: str, trials: list[Trial], seen: set[str] | None, trained_names: list[str]
             ) -> tuple[NDArray[np.bool_], str]:
    """Which trials of a set the model may be scored on, and a note saying what was decided and why.

    With the fingerprints of the model's training trials (`seen`, fall_data.write_fingerprints) the trials are
    compared by content: a folder named like a training set but holding other recordings is scored, the
    training trials under any folder or file name are not. Without them, only by set name."""
    n = len(trials)
    if seen is None:
        if name in trained_names:
            return np.zeros(n, dtype=bool), ("not reported: the model was trained on a set of this name "
                                             "(no fingerprints to compare contents)")
        return np.ones(n, dtype=bool), ""
    known = np.array([trial_fingerprint(t) in seen for t in trials], dtype=bool)
    k = int(known.sum())
    if k == n:
        return ~known, f"not reported: all {n} trials are ones the model was trained on (same content)"
    if k:
        return ~known, (f"{k} of {n} trials are ones the model was trained on (same content): "
                        f"scored on the other {n - k}")
    if name in trained_names:
        return ~known, (f"named like a set the model was trained on, but none of its {n} trials is one of its "
                        "training trials (by content): scored")
    return ~known, ""


def score_unseen(model: FallModel, feats: dict[str, SetFeatures], b2b: dict[str, B2B], seen: set[str] | None,
                 trained_names: list[str], as_b2b: Callable[[list[Trial]], B2B]) -> dict[str, Figures]:
    """`model` on each set's trials it was not trained on (`held_out`), printed; `as_b2b` makes the back-to-back
    daily activity of a part of a set (for a set only partly unseen)."""
    out: dict[str, Figures] = {}
    for name, S in feats.items():
        if seen is not None:
            say(f"{name}: comparing {len(S.trials)} trials with the model's training trials …")
        keep, note = held_out(name, S.trials, seen, trained_names)
        if note:
            print(f"  {name:10} {note}")
        if not keep.any():
            continue
        kept = [t for t, k in zip(S.trials, keep.tolist(), strict=True) if k]
        det, delay = model_on_set(model, S, keep)
        fa, h = b2b_alarms(model, b2b[name] if keep.all() else as_b2b(kept))
        out[name] = fg = figures(kept, det[keep], delay, fa, h)
        print(f"  {name:10} {fg.line()}")
        print(f"  {'':10} worst ADL kinds: {worst(fg)}")
    return out


def load_sets(data: Path, units: str) -> dict[str, Path]:
    """The sets under `data`, each read and checked (labels, files, units) before any long work; one line per set
    on stdout saying what was found (and on stderr any trials judged with an odd gravity level)."""
    sets = find_sets(data)
    print(f"{len(sets)} set{'s' if len(sets) > 1 else ''} in {data} (files in {units} unless a units column says "
          "otherwise):")
    for name, folder in sets.items():
        trials = read_labels(name, folder, units)
        say(f"{name}: reading and checking {len(trials)} trials …")
        for w in check_units(name, trials):
            say(w)
        falls = sum(t.fall for t in trials)
        hz = sorted({t.hz for t in trials})
        print(f"  {name:10} {len(trials)} trials ({falls} falls, {len(trials) - falls} daily activities), "
              f"{len({t.subject for t in trials})} subjects, {hz[0]:g}–{hz[-1]:g} Hz")
    return sets


def loso_problem(trials: list[Trial]) -> str | None:
    """Why leave-subjects-out cannot run on a set (each fold trains on the other subjects), or None."""
    subjects = sorted({t.subject for t in trials})
    if len(subjects) < 3:
        return f"needs at least 3 subjects (has {len(subjects)})"
    for s in subjects:
        rest = [t.fall for t in trials if t.subject != s]
        if all(rest) or not any(rest):
            return f"without subject {s.split(':', 1)[1]} no {'daily activities' if all(rest) else 'falls'} are left to train on"
    return None


def worst(fg: Figures) -> str:
    return ", ".join(f"{k} {c}/{n}" for k, c, n in fg.worst) or "none"


def synthetic(a: argparse.Namespace) -> None:
    import synth_falls

    with tempfile.TemporaryDirectory(prefix="falls_") as tmp:
        d = Path(tmp)
        synth_falls.generate(d, a.per_kind, a.daily_hours, a.seed)
        manifest = json.loads((d / "manifest.json").read_text())
        ours: dict[str, list[float]] = {}
        rules: dict[str, list[float]] = {}
        base: dict[str, list[float]] = {}
        for m in manifest:
            rec = read_recording(d / m["file"], m["units"])
            ours[m["file"]] = [f.t for f in detect_falls(rec.t, rec.xyz, float(m["hz"]))]
            rules[m["file"]] = [f.t for f in detect_falls_rules(rec.t, rec.xyz, float(m["hz"]))]
            base[m["file"]] = peak_times(rec.t, rec.xyz, float(m["hz"]))
        print(f"synthetic set (seed {a.seed}): recording defects, not people")
        for label, found in (("model", ours), ("previous rules", rules), (f"peak ≥ {PEAK_G:g} g", base)):
            s = score_synthetic(manifest, found)
            print(f"  {label:16} sens {s['sensitivity']:.3f}  spec {s['specificity']:.3f}  "
                  f"FA/h {s['false_alarms_per_hour']:.2f}")


def score_synthetic(manifest: list[dict[str, object]], found: dict[str, list[float]]) -> dict[str, object]:
    """The synthetic set's truth has impact times: a fall counts when reported within 2 s of it."""
    tp = fn = tn = fp = fa_daily = 0
    hours = 0.0
    for m in manifest:
        times = found[str(m["file"])]
        impacts = [float(x) for x in m["impacts"]]  # type: ignore[attr-defined]
        if str(m["kind"]) == "daily":
            fa_daily += len(times)
            hours += float(m["hours"])  # type: ignore[arg-type]
            continue
        hit = [any(abs(x - imp) <= TOLERANCE_S for x in times) for imp in impacts]
        stray = [x for x in times if all(abs(x - imp) > TOLERANCE_S for imp in impacts)]
        if m["fall"]:
            tp += sum(hit)
            fn += len(hit) - sum(hit)
        else:
            tn += not stray
            fp += bool(stray)
    return {"sensitivity": tp / max(1, tp + fn), "specificity": tn / max(1, tn + fp),
            "false_alarms_per_hour": fa_daily / hours if hours else float("nan"),
            "falls": tp + fn, "negatives": tn + fp}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--cache", type=Path, default=None, help="folder for cached features")
    ap.add_argument("--units", choices=("g", "ms2"), default="g",
                    help="units of the trials' ax/ay/az (a units column in labels.csv overrides it per trial)")
    ap.add_argument("--model", type=Path, default=None, help="score this model file instead of the shipped one")
    ap.add_argument("--no-loso", action="store_true", help="skip leave-subjects-out (the slow part)")
    ap.add_argument("--summary-only", action="store_true", help="only the per-second summary model and its baselines")
    ap.add_argument("--recipes", default="shipped",
                    help="training recipes side by side, comma-separated (fall_data.RECIPES: shipped, ownpad, wearer, bag5, subjinv, subjw, subjhalf, subjauto)")
    ap.add_argument("--no-cross", action="store_true", help="skip the cross-set part")
    ap.add_argument("--loso-sets", default="", help="leave-subjects-out on these sets only (comma-separated)")
    ap.add_argument("--no-summary", action="store_true", help="skip the per-second summary model's part")
    ap.add_argument("--no-baselines", action="store_true", help="skip the baselines and the speed (end after the model)")
    ap.add_argument("--synthetic", action="store_true")
    ap.add_argument("--per-kind", type=int, default=30)
    ap.add_argument("--daily-hours", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    if a.synthetic:
        synthetic(a)
        return 0
    if a.data is None:
        ap.error("give --data DIR (labelled recordings) or --synthetic")
    try:
        if a.summary_only:
            summary_only(a)
        else:
            real(a)
    except (FileNotFoundError, LabelsError, RecordingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
