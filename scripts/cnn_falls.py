#!/usr/bin/env python3
"""Screen a small 1-D CNN over the 20 Hz window around each candidate against the shipped trees (falls-8).

    .venv/bin/python scripts/cnn_falls.py --data ../shared/data/falls --cache DIR \\
        [--part cross|loso-fallalld|loso-umafall|all] [--variants cnn,cnn+f] [--epochs 20]

Needs the windows saved by `scripts/windows_falls.py` in DIR (and its feature
cache) and PyTorch for training only (`pip install torch==2.13.0`, CPU).
Deterministic: fixed seeds, torch.use_deterministic_algorithms(True), one
thread; the same data gives the same scores.

Input: per candidate, the saved 20 Hz window (−3 … +8 s, 221 samples) as 8
orientation-free channels (`cnn_channels`): asinh(|a| − 1), asinh(raw peak
− 1), the components of the smoothed acceleration along and across the
gravity direction before the impact (mean −3…−1 s) and along and across the
final one (mean +6…+8 s), the clipped flag and a valid-sample mask (a
window cut by the start or end of the data). Variant `cnn+f` also feeds the
22 shipped features (NaN → training median, standardised) into the head.

Model: three strided conv layers (8→12→16→16 channels, kernels 7/5/5,
stride 2, ReLU), flattened, one hidden layer of 32, one logit (≈16 k
weights). Trained on the rows the trees are trained on
(`fall_train.training_rows`), class-balanced weights, Adam, fixed epochs.

Splits, as `scripts/features_falls.py` (identical rows for trees and CNN):
  - cross-set: one set with its clipped and other-watch copies → the other
    set as recorded; threshold from 4-fold subject-grouped out-of-fold
    scores on the training set;
  - leave-one-subject-out per set: threshold from 3-fold out-of-fold scores
    of the other subjects.
Rule (the shipped one): threshold = 0.90 quantile of the out-of-fold
daily-activity trial scores (trial score = highest candidate probability).
Scorers: `trees` (the shipped recipe), the CNN variants, and `ens` = the
mean of the trees' and the CNN's candidate probabilities (rule fixed before
any held-out figure was seen; its threshold from the same mean of the
out-of-fold probabilities). Experiment tooling; needs scikit-learn and torch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent))

from windows_falls import LO, WIN  # noqa: E402

from chumphae.detect import fall_train  # noqa: E402
from chumphae.detect.fall_data import (  # noqa: E402
    SetFeatures,
    combine,
    find_sets,
    training_parts,
)

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
B = NDArray[np.bool_]
HZ = 20


# --- input channels (numpy; what run time would compute) ----------------------------------------------
def _mean_dir(x: F64, v: B, lo: int, hi: int) -> F64:
    """Unit vector of the mean of x[:, lo:hi] over valid samples (N, 3); 0 where < 4 samples or |mean| < 0.3 g."""
    w = v[:, lo:hi, None].astype(np.float64)
    n = w.sum(axis=1)
    m = (x[:, lo:hi] * w).sum(axis=1) / np.maximum(n, 1.0)
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    ok = (n >= 4) & (norm >= 0.3)
    return np.where(ok, m / np.maximum(norm, 1e-9), 0.0)


def cnn_channels(xyz: F64, peak: F64, clipped: B) -> F32:
    """(N, WIN, 3), (N, WIN), (N, WIN) saved windows → (N, 8, WIN) channels (NaN outside the data → 0)."""
    v = np.isfinite(peak)
    x = np.where(v[..., None], np.nan_to_num(xyz), 0.0)
    mag = np.linalg.norm(x, axis=2)
    u0 = _mean_dir(x, v, 0, LO - HZ)  # −3 … −1 s
    fb = _mean_dir(x, v, 0, LO - 2)  # cut by the start of the data: whatever there is before
    u0 = np.where(np.any(u0 != 0, axis=1, keepdims=True), u0, fb)
    ue = _mean_dir(x, v, LO + 6 * HZ, WIN)  # +6 … +8 s
    fe = _mean_dir(x, v, LO + 2 * HZ, WIN)
    ue = np.where(np.any(ue != 0, axis=1, keepdims=True), ue, fe)
    a0 = np.einsum("nwk,nk->nw", x, u0)
    ae = np.einsum("nwk,nk->nw", x, ue)
    p0 = np.sqrt(np.maximum(mag ** 2 - a0 ** 2, 0.0))
    pe = np.sqrt(np.maximum(mag ** 2 - ae ** 2, 0.0))
    pk = np.where(v, np.nan_to_num(peak), 1.0)
    vf = v.astype(np.float64)
    ch = np.stack([np.arcsinh(mag - 1.0) * vf, np.arcsinh(pk - 1.0) * vf, a0 * vf, p0 * vf, ae * vf, pe * vf,
                   (clipped & v).astype(np.float64), vf], axis=1)
    return ch.astype(np.float32)


def load_windows(cache: Path, name: str, variant: str) -> F32:
    w = np.load(cache / f"windows-{name}-{variant}.npz")
    return cnn_channels(w["xyz"], w["peak"], w["clipped"])


# --- the CNN (torch, training only) ----------------------------------------------------------------------
def _torch() -> Any:
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    return torch


def make_net(n_feat: int) -> Any:
    torch = _torch()
    nn = torch.nn

    class Net(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv1d(8, 12, 7, stride=2)
            self.c2 = nn.Conv1d(12, 16, 5, stride=2)
            self.c3 = nn.Conv1d(16, 16, 5, stride=2)
            L = ((((WIN - 7) // 2 + 1) - 5) // 2 + 1 - 5) // 2 + 1
            self.flat = 16 * L
            self.f1 = nn.Linear(self.flat + n_feat, 32)
            self.f2 = nn.Linear(32, 1)
            self.drop = nn.Dropout(0.2)

        def forward(self, x: Any, f: Any) -> Any:
            r = torch.relu
            h = r(self.c3(r(self.c2(r(self.c1(x))))))
            h = h.flatten(1)
            if f is not None:
                h = torch.cat([h, f], dim=1)
            return self.f2(self.drop(r(self.f1(h)))).squeeze(1)

    return Net()


class FeatPrep:
    """22 features → NaN to the training median, standardised (fitted on training rows)."""

    def __init__(self, X: F64) -> None:
        med = np.nanmedian(X, axis=0)
        self.med = np.where(np.isfinite(med), med, 0.0)
        Z = np.where(np.isnan(X), self.med, X)
        self.mu = Z.mean(axis=0)
        sd = Z.std(axis=0)
        self.sd = np.where(sd > 1e-9, sd, 1.0)

    def __call__(self, X: F64) -> F32:
        Z = np.where(np.isnan(X), self.med, X)
        return np.clip((Z - self.mu) / self.sd, -8, 8).astype(np.float32)


def fit_cnn(W: F32, X: F64 | None, y: NDArray[np.int64], epochs: int, seed: int = 0) -> tuple[Any, FeatPrep | None]:
    torch = _torch()
    torch.manual_seed(seed)
    prep = FeatPrep(X) if X is not None else None
    net = make_net(len(X[0]) if X is not None else 0)
    xt = torch.from_numpy(W)
    ft = torch.from_numpy(prep(X)) if prep is not None and X is not None else None
    yt = torch.from_numpy(y.astype(np.float32))
    wpos, wneg = 0.5 / max(1, int(y.sum())), 0.5 / max(1, int((1 - y).sum()))
    wt = torch.from_numpy(np.where(y == 1, wpos, wneg).astype(np.float32) * len(y))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    n, bs = len(y), 128
    net.train()
    for ep in range(epochs):
        for group in opt.param_groups:  # cosine decay, no validation set (no early stopping)
            group["lr"] = 3e-3 * 0.5 * (1 + np.cos(np.pi * ep / epochs))
        perm = torch.randperm(n, generator=g)
        for k in range(0, n, bs):
            idx = perm[k:k + bs]
            logit = net(xt[idx], ft[idx] if ft is not None else None)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logit, yt[idx], reduction="none")
                    * wt[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net, prep


def export_net(model: tuple[Any, FeatPrep | None]) -> dict[str, Any]:
    """The weights as plain arrays (what a numpy forward pass reads)."""
    net, prep = model
    d: dict[str, Any] = {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}
    if prep is not None:
        d.update(med=prep.med, mu=prep.mu, sd=prep.sd)
    return d


def _conv(x: F64, w: F64, b: F64, stride: int) -> F64:
    """conv1d, no padding: x (N, C, L), w (O, C, K) → (N, O, L_out)."""
    win = np.lib.stride_tricks.sliding_window_view(x, w.shape[2], axis=2)[:, :, ::stride, :]  # N C Lo K
    return np.einsum("nclk,ock->nol", win, w, optimize=True) + b[None, :, None]


def numpy_forward(d: dict[str, Any], ch: F32, X: F64 | None = None) -> F64:
    """The CNN's probabilities with numpy only (what run time would do)."""
    r = lambda a: np.maximum(a, 0.0)  # noqa: E731
    h = ch.astype(np.float64)
    h = r(_conv(h, d["c1.weight"], d["c1.bias"], 2))
    h = r(_conv(h, d["c2.weight"], d["c2.bias"], 2))
    h = r(_conv(h, d["c3.weight"], d["c3.bias"], 2)).reshape(len(h), -1)
    if X is not None:
        Z = np.where(np.isnan(X), d["med"], X)
        h = np.hstack([h, np.clip((Z - d["mu"]) / d["sd"], -8, 8)])
    h = r(h @ d["f1.weight"].T + d["f1.bias"])
    z = h @ d["f2.weight"].T[:, 0] + d["f2.bias"][0]
    return 1.0 / (1.0 + np.exp(-z))


