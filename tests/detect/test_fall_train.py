"""The training script: runs end to end, same data → same bytes, and the shipped format predicts as scikit-learn does."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from chumphae.detect import fall_train
from chumphae.detect.fall_data import read_labels, set_features
from chumphae.detect.fall_detector import detect_falls
from chumphae.detect.fall_model import ModelError, from_dict, load, shipped
from tests.detect import wrist

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CHUMPHAE_FALLS_DATA", ROOT.parent / "shared" / "data" / "falls"))


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def labelled_synthetic_set(folder: Path) -> Path:
    """A tiny set in the real sets' shape (labels.csv + one CSV per trial), three subjects."""
    folder.mkdir()
    rows = []
    for subj in range(3):
        for k in range(3):
            seed = 10 * subj + k
            t, xyz, _ = wrist.clean_fall(seed=seed, peak_g=3.0 + k, after=("still", "fidget", "still")[k])
            rows.append((f"S{subj}_fall_{k}", "fall", "fall", t, xyz))
            t, xyz = (wrist.claps(seed=seed) if k != 1 else wrist.table_knock(seed=seed))
            rows.append((f"S{subj}_adl_{k}", "adl", "claps" if k != 1 else "knock", t, xyz))
            t, xyz, _ = wrist.clean_fall(seed=seed + 100, after="walk")
            rows.append((f"S{subj}_stumble_{k}", "adl", "stumble", t, xyz))
    with (folder / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "kind", "activity", "subject", "age", "hz"])
        for name, kind, act, t, xyz in rows:
            wrist.write_csv(folder / f"{name}.csv", t, xyz, extra=False)
            w.writerow([name, kind, act, name.split("_")[0], "", 50])
    return folder


def test_training_is_deterministic_and_the_model_works(tmp_path: Path) -> None:
    data = labelled_synthetic_set(tmp_path / "synthset")
    train = script("train_falls")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert train.main(["--data", str(data), "--out", str(a)]) == 0
    assert train.main(["--data", str(data), "--out", str(b), "--cache", str(tmp_path / "cache")]) == 0
    assert a.read_bytes() == b.read_bytes()
    model = load(a)
    assert model.meta["trained_on"] and 0 < model.threshold < 1 and model.trees
    t, xyz, impact = wrist.clean_fall(seed=77)
    falls = detect_falls(t, xyz, 50.0, model)
    assert [round(f.t) for f in falls] == [round(impact)]


def test_the_exported_trees_predict_what_scikit_learn_predicts(tmp_path: Path) -> None:
    data = labelled_synthetic_set(tmp_path / "synthset")
    S = set_features("synthset", data, progress=False)
    fall = np.array([t.fall for t in S.trials])
    rows, y = fall_train.training_rows(fall, S.X, S.trial_of)
    clf = fall_train._fit(S.X[rows], y)
    model = from_dict(json.loads(fall_train.dumps(fall_train.export(clf, 0.5, {}))))
    X = np.vstack([S.X, np.where(np.random.default_rng(0).random(S.X.shape) < 0.2, np.nan, S.X)])
    assert model.proba(X) == pytest.approx(clf.predict_proba(X)[:, 1], abs=1e-9)


def test_a_model_for_other_features_is_refused(tmp_path: Path) -> None:
    d = json.loads((ROOT / "chumphae" / "detect" / "fall_model.json").read_text())
    d["features"] = d["features"][:-1]
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="features"):
        load(p)


def test_the_shipped_model_is_small_and_names_its_training_data() -> None:
    size = (ROOT / "chumphae" / "detect" / "fall_model.json").stat().st_size
    assert size <= 1_000_000
    names = " ".join(shipped().meta["trained_on"])
    assert "fallalld" in names and "umafall" in names


@pytest.mark.skipif(not (DATA / "umafall" / "labels.csv").is_file(),
                    reason=f"real fall recordings not found at {DATA} (set CHUMPHAE_FALLS_DATA)")
def test_training_on_a_small_subset_of_the_real_sets(tmp_path: Path) -> None:
    train = script("train_falls")
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert train.main(["--data", str(DATA), "--out", str(a), "--subset", "6"]) == 0
    assert train.main(["--data", str(DATA), "--out", str(b), "--subset", "6"]) == 0
    assert a.read_bytes() == b.read_bytes()
    meta = load(a).meta
    assert meta["trained_on"] == ["fallalld (6 falls, 6 daily activities)", "umafall (6 falls, 6 daily activities)"]
    assert len(read_labels("umafall", DATA / "umafall")) > 12


