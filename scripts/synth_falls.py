"""Synthesize an honest evaluation set for the wrist fall detector.

    .venv/bin/python scripts/synth_falls.py OUT_DIR [--per-kind 30] [--daily-hours 4] [--seed 1]

Writes CSV recordings (header t,ax,ay,az plus a distractor column) and
`manifest.json` with the truth: for each file its kind, whether it holds a
fall, and the impact time.

What is modelled, and how (device frame: x along the forearm towards the
hand, z out of the watch face; an accelerometer at rest reads +1 g "up"):
  - posture = the up vector in the device frame; motion = smooth rotations
    of it plus dynamic acceleration; white noise 0.01–0.02 g and tremor;
  - falls (forward, backward, sideways from standing or walking; from bed):
    a pre-fall reach (0.3–0.8 s), a free fall whose depth and length vary
    widely (on the wrist it is often shallow: 30 % of falls barely dip), an
    impact pulse of 1.8–8 g lasting 15–80 ms with ringing and a second
    contact, then lying with a new wrist posture; afterwards most subjects
    move a little and some try to get up;
  - hard negatives: clapping, hitting a table, sitting down hard (with and
    without the hand coming to rest on the lap), waving, walking, flopping
    onto a bed;
  - long daily-activity traces chaining walking, standing, sitting, chores,
    gestures, eating, lying down, getting up, picking things up, and the
    occasional clap, wave, door slam or table knock;
  - the recording's own defects: rate 25/50/100 Hz, timestamp jitter,
    repeated timestamps, bursts (batch-stamped samples), axis clipping at
    ±2/±4/±8 g or none, trials starting mid-motion, m/s² files.

What it cannot model: real human reactions, real soft tissue and floor
compliance, the sensor placements and firmware filtering of real watches.
Figures on this set bound how the detector behaves on the physics it encodes;
only real recordings say how it behaves on people.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FS = 200.0  # internal simulation rate; recordings are sampled from it
G0 = 9.80665

HANG = np.array([-0.95, 0.1, 0.25])  # arm hanging at the side
DESK = np.array([0.15, 0.05, 0.98])  # forearm level, palm down
LAP = np.array([0.35, 0.3, 0.88])  # hand resting on the thigh
UP_ARM = np.array([0.95, 0.0, 0.3])  # hand raised


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass
class Trace:
    """Builds one recording at FS, segment by segment, keeping posture continuous."""

    rng: np.random.Generator
    up: np.ndarray = field(default_factory=lambda: unit(HANG))
    parts: list[np.ndarray] = field(default_factory=list)
    n: int = 0
    events: list[float] = field(default_factory=list)  # impact times (s) of falls

    @property
    def t(self) -> float:
        return self.n / FS

    def add(self, xyz: np.ndarray) -> None:
        self.parts.append(xyz)
        self.n += len(xyz)

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros((0, 3))

    # --- building blocks ---------------------------------------------------
    def _noise(self, n: int, level: float) -> np.ndarray:
        white = self.rng.normal(0, level, (n, 3))
        tremor_f = self.rng.uniform(4, 8)
        tt = np.arange(n) / FS
        tremor = np.outer(np.sin(2 * np.pi * tremor_f * tt + self.rng.uniform(0, 6)),
                          self.rng.normal(0, level * 0.7, 3))
        return white + tremor

    def _smooth(self, n: int, amp: float, fc: float) -> np.ndarray:
        """Band-limited random dynamic acceleration (g)."""
        k = max(1, int(FS / fc))
        raw = self.rng.normal(0, 1, (n + k, 3))
        kern = np.hanning(k) / np.hanning(k).sum()
        out = np.column_stack([np.convolve(raw[:, i], kern, "same")[:n] for i in range(3)])
        s = out.std() or 1.0
        return out / s * amp

    def turn(self, to: np.ndarray, dur: float, dyn: float = 0.1) -> None:
        """Rotate the wrist posture to `to` over `dur` seconds (slerp-like)."""
        n = max(2, int(dur * FS))
        a, b = self.up, unit(to)
        w = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
        path = np.array([unit((1 - x) * a + x * b + 1e-9) for x in w])
        self.add(path + self._smooth(n, dyn, 3.0) + self._noise(n, 0.015))
        self.up = b

    def hold(self, dur: float, move: float = 0.01, sway_deg: float = 2.0) -> None:
        """Stay in the current posture, moving slightly (`move` g of dynamics)."""
        n = max(1, int(dur * FS))
        sway = self._smooth(n, np.radians(sway_deg), 0.5)
        path = np.array([unit(self.up + s) for s in sway])
        self.add(path + self._smooth(n, move, 2.0) + self._noise(n, 0.012))

    def fidget(self, dur: float, amp: float = 0.15, turns: int = 2) -> None:
        """Low activity: a few slow posture changes with small accelerations."""
        base = self.up
        for _ in range(turns):
            tgt = unit(base + self.rng.normal(0, 0.35, 3))
            self.turn(tgt, dur / (2 * turns), dyn=amp)
            self.hold(dur / (2 * turns), move=amp / 4)

    def walk(self, dur: float, vigor: float = 1.0) -> None:
        n = max(1, int(dur * FS))
        tt = np.arange(n) / FS
        f = self.rng.uniform(0.75, 1.0)  # stride frequency (elderly are slow)
        swing = np.radians(self.rng.uniform(15, 35) * vigor) * np.sin(2 * np.pi * f * tt)
        base = unit(HANG + self.rng.normal(0, 0.05, 3))
        c, s = np.cos(swing), np.sin(swing)
        path = np.column_stack([base[0] * c - base[2] * s, np.full(n, base[1]), base[0] * s + base[2] * c])
        bounce = (self.rng.uniform(0.12, 0.3) * vigor * np.sin(4 * np.pi * f * tt + 0.3))[:, None] * unit(
            np.array([-1.0, 0.0, 0.2]))
        tang = (self.rng.uniform(0.2, 0.45) * vigor * np.cos(2 * np.pi * f * tt))[:, None] * np.array([0, 0, 1.0])
        heel = np.zeros(n)
        step_idx = (np.arange(0, dur, 1 / (2 * f)) * FS).astype(int)
        for i in step_idx[step_idx < n - 6]:
            heel[i:i + 6] += self.rng.uniform(0.1, 0.35) * vigor * np.hanning(6)
        self.add(path + bounce + tang + heel[:, None] * unit(np.array([-1, 0.1, 0.3]))
                 + self._noise(n, 0.02))
        self.up = path[-1]

    def pulse(self, peak_g: float, dur_s: float, direction: np.ndarray, ring: float = 0.3) -> None:
        """An impact: half-sine of `peak_g` over gravity, then damped ringing."""
        n = max(3, int(dur_s * FS))
        d = unit(direction)
        imp = np.sin(np.linspace(0, np.pi, n))[:, None] * (peak_g - 1.0) * d
        self.add(self.up + imp + self._noise(n, 0.03))
        m = int(0.25 * FS)
        tt = np.arange(m) / FS
        fr = self.rng.uniform(6, 15)
        ringing = (ring * peak_g * np.exp(-tt / 0.05) * np.sin(2 * np.pi * fr * tt))[:, None] * unit(
            d + self.rng.normal(0, 0.5, 3))
        self.add(self.up + ringing + self._noise(m, 0.03))

    def free_fall(self, depth: float, dur: float, to: np.ndarray) -> None:
        """|a| sinks to `depth` g while the wrist turns towards `to`."""
        n = max(2, int(dur * FS))
        a, b = self.up, unit(to)
        w = np.linspace(0, 0.7, n)
        path = np.array([unit((1 - x) * a + x * b) for x in w])
        env = 1 - (1 - depth) * np.sin(np.linspace(0, np.pi, n)) ** 0.5
        self.add(path * env[:, None] + self._smooth(n, 0.05, 4.0) + self._noise(n, 0.02))
        self.up = path[-1]


def lying_posture(rng: np.random.Generator) -> np.ndarray:
    """Forearm roughly level on the floor, in any roll, tilted a little."""
    roll = rng.uniform(0, 2 * np.pi)
    v = np.array([rng.normal(0, 0.25), np.sin(roll), np.cos(roll)])
    return unit(v)


# --- falls -------------------------------------------------------------------
def fall(tr: Trace, kind: str) -> None:
    rng = tr.rng
    from_bed = kind == "bed"
    if from_bed:
        tr.turn(lying_posture(rng), 0.5)
        tr.hold(rng.uniform(2, 6), move=0.01)
        tr.fidget(rng.uniform(0.6, 1.2), amp=0.2, turns=1)  # rolling to the edge
        ff_dur, depth = rng.uniform(0.22, 0.36), rng.uniform(0.1, 0.6)
    else:
        if rng.random() < 0.5:
            tr.walk(rng.uniform(3, 8))
        else:
            tr.hold(rng.uniform(2, 5), move=0.03)
        # stumble / reach
        reach = unit(tr.up + rng.normal(0, 0.6, 3))
        tr.turn(reach, rng.uniform(0.3, 0.8), dyn=rng.uniform(0.2, 0.6))
        weak = rng.random() < 0.3  # on the wrist the free fall is often masked by the arm
        depth = rng.uniform(0.55, 0.85) if weak else rng.uniform(0.1, 0.55)
        ff_dur = rng.uniform(0.1, 0.5)
    end = lying_posture(rng)
    if kind == "forward":
        end = unit(np.array([0.1, 0.0, 1.0]) + rng.normal(0, 0.3, 3))  # palm down on the floor
    elif kind == "backward":
        end = unit(np.array([0.1, 0.0, -1.0]) + rng.normal(0, 0.4, 3))  # back of the hand down
    elif kind == "sideways":
        end = unit(np.array([0.0, rng.choice([-1.0, 1.0]), 0.3]) + rng.normal(0, 0.3, 3))
    tr.free_fall(depth, ff_dur, end)
    tr.events.append(tr.t)
    peak = float(rng.choice([rng.uniform(1.8, 3.0), rng.uniform(3.0, 8.0)], p=[0.35, 0.65]))
    tr.pulse(peak, rng.uniform(0.015, 0.08), end + rng.normal(0, 0.4, 3))
    tr.turn(end, 0.15, dyn=0.3)
    tr.pulse(rng.uniform(1.3, 2.5), rng.uniform(0.03, 0.08), end + rng.normal(0, 0.5, 3), ring=0.1)
    tr.hold(rng.uniform(0.3, 1.0), move=rng.uniform(0.03, 0.12))
    # after: lie still, move a little, perhaps try to get up
    after = rng.uniform(6, 14)
    r = rng.random()
    if r < 0.35:
        tr.hold(after, move=rng.uniform(0.005, 0.03))
    elif r < 0.8:
        tr.hold(after * 0.4, move=0.02)
        tr.fidget(after * 0.3, amp=rng.uniform(0.05, 0.15))
        tr.hold(after * 0.3, move=0.02)
    else:
        tr.hold(rng.uniform(3.5, 6), move=0.03)
        tr.fidget(2.0, amp=0.3, turns=2)  # tries to get up
        tr.turn(HANG, 1.5, dyn=0.3)
        tr.hold(after / 2, move=0.05)


# --- hard negatives ------------------------------------------------------------
def clapping(tr: Trace) -> None:
    rng = tr.rng
    tr.hold(rng.uniform(1, 3), move=0.03)
    tr.turn(np.array([0.2, 1.0, 0.2]), 0.5, dyn=0.3)
    rate = rng.uniform(2, 4)
    for _ in range(int(rng.uniform(3, 10) * rate)):
        gap = 1 / rate
        tr.turn(unit(tr.up + rng.normal(0, 0.1, 3)), gap * 0.6, dyn=0.6)
        tr.pulse(rng.uniform(3, 9), rng.uniform(0.01, 0.03), np.array([0.0, 1.0, 0.0]) + rng.normal(0, 0.2, 3))
    rest = LAP if rng.random() < 0.5 else HANG
    tr.turn(rest, 0.7, dyn=0.2)
    tr.hold(rng.uniform(4, 10), move=rng.uniform(0.01, 0.06))


def table_hit(tr: Trace) -> None:
    rng = tr.rng
    tr.turn(DESK, 0.5, dyn=0.1)
    tr.hold(rng.uniform(1.5, 4), move=0.03)
    tr.turn(unit(DESK + np.array([0.5, 0.0, 0.0])), rng.uniform(0.3, 0.6), dyn=0.3)  # lift the hand
    tr.free_fall(rng.uniform(0.2, 0.7), rng.uniform(0.04, 0.1), DESK)  # the slam accelerates it down
    tr.pulse(rng.uniform(3, 10), rng.uniform(0.008, 0.025), np.array([0, 0, 1.0]) + rng.normal(0, 0.2, 3))
    if rng.random() < 0.5:
        tr.hold(rng.uniform(6, 12), move=rng.uniform(0.005, 0.04))  # hand stays on the table
    else:
        tr.hold(rng.uniform(0.5, 3), move=0.03)
        tr.fidget(rng.uniform(3, 6), amp=0.3, turns=3)


def sit_hard(tr: Trace) -> None:
    rng = tr.rng
    tr.walk(rng.uniform(2, 4), vigor=0.8)
    tr.hold(rng.uniform(0.5, 1.5), move=0.05)
    tr.free_fall(rng.uniform(0.6, 0.9), rng.uniform(0.3, 0.6), tr.up)  # lowering, then dropping
    tr.pulse(rng.uniform(1.4, 2.8), rng.uniform(0.04, 0.1), np.array([-1.0, 0.0, 0.3]))
    rest = LAP if rng.random() < 0.5 else unit(HANG + rng.normal(0, 0.15, 3))
    tr.turn(rest, rng.uniform(0.4, 1.0), dyn=0.15)
    if rng.random() < 0.6:
        tr.hold(rng.uniform(1, 5), move=0.03)
        tr.fidget(rng.uniform(3, 6), amp=rng.uniform(0.15, 0.4), turns=3)  # motion resumes
    else:
        tr.hold(rng.uniform(6, 12), move=rng.uniform(0.01, 0.05))


def waving(tr: Trace) -> None:
    rng = tr.rng
    tr.hold(rng.uniform(1, 3), move=0.03)
    tr.turn(UP_ARM, 0.6, dyn=0.4)
    f = rng.uniform(1.5, 3)
    n = int(rng.uniform(3, 8) * FS)
    tt = np.arange(n) / FS
    ang = np.radians(rng.uniform(25, 50)) * np.sin(2 * np.pi * f * tt)
    path = np.column_stack([np.cos(ang) * 0.95, np.sin(ang), np.full(n, 0.3)])
    acc = (rng.uniform(0.6, 2.0) * np.sin(2 * np.pi * f * tt + 1.2))[:, None] * np.array([0, 1.0, 0])
    tr.add(path + acc + tr._noise(n, 0.02))
    tr.up = unit(path[-1])
    tr.turn(HANG, 0.8, dyn=0.3)
    tr.hold(rng.uniform(4, 10), move=rng.uniform(0.01, 0.05))


def walking(tr: Trace) -> None:
    tr.walk(tr.rng.uniform(10, 30), vigor=tr.rng.uniform(0.7, 1.3))
    tr.hold(tr.rng.uniform(2, 6), move=0.03)


def flop_on_bed(tr: Trace) -> None:
    rng = tr.rng
    tr.walk(rng.uniform(2, 4), vigor=0.8)
    tr.free_fall(rng.uniform(0.5, 0.85), rng.uniform(0.2, 0.4), lying_posture(rng))
    tr.pulse(rng.uniform(1.3, 2.4), rng.uniform(0.06, 0.15), tr.up)
    tr.turn(lying_posture(rng), 0.8, dyn=0.1)
    tr.hold(rng.uniform(6, 12), move=0.02)


# --- daily activity ----------------------------------------------------------------
def daily(tr: Trace, hours: float) -> None:
    rng = tr.rng
    steps: list[tuple[float, Callable[[], None]]] = [
        (0.22, lambda: tr.walk(rng.uniform(10, 120), vigor=rng.uniform(0.6, 1.3))),
        (0.14, lambda: tr.hold(rng.uniform(20, 300), move=rng.uniform(0.005, 0.04))),
        (0.12, lambda: (tr.turn(LAP, 1.0, 0.15), tr.hold(rng.uniform(30, 400), move=0.02))),
        (0.12, lambda: tr.fidget(rng.uniform(10, 60), amp=rng.uniform(0.1, 0.4), turns=6)),  # chores, eating
        (0.06, lambda: sit_hard(tr) if rng.random() < 0.3 else (tr.turn(LAP, 1.2, 0.2), tr.hold(30, 0.03))),
        (0.05, lambda: (flop_on_bed(tr) if rng.random() < 0.3 else (tr.turn(lying_posture(rng), 2.0, 0.15),
                                                                      tr.hold(rng.uniform(60, 600), 0.01)),
                        tr.turn(HANG, 2.0, 0.3))),
        (0.06, lambda: (tr.turn(unit(HANG + np.array([0.5, 0.0, 0.8])), 1.0, 0.3),
                        tr.hold(1.0, 0.1), tr.turn(HANG, 1.0, 0.3))),  # picking something up
        (0.06, lambda: (tr.turn(DESK, 0.6, 0.2), tr.fidget(rng.uniform(20, 90), amp=0.25, turns=8))),
        (0.04, lambda: clapping(tr)),
        (0.04, lambda: waving(tr)),
        (0.04, lambda: table_hit(tr)),
        (0.05, lambda: (tr.turn(UP_ARM, 0.5, 0.3), tr.pulse(rng.uniform(2, 5), 0.02, np.array([0, 1.0, 0])),
                        tr.turn(HANG, 0.6, 0.3))),  # closing a door, a knock
    ]
    probs = np.array([p for p, _ in steps])
    probs /= probs.sum()
    while tr.t < hours * 3600:
        steps[int(rng.choice(len(steps), p=probs))][1]()


# --- the recording's defects ---------------------------------------------------------
@dataclass(frozen=True)
class Defects:
    hz: float
    jitter: float  # fraction of the period
    repeats: float  # fraction of samples whose timestamp repeats the previous one
    bursts: bool  # samples stamped in batches
    rail_g: float | None
    units: str
    start_skip_s: float  # trial starts mid-motion


def defects(rng: np.random.Generator) -> Defects:
    return Defects(
        hz=float(rng.choice([25.0, 50.0, 50.0, 100.0])),
        jitter=float(rng.choice([0.0, 0.1, 0.3])),
        repeats=float(rng.choice([0.0, 0.0, 0.05])),
        bursts=bool(rng.random() < 0.2),
        rail_g=rng.choice([None, 2.0, 4.0, 8.0], p=[0.3, 0.3, 0.3, 0.1]),  # type: ignore[arg-type]
        units=str(rng.choice(["g", "ms2"])),
        start_skip_s=float(rng.uniform(0, 1.5)),
    )


def sample(xyz: np.ndarray, d: Defects, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sample the FS trace at the device rate with the device's defects; returns (t, xyz)."""
    dur = len(xyz) / FS
    t = np.arange(d.start_skip_s, dur - 0.01, 1 / d.hz)
    # anti-aliasing like a real sensor's low-pass: average over the period
    k = max(1, int(FS / d.hz))
    kern = np.ones(k) / k
    smooth = np.column_stack([np.convolve(xyz[:, i], kern, "same") for i in range(3)])
    # keep impact peaks partly (sensor bandwidth is higher than the output rate on many parts)
    smooth = 0.5 * smooth + 0.5 * xyz
    idx = np.clip((t * FS).astype(int), 0, len(xyz) - 1)
    out = smooth[idx]
    if d.rail_g:
        out = np.clip(out, -d.rail_g, d.rail_g)
    out = np.round(out / 0.004) * 0.004  # 4 mg resolution
    stamp = t + rng.normal(0, d.jitter / d.hz, len(t)) * (d.jitter > 0)
    if d.bursts:
        stamp = np.floor(stamp * d.hz / 8) * 8 / d.hz + rng.uniform(0, 0.02, len(t))  # batches of 8
        stamp = np.maximum.accumulate(stamp)
    if d.repeats:
        rep = rng.random(len(t)) < d.repeats
        rep[0] = False
        stamp[rep] = np.roll(stamp, 1)[rep]
    return stamp, out


