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
