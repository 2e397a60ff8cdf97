"""scripts/windows_falls.py and scripts/features_falls.py: saved windows give back the exact features (kept from rotting)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from chumphae.detect import fall_features as ff
from tests.detect import wrist

ROOT = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_a_saved_window_gives_the_features_of_the_whole_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    wf = _script("windows_falls")
    screen = _script("features_falls")
    monkeypatch.setattr(ff, "features_at", wf._capture)
    t, xyz, impact = wrist.clean_fall(seed=5, peak_g=4.0, after="still")
    t2, xyz2 = wrist.claps(seed=5)
    found = 0
    for tt, xx in ((t, xyz), (t2, xyz2)):
        wf._captured.clear()
        _, ss = ff.streams(tt, xx, 50.0)
        cands = [c for s in ss for c in ff.stream_candidates(s)]
        assert len(cands) == len(wf._captured) > 0
        for c, (w_xyz, w_peak, w_clip) in zip(cands, wf._captured, strict=True):
            s, i = wf.window_stream(w_xyz, w_peak, w_clip)
            assert np.array_equal(wf._orig(s, i), c.features, equal_nan=True)
            for names, fn in screen.EXTRAS.values():
                assert len(fn(s, i)) == len(names)
            found += abs(c.t - impact) < 1.0
    assert found == 1  # the fall's impact is among the candidates


def test_the_kernel_screen_is_orientation_free_seeded_and_its_ridge_is_scikit_learns() -> None:
    rf = _script("rocket_falls")
    wf = _script("windows_falls")
    rng = np.random.default_rng(0)
    xyz, peak = [], []
    for seed in range(4):
        for tt, xx in (wrist.clean_fall(seed=seed, peak_g=3.0 + seed, after="still")[:2], wrist.claps(seed=seed)):
            _, ss = ff.streams(tt, xx, 50.0)
            for s in ss:
                for i in ff.candidates(s):
                    w = np.full((wf.WIN, 3), np.nan)
                    p = np.full(wf.WIN, np.nan)
                    a, b = max(0, i - wf.LO), min(len(s.t), i + wf.HI)
                    w[a - (i - wf.LO):b - (i - wf.LO)] = s.xyz[a:b]
                    p[a - (i - wf.LO):b - (i - wf.LO)] = s.peak[a:b]
                    xyz.append(w)
                    peak.append(p)
    X3, P = np.stack(xyz), np.stack(peak)
    ch = rf.channels(X3, P)
    assert ch.shape == (len(X3), 4, wf.WIN) and np.isfinite(ch).all()
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert np.allclose(rf.channels(X3 @ q.T, P), ch, atol=1e-4)  # a watch turned on the wrist: same input
    r1, r2 = rf.fit_rocket(ch), rf.fit_rocket(ch)
    F = r1.transform(ch)
    assert np.array_equal(F, r2.transform(ch)) and F.shape == (len(ch), 2016)
    assert np.array_equal(F[3:4], r1.transform(ch[3:4]))  # a row alone gives what it gives in a batch

    from sklearn.linear_model import Ridge

    Xr = rng.normal(size=(300, 12)).astype(np.float32)
    y = (Xr[:, 0] + 0.5 * rng.normal(size=300) > 0.8).astype(np.int64)
    half = rf.stats(Xr[:150], y[:150]) + rf.stats(Xr[150:], y[150:])
    mine = rf.ridge_path(half, (0.01,))[0]
    w = np.where(y == 1, 0.5 / y.sum(), 0.5 / (1 - y).sum())
    Xd = Xr.astype(np.float64)
    mu = w @ Xd
    sd = np.sqrt(w @ (Xd - mu) ** 2) + 1e-6
    ref = Ridge(alpha=0.01).fit((Xd - mu) / sd, np.where(y == 1, 1.0, -1.0), sample_weight=w)
    assert np.allclose(mine.score(Xr), ref.predict((Xd - mu) / sd), atol=1e-6)


def test_the_time_shift_screen_moves_only_the_falls_top_candidate_inside_its_saved_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf = _script("windows_falls")
    sh = _script("shift_falls")
    from chumphae.detect.fall_data import SetFeatures, Trial

    monkeypatch.setattr(ff, "features_at", wf._capture)
    wf._captured.clear()
    trials, rows, of = [], [], []
    for k, (tt, xx) in enumerate((wrist.clean_fall(seed=3, peak_g=4.0, after="still")[:2], wrist.claps(seed=3))):
        trials.append(Trial("s", f"t{k}", tmp_path, k == 0, "fall" if k == 0 else "claps", "S01", 50.0))
        _, ss = ff.streams(tt, xx, 50.0)
        for c in (c for s in ss for c in ff.stream_candidates(s)):
            rows.append(c.features)
            of.append(k)
    monkeypatch.setattr(ff, "features_at", wf._orig)
    np.savez(tmp_path / "windows-s-rec.npz", xyz=np.stack([c[0] for c in wf._captured]),
             peak=np.stack([c[1] for c in wf._captured]), clipped=np.stack([c[2] for c in wf._captured]))
    X = np.vstack(rows)
    S = SetFeatures(trials, X, np.asarray(of, dtype=np.int64), np.zeros(len(X)), np.zeros(len(X)))
    X0, o0 = sh.shifted_rows(tmp_path, "s", "rec", S, (0,))
    top = int(np.argmax(np.where(S.trial_of == 0, X[:, 0] + X[:, 1], -np.inf)))
    assert o0.tolist() == [0] and np.array_equal(X0[0], X[top], equal_nan=True)  # unshifted: the cached row
    Xs, os_ = sh.shifted_rows(tmp_path, "s", "rec", S, (-10, -5, 5, 10))
    assert os_.tolist() == [0, 0, 0, 0]  # only the fall trial's top candidate, once per shift
    peak_s = ff.FEATURES.index("peak_s")
    assert np.isfinite(Xs[:, peak_s]).all()
    assert all(not np.array_equal(r, X[top], equal_nan=True) for r in Xs)  # each a moved window, not a copy
    assert len({r.tobytes() for r in Xs}) == 4
    assert len(sh.shifted_rows(tmp_path, "s", "rec", S, ())[0]) == 0


def test_the_confuser_physics_counts_claps_as_rivals_and_a_fall_as_a_lone_turned_impact() -> None:
    wf = _script("windows_falls")
    cf = _script("confusers_falls")

    def windows(t: np.ndarray, xyz: np.ndarray) -> list[tuple[float, tuple[float, ...]]]:
        out = []
        _, ss = ff.streams(t, xyz, 50.0)
        for s in ss:
            for i in ff.candidates(s):
                w = np.full((wf.WIN, 3), np.nan)
                p = np.full(wf.WIN, np.nan)
                c = np.zeros(wf.WIN, dtype=bool)
                a, b = max(0, i - wf.LO), min(len(s.t), i + wf.HI)
                w[a - (i - wf.LO):b - (i - wf.LO)] = s.xyz[a:b]
                p[a - (i - wf.LO):b - (i - wf.LO)] = s.peak[a:b]
                out.append((float(s.t[i]), cf.physics(w, p, c)))
        return out

    t, xyz, impact = wrist.clean_fall(seed=5, peak_g=4.0, after="still")
    (fall,) = [q for tc, q in windows(t, xyz) if abs(tc - impact) < 1.0]
    v_drop, z_drop, rivals, motion, tilt = fall
    assert rivals == 0 and v_drop < -1.0 and z_drop < 0.0  # a lone impact after a drop
    assert tilt > 45.0 and 0.0 <= motion <= 3.0  # the wrist ends turned (lying palm down)
    clap_rivals = [q[2] for _, q in windows(*wrist.claps(seed=5))]
    assert max(clap_rivals) >= 3  # claps within ±3 s of the loudest one