def test_own_padding_copies_the_recordings_rest_and_the_protocol_padding_is_unchanged() -> None:
    """pad_own (falls-13's training variant) appends the last direction at the stillest second's level with its
    per-axis noise; a recording that is never still gets capped noise; pad_still (evaluation) is as before."""
    from chumphae.detect.fall_data import REST_NOISE_MAX_G, pad_own, pad_still, rest_floor

    rng = np.random.default_rng(7)
    hz = 50.0
    t = np.arange(0, 20, 1 / hz)
    xyz = np.tile([0.0, 0.6, 0.78], (len(t), 1)) + rng.normal(0, [0.002, 0.005, 0.01], (len(t), 3))
    xyz[: int(8 * hz)] += rng.normal(0, 0.3, (int(8 * hz), 3))  # active first, still for the last 12 s
    noise, level = rest_floor(t, xyz, hz)
    assert np.allclose(noise, [0.002, 0.005, 0.01], rtol=0.35)
    assert abs(level - float(np.linalg.norm([0.0, 0.6, 0.78]))) < 0.01
    tp, xp = pad_own(t, xyz, hz, seed=1)
    tail = xp[len(t):]
    assert len(tail) == int(15 * hz) and tp[len(t)] > t[-1]
    assert np.allclose(tail.std(axis=0), noise, rtol=0.15)
    assert abs(float(np.linalg.norm(tail.mean(axis=0))) - level) < 0.005
    # never still: noise capped
    busy = xyz + rng.normal(0, 0.3, xyz.shape)
    noise_b, level_b = rest_floor(t, busy, hz)
    assert np.all(noise_b == REST_NOISE_MAX_G) and 0.9 <= level_b <= 1.1
    # the evaluation's padding: 1 g, 0.004 g of noise, whatever the recording
    _, xs = pad_still(t, xyz, hz, seed=1)
    assert abs(float(np.linalg.norm(xs[len(t):], axis=1).mean()) - 1.0) < 0.001
    assert np.allclose(xs[len(t):].std(axis=0), 0.004, rtol=0.15)


def test_another_wearer_moves_faster_or_slower_and_harder_or_softer_around_gravity() -> None:
    """as_other_wearer (falls-14's training variant): the clock divided by a speed in WEARER_SPEED (rate × speed),
    the motion around gravity scaled by a gain in WEARER_GAIN, stillness left at 1 g, a rail kept, seeded."""
    from chumphae.detect.fall_data import (
        TRAINING_COPIES,
        WEARER_GAIN,
        WEARER_RECIPE,
        WEARER_SPEED,
        as_other_wearer,
        rail_of,
    )

    hz = 50.0
    t = np.arange(0, 20, 1 / hz)
    xyz = np.tile([0.0, 0.6, 0.8], (len(t), 1))
    hit = (t >= 10.0) & (t < 10.1)
    xyz[hit] += [3.0, 0.0, 0.0]  # a 3 g jolt sideways, still before and after
    speeds, gains = [], []
    for seed in range(40):
        t2, x2, hz2 = as_other_wearer(t, xyz, hz, seed)
        speed = (t[-1] - t[0]) / (t2[-1] - t2[0])
        assert WEARER_SPEED[0] - 1e-9 <= speed <= WEARER_SPEED[1] + 1e-9
        assert hz2 == pytest.approx(hz * speed)
        still = t < 8.0
        assert np.allclose(x2[still], xyz[still], atol=1e-9)  # gravity untouched
        gain = float(x2[hit][:, 0].max() - x2[still][:, 0].mean()) / 3.0
        assert WEARER_GAIN[0] - 0.1 <= gain <= WEARER_GAIN[1]  # the 1 s gravity estimate takes a little of it
        speeds.append(speed)
        gains.append(gain)
        t3, x3, _ = as_other_wearer(t, xyz, hz, seed)
        assert np.array_equal(t2, t3) and np.array_equal(x2, x3)
    assert min(speeds) < 0.9 and max(speeds) > 1.1 and max(gains) - min(gains) > 0.3
    # a recording at a ±8 g rail stays within it
    loud = xyz.copy()
    loud[hit] = [8.0, 0.6, 0.8]
    assert rail_of(loud) == 8.0 and rail_of(xyz) is None
    assert max(float(np.abs(as_other_wearer(t, loud, hz, s)[1]).max()) for s in range(20)) <= 8.0
    # the shipped copies are unchanged; the variant adds one wearer copy
    assert all(c.wearer == 0 for c in TRAINING_COPIES)
    assert WEARER_RECIPE[: len(TRAINING_COPIES)] == TRAINING_COPIES and WEARER_RECIPE[-1].wearer == 1


def test_bagging_over_subjects_exports_the_mean_log_odds_into_one_file_deterministically() -> None:
    """fit_model(bags=K) (falls-14's variant): K models on bootstraps of the subjects, their log-odds averaged;
    the exported file (one tree list, leaf values / K) predicts what the models predict; same data, same bytes."""
    from chumphae.detect.fall_features import FEATURES

    rng = np.random.default_rng(3)
    n_trials = 120
    fall = np.arange(n_trials) % 3 == 0
    groups = [f"s{k % 8}" for k in range(n_trials)]
    trial_of = np.repeat(np.arange(n_trials), 2)
    X = rng.normal(0, 1, (len(trial_of), len(FEATURES)))
    X[:, 0] += 2.0 * fall[trial_of]
    model, d = fall_train.fit_model(X, trial_of, fall, groups, {}, folds=3, bags=3)
    _, d2 = fall_train.fit_model(X, trial_of, fall, groups, {}, folds=3, bags=3)
    assert fall_train.dumps(d) == fall_train.dumps(d2)
    assert len(model.trees) == 3 * fall_train.PARAMS["max_iter"]
    rows, y = fall_train.training_rows(fall, X, trial_of)
    clfs = fall_train._fit_bagged(X[rows], y, np.asarray(groups)[trial_of[rows]], 3)
    assert np.allclose(model.proba(X), fall_train._proba(clfs, X), atol=1e-6)
    single, _ = fall_train.fit_model(X, trial_of, fall, groups, {}, folds=3)
    assert not np.allclose(single.proba(X), model.proba(X), atol=1e-3)  # the bags are not the one model
    assert 0.0 < model.threshold < 1.0