def predict_cnn(model: tuple[Any, FeatPrep | None], W: F32, X: F64 | None) -> F64:
    torch = _torch()
    net, prep = model
    out = []
    with torch.no_grad():
        for k in range(0, len(W), 2048):
            f = torch.from_numpy(prep(X[k:k + 2048])) if prep is not None and X is not None else None
            out.append(torch.sigmoid(net(torch.from_numpy(W[k:k + 2048]), f)).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


# --- one split: trees and CNNs on identical rows, out-of-fold thresholds --------------------------------
def fit_all(X: F64, W: F32, trial_of: NDArray[np.int64], fall: B, groups: list[str], folds: int,
            variants: list[str], epochs: int) -> tuple[dict[str, Any], dict[str, float]]:
    """Full models per scorer and each scorer's q90 threshold from grouped out-of-fold trial scores."""
    rows, y = fall_train.training_rows(fall, X, trial_of)
    g = np.asarray(groups)
    subjects = sorted(set(g.tolist()))
    k = max(1, min(folds, len(subjects)))
    fold_of = {s: i % k for i, s in enumerate(subjects)}
    cand_fold = np.array([fold_of[s] for s in g[trial_of]])
    oof = {s: np.zeros(len(X)) for s in ["trees", *variants]}

    def fit_one(tr: NDArray[np.int64]) -> dict[str, Any]:
        yy = fall[trial_of[tr]].astype(np.int64)
        m: dict[str, Any] = {"trees": fall_train._fit(X[tr], yy)}
        for v in variants:
            m[v] = fit_cnn(W[tr], X[tr] if v == "cnn+f" else None, yy, epochs)
        return m

    def score(m: dict[str, Any], idx: NDArray[np.int64]) -> dict[str, F64]:
        out = {"trees": m["trees"].predict_proba(X[idx])[:, 1]}
        for v in variants:
            out[v] = predict_cnn(m[v], W[idx], X[idx] if v == "cnn+f" else None)
        return out

    for f in range(k if folds > 0 else 0):  # folds 0: no threshold (ranking only, to save time)
        te = np.flatnonzero(cand_fold == f)
        m = fit_one(rows[cand_fold[rows] != f])
        for s, p in score(m, te).items():
            oof[s][te] = p
    for v in variants:
        oof[f"ens:{v}"] = 0.5 * (oof["trees"] + oof[v])
    ths = {s: float(np.quantile(fall_train.trial_scores(p, trial_of, len(fall))[~fall], fall_train.ADL_QUANTILE))
           if folds > 0 else float("nan") for s, p in oof.items()}
    full = fit_one(rows)
    return {"models": full, "score": score}, ths


def scores_on(fitted: dict[str, Any], variants: list[str], idx: NDArray[np.int64]) -> dict[str, F64]:
    out: dict[str, F64] = fitted["score"](fitted["models"], idx)
    for v in variants:
        out[f"ens:{v}"] = 0.5 * (out["trees"] + out[v])
    return out


def auc(s: F64, y: B) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def line(tag: str, s: F64, y: B, th: F64 | float) -> str:
    det = s >= th
    sens, spec = float(np.mean(det[y])), float(np.mean(~det[~y]))
    if np.isnan(th).any():
        sens = spec = float("nan")
    q90, q95 = np.quantile(s[~y], 0.90), np.quantile(s[~y], 0.95)
    th_txt = f"th {th:.3f}" if isinstance(th, float) else f"th {np.min(th):.2f}-{np.max(th):.2f}"
    return (f"    {tag:12s} AUC {auc(s, y):.3f}  s@.90 {np.mean(s[y] > q90):.3f}  s@.95 {np.mean(s[y] > q95):.3f}"
            f"  q90 rule: {sens:.3f} / {spec:.3f}  sum {sens + spec:.3f}  ({th_txt})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--part", default="all")
    ap.add_argument("--variants", default="cnn")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--save-scores", type=Path, default=None)
    ap.add_argument("--loso-folds", type=int, default=3, help="0: no out-of-fold threshold (ranking only)")
    a = ap.parse_args(argv)
    variants = a.variants.split(",")
    t0 = time.perf_counter()
    sets = find_sets(a.data)
    train: dict[str, tuple[SetFeatures, F64, F32]] = {}
    rec: dict[str, tuple[SetFeatures, F64, F32]] = {}
    for name, folder in sets.items():
        copies = training_parts(name, folder, a.cache, progress=False)
        Ss = [S for _, S in copies]
        Ws = [load_windows(a.cache, name, c.name) for c, _ in copies]
        for S, Wv in zip(Ss, Ws, strict=True):
            assert len(S.X) == len(Wv), (name, len(S.X), len(Wv))
        rec[name] = (Ss[0], Ss[0].X, Ws[0])
        T = combine(Ss)
        train[name] = (T, T.X, np.concatenate(Ws))
    print(f"loaded, {time.perf_counter() - t0:.0f} s", flush=True)
    saved: dict[str, F64] = {}
    if a.part in ("all", "cross"):
        for an, (T, TX, TW) in train.items():
            for bn, (S, SX, SW) in rec.items():
                if an == bn:
                    continue
                fall = np.array([t.fall for t in T.trials])
                fitted, ths = fit_all(TX, TW, T.trial_of, fall, [t.subject for t in T.trials], 4, variants, a.epochs)
                # the held-out set through the same scorer (index into a joint array)
                held = {"score": lambda m, idx, SX=SX, SW=SW: _score_ext(m, variants, SX[idx], SW[idx])}
                sc = scores_on({"models": fitted["models"], "score": held["score"]}, variants, np.arange(len(SX)))
                y = np.array([t.fall for t in S.trials])
                print(f"  {an} → {bn}  ({time.perf_counter() - t0:.0f} s)", flush=True)
                for sn, p in sc.items():
                    s = fall_train.trial_scores(p, S.trial_of, len(S.trials))
                    saved[f"{an}->{bn}:{sn}"] = s
                    print(line(sn, s, y, ths[sn]), flush=True)
    for name in rec:
        if a.part not in ("all", f"loso-{name}"):
            continue
        T, TX, TW = train[name]
        S, SX, SW = rec[name]
        subj_T = np.array([t.subject for t in T.trials])
        subj_S = np.array([t.subject for t in S.trials])
        y = np.array([t.fall for t in S.trials])
        names = ["trees", *variants, *[f"ens:{v}" for v in variants]]
        s_all = {n: np.zeros(len(S.trials)) for n in names}
        th_all = {n: np.zeros(len(S.trials)) for n in names}
        for subj in sorted(set(subj_S.tolist())):
            keep = subj_T != subj
            idx = np.flatnonzero(keep)
            remap = -np.ones(len(T.trials), dtype=np.int64)
            remap[idx] = np.arange(len(idx))
            rows = keep[T.trial_of]
            fall = np.array([T.trials[k].fall for k in idx])
            fitted, ths = fit_all(TX[rows], TW[rows], remap[T.trial_of[rows]], fall,
                                  [T.trials[k].subject for k in idx], a.loso_folds, variants, a.epochs)
            held_t = subj_S == subj
            crow = held_t[S.trial_of]
            sc = scores_on({"models": fitted["models"],
                            "score": lambda m, ii, SX=SX[crow], SW=SW[crow]: _score_ext(m, variants, SX[ii], SW[ii])},
                           variants, np.arange(int(crow.sum())))
            for n, p in sc.items():
                ts = np.zeros(len(S.trials))
                np.maximum.at(ts, S.trial_of[crow], p)
                s_all[n][held_t] = ts[held_t]
                th_all[n][held_t] = ths[n]
            print(f"  LOSO {name} {subj} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        print(f"  LOSO {name} (pooled AUC; thresholds per fold)", flush=True)
        for n in names:
            saved[f"loso-{name}:{n}"] = s_all[n]
            print(line(n, s_all[n], y, th_all[n]), flush=True)
    if a.save_scores is not None:
        np.savez(a.save_scores, **saved)
    print(f"took {time.perf_counter() - t0:.0f} s")
    return 0


def _score_ext(m: dict[str, Any], variants: list[str], X: F64, W: F32) -> dict[str, F64]:
    out = {"trees": m["trees"].predict_proba(X)[:, 1]}
    for v in variants:
        out[v] = predict_cnn(m[v], W, X if v == "cnn+f" else None)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
