"""Falls from a raw wrist stream with the learned model: offline (a file) and live (a band over GATT).

Both paths run the same steps: timeline repair (`fall_stream.prepare`), one
rate and candidate proposal (`fall_features`), the shipped tree model
(`fall_model`). A candidate is decided `POST_S` = 8 s after its impact (live:
`LIVE_DECIDE_S` = 8.5 s, so the window does not end at the buffer's edge), or
at the end of the data (offline, or `flush()` when a live stream stops) when
at least 1.5 s follows it. One fall per `REFRACTORY_S`. Both resample on the
same absolute 20 Hz grid (multiples of 50 ms of the recording's clock), so a
live buffer and the whole file give a candidate the same features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_features as ff
from chumphae.detect.fall_model import FallModel, shipped

Array = NDArray[np.float64]
REFRACTORY_S = 10.0
SETTLE_S = 0.5  # live: data past POST_S before deciding, so the window's end is not the buffer's edge
LIVE_DECIDE_S = ff.POST_S + SETTLE_S  # a live candidate is decided once the stream is this far past it


@dataclass(frozen=True, slots=True)
class ModelFall:
    t: float  # impact time, s (the recording's clock)
    decided_at: float
    confidence: float  # the model's probability
    features: dict[str, float | None]  # None: the window fell outside the data


@dataclass(frozen=True, slots=True)
class Judged:
    """One candidate as the model judged it (falls or not): for comparing paths and diagnosis."""

    t: float
    decided_at: float
    probability: float


def _decide(cands: list[ff.Candidate], model: FallModel, last: float | None,
            judged: list[Judged] | None = None) -> list[ModelFall]:
    if not cands:
        return []
    p = model.proba(np.vstack([c.features for c in cands]))
    if judged is not None:
        judged += [Judged(c.t, c.decided_at, float(pi)) for c, pi in zip(cands, p.tolist(), strict=True)]
    out: list[ModelFall] = []
    for c, pi in zip(cands, p.tolist(), strict=True):
        if pi < model.threshold:
            continue
        if last is not None and c.t < last + REFRACTORY_S:
            continue
        feats: dict[str, float | None] = {k: (round(float(v), 4) if np.isfinite(v) else None)
                                          for k, v in zip(ff.FEATURES, c.features, strict=True)}
        out.append(ModelFall(c.t, c.decided_at, round(float(pi), 3), feats))
        last = c.t
    return out


def detect_falls(t: Array, xyz_g: Array, hz: float, model: FallModel | None = None,
                 judged: list[Judged] | None = None) -> list[ModelFall]:
    """Falls in a whole recording (t in s, x/y/z in g) whose nominal rate is `hz`.

    `judged`, when given, receives every candidate with its probability.
    """
    m = model or shipped()
    _, streams = ff.streams(t, xyz_g, hz)
    cands = [c for s in streams for c in ff.stream_candidates(s, final=True)]
    return _decide(sorted(cands, key=lambda c: c.t), m, None, judged)


@dataclass
class LiveFallDetector:
    """A rolling buffer fed as samples arrive; reports each fall once it is decided.

    `push` takes any number of samples (a GATT notification's batch). Quiet
    stretches cost almost nothing: the buffer is analysed only when a
    sample of ≥ 1.2 g has arrived and its decision time has come.
    """

    hz: float
    model: FallModel | None = None
    keep_s: float = ff.PRE_S + ff.POST_S + 4.0
    judged: list[Judged] | None = None  # a list here receives every candidate decided (tests, diagnosis)
    _t: list[Array] = field(default_factory=list)
    _xyz: list[Array] = field(default_factory=list)
    _pending: list[tuple[float, float]] = field(default_factory=list)  # (first, last) loud sample of a push
    _after: float = -np.inf
    _last_fall: float | None = None
    _newest: float = -np.inf

    def push(self, t: Array, xyz_g: Array) -> list[ModelFall]:
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        xyz = np.asarray(xyz_g, dtype=np.float64).reshape(-1, 3)
        ok = np.isfinite(t) & np.isfinite(xyz).all(axis=1)
        t, xyz = t[ok], xyz[ok]
        if len(t) == 0:
            return []
        self._t.append(t)
        self._xyz.append(xyz)
        self._newest = max(self._newest, float(t.max()))
        loud = np.linalg.norm(xyz, axis=1) >= 1.2
        if loud.any():
            self._pending.append((float(t[loud].min()), float(t[loud].max())))
        self._trim()
        if self._pending and self._newest >= min(p[1] for p in self._pending) + LIVE_DECIDE_S:
            return self._analyse(final=False)
        return []

    def flush(self) -> list[ModelFall]:
        """The stream stopped: decide what can be decided with the data there is."""
        return self._analyse(final=True) if self._pending else []

    def _trim(self) -> None:
        lo = self._newest - self.keep_s
        if self._pending:  # never the window of a candidate still to decide, however large the pushes
            lo = min(lo, min(p[0] for p in self._pending) - ff.PRE_S - 1.0)
        if self._t and float(self._t[0].max()) < lo:
            t, xyz = np.concatenate(self._t), np.vstack(self._xyz)
            keep = t >= lo
            self._t, self._xyz = [t[keep]], [xyz[keep]]

    def _analyse(self, final: bool) -> list[ModelFall]:
        t, xyz = np.concatenate(self._t), np.vstack(self._xyz)
        _, streams = ff.streams(t, xyz, self.hz)
        cands = [c for s in streams for c in ff.stream_candidates(s, final=final, after=self._after,
                                                                 settle=SETTLE_S)]
        end = max((float(s.t[-1]) for s in streams), default=self._newest)
        # every candidate up to here is decided (the same 1e-9 as stream_candidates' test)
        self._after = max(self._after, end if final else end - LIVE_DECIDE_S + 1e-9)
        # a candidate's 20 Hz bin can lie a little after the loud sample that flagged it: keep the
        # flag until the stream is safely past it (one more analysis at most)
        self._pending = [p for p in self._pending if p[1] > self._after - (0.0 if final else 0.1)]
        found = _decide(sorted(cands, key=lambda c: c.t), self.model or shipped(), self._last_fall, self.judged)
        if found:
            self._last_fall = found[-1].t
        return found
