"""Wrist traces for the fall tests, built with the synthesizer's physics (scripts/synth_falls.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def synth() -> ModuleType:
    if "synth_falls" in sys.modules:
        return sys.modules["synth_falls"]
    spec = importlib.util.spec_from_file_location("synth_falls", ROOT / "scripts" / "synth_falls.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["synth_falls"] = mod
    spec.loader.exec_module(mod)
    return mod


def at_rate(xyz: np.ndarray, hz: float = 50.0) -> tuple[np.ndarray, np.ndarray]:
    """Sample a synthesizer trace (at its internal rate) at `hz`: clean times, no defects."""
    s = synth()
    idx = np.arange(0, len(xyz), int(s.FS / hz))
    return idx / s.FS, xyz[idx]


def clean_fall(seed: int = 3, peak_g: float = 4.5, after: str = "still") -> tuple[np.ndarray, np.ndarray, float]:
    """Standing, reach, 0.3 s free fall to 0.2 g, impact, lying palm down; returns (t, xyz, impact_t)."""
    s = synth()
    tr = s.Trace(np.random.default_rng(seed))
    tr.walk(4.0)
    tr.hold(2.0, move=0.02)
    tr.turn(s.unit(np.array([-0.5, 0.2, 0.8])), 0.4, dyn=0.4)
    tr.free_fall(0.2, 0.3, np.array([0.1, 0.0, 1.0]))
    impact = tr.t
    tr.pulse(peak_g, 0.04, np.array([0.2, 0.1, 1.0]))
    tr.turn(np.array([0.1, 0.0, 1.0]), 0.15, dyn=0.2)
    if after == "still":
        tr.hold(12.0, move=0.02)
    elif after == "fidget":  # an elder who moves a little on the floor
        tr.hold(2.0, move=0.02)
        tr.fidget(6.0, amp=0.1, turns=2)
        tr.hold(4.0, move=0.02)
    elif after == "walk":  # stumbled, caught themselves, walked on
        tr.turn(s.HANG, 0.6, dyn=0.3)
        tr.walk(12.0)
    t, xyz = at_rate(tr.array())
    return t, xyz, impact


def claps(seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    s = synth()
    tr = s.Trace(np.random.default_rng(seed))
    tr.hold(2.0)
    tr.turn(np.array([0.2, 1.0, 0.2]), 0.5, dyn=0.3)
    for _ in range(12):
        tr.turn(s.unit(tr.up + tr.rng.normal(0, 0.1, 3)), 0.2, dyn=0.6)
        tr.pulse(6.0, 0.02, np.array([0.0, 1.0, 0.0]))
    tr.turn(s.LAP, 0.7, dyn=0.2)
    tr.hold(10.0, move=0.02)
    return at_rate(tr.array())


def table_knock(seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Hand on the table, lifted, slammed down, left resting: still after, wrist barely turned."""
    s = synth()
    tr = s.Trace(np.random.default_rng(seed))
    tr.turn(s.DESK, 0.5)
    tr.hold(3.0, move=0.02)
    tr.turn(s.unit(s.DESK + np.array([0.5, 0.0, 0.0])), 0.4, dyn=0.3)
    tr.free_fall(0.4, 0.06, s.DESK)
    tr.pulse(7.0, 0.015, np.array([0.0, 0.0, 1.0]))
    tr.hold(10.0, move=0.01)
    return at_rate(tr.array())


def write_csv(path: Path, t: np.ndarray, xyz: np.ndarray, scale: float = 1.0, extra: bool = True) -> Path:
    with path.open("w") as f:
        f.write("ax,t,note,ay,az\n" if extra else "t,ax,ay,az\n")
        for ti, (x, y, z) in zip(t, xyz * scale, strict=True):
            f.write(f"{x:.4f},{ti:.4f},n,{y:.4f},{z:.4f}\n" if extra else f"{ti:.4f},{x:.4f},{y:.4f},{z:.4f}\n")
    return path