def write_csv(path: Path, t: np.ndarray, xyz: np.ndarray, units: str, rng: np.random.Generator) -> None:
    vals = xyz * (G0 if units == "ms2" else 1.0)
    extra = rng.integers(0, 100, len(t))
    body = np.column_stack([extra, t, vals])
    with path.open("w") as f:
        f.write("sample,t,ax,ay,az\n")
        np.savetxt(f, body, fmt=["%d", "%.4f", "%.4f", "%.4f", "%.4f"], delimiter=",")


TRIALS: dict[str, tuple[bool, Callable[[Trace], None]]] = {
    "fall_forward": (True, lambda tr: fall(tr, "forward")),
    "fall_backward": (True, lambda tr: fall(tr, "backward")),
    "fall_sideways": (True, lambda tr: fall(tr, "sideways")),
    "fall_bed": (True, lambda tr: fall(tr, "bed")),
    "clapping": (False, clapping),
    "table_hit": (False, table_hit),
    "sit_hard": (False, sit_hard),
    "waving": (False, waving),
    "walking": (False, walking),
    "flop_on_bed": (False, flop_on_bed),
}


def generate(out: Path, per_kind: int = 30, daily_hours: float = 4.0, seed: int = 1) -> list[dict[str, object]]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    manifest: list[dict[str, object]] = []
    for kind, (is_fall, build) in TRIALS.items():
        for k in range(per_kind):
            tr = Trace(rng)
            if rng.random() < 0.5:
                tr.walk(rng.uniform(1.5, 4))  # starts mid-motion
            else:
                tr.hold(rng.uniform(1, 3), move=0.02)
            build(tr)
            d = defects(rng)
            t, xyz = sample(tr.array(), d, rng)
            name = f"{kind}_{k:03d}.csv"
            write_csv(out / name, t, xyz, d.units, rng)
            manifest.append({"file": name, "kind": kind, "fall": is_fall, "impacts": tr.events,
                             "hz": d.hz, "units": d.units, "rail_g": d.rail_g, "hours": 0.0})
    chunk_h = 1.0
    for k in range(int(np.ceil(daily_hours / chunk_h))):
        tr = Trace(rng)
        daily(tr, min(chunk_h, daily_hours - k * chunk_h))
        d = defects(rng)
        t, xyz = sample(tr.array(), d, rng)
        name = f"daily_{k:02d}.csv"
        write_csv(out / name, t, xyz, d.units, rng)
        manifest.append({"file": name, "kind": "daily", "fall": False, "impacts": [],
                         "hz": d.hz, "units": d.units, "rail_g": d.rail_g, "hours": float(t[-1] - t[0]) / 3600})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("out", type=Path)
    ap.add_argument("--per-kind", type=int, default=30)
    ap.add_argument("--daily-hours", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    m = generate(a.out, a.per_kind, a.daily_hours, a.seed)
    print(f"wrote {len(m)} recordings to {a.out}")


if __name__ == "__main__":
    main()
