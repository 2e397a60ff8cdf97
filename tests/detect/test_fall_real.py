"""Real wrist recordings (FallAllD, UMAFall) through `chumphae falls detect` and the live detector.

The trials are read from `../shared/data/falls` beside the repository (or
`CHUMPHAE_FALLS_DATA`). The shipped model was trained on these sets, so this
is a check that the command, the file reading and the model work together
on real files (falls found, the hardest daily activities left alone), not a
figure: the figures come from scripts/eval_falls.py's cross-set and
leave-subjects-out runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from chumphae.cli import app
from chumphae.detect.fall_data import pad_still, read_labels, trial_seed
from chumphae.detect.fall_detector import Judged, LiveFallDetector, detect_falls
from chumphae.detect.recordings import STANDARD_GRAVITY, read_recording
from tests.detect import wrist

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("CHUMPHAE_FALLS_DATA", ROOT.parent / "shared" / "data" / "falls"))

pytestmark = pytest.mark.skipif(not (DATA / "fallalld" / "labels.csv").is_file()
                                or not (DATA / "umafall" / "labels.csv").is_file(),
                                reason=f"real fall recordings not found at {DATA} (set CHUMPHAE_FALLS_DATA)")

# (set, trial, nominal Hz, a fall?): falls of several kinds and the daily activities that fool detectors most
TRIALS = [
    ("fallalld", "S02_A101_T01", 50, True),
    ("fallalld", "S02_A110_T01", 50, True),
    ("fallalld", "S02_A120_T02", 50, True),
    ("fallalld", "S02_A130_T01", 50, True),
    ("fallalld", "S02_A003_T01", 50, False),
    ("fallalld", "S02_A001_T02", 50, False),
    ("fallalld", "S02_A012_T01", 50, False),
    ("fallalld", "S02_A009_T01", 50, False),
    ("umafall", "Subject_02_Fall_forwardFall_1", 20, True),
    ("umafall", "Subject_02_Fall_backwardFall_1", 20, True),
    ("umafall", "Subject_02_Fall_lateralFall_1", 20, True),
    ("umafall", "Subject_04_ADL_LyingDown_OnABed_1", 20, False),
    ("umafall", "Subject_02_ADL_Aplausing_3", 20, False),
    ("umafall", "Subject_02_ADL_HandsUp_1", 20, False),
    ("umafall", "Subject_02_ADL_Hopping_1", 20, False),
]


def run_cli(files: list[Path], hz: float, units: str = "g") -> list[dict[str, object]]:
    res = CliRunner().invoke(app, ["falls", "detect", *map(str, files), "--hz", str(hz), "--units", units])
    assert res.exit_code == 0, res.output
    return [json.loads(x) for x in res.stdout.strip().splitlines()]


@pytest.mark.parametrize("rate", [50, 20])
def test_real_trials_through_the_command(rate: int) -> None:
    chosen = [x for x in TRIALS if x[2] == rate]
    files = [DATA / s / f"{n}.csv" for s, n, _, _ in chosen]
    out = run_cli(files, rate)
    assert [o["file"] for o in out] == [str(f) for f in files]
    for (_, name, _, fall), o in zip(chosen, out, strict=True):
        falls = o["falls"]
        assert isinstance(falls, list)
        if fall:
            assert len(falls) == 1, name
            f = falls[0]
            assert set(f) == {"t", "decided_at", "confidence"}
            assert 0 < f["decided_at"] - f["t"] <= 10.0 and 0.5 <= f["confidence"] <= 1.0
        else:
            assert falls == [], name


@pytest.mark.parametrize("hz", [25, 100, 200])
def test_a_real_fall_in_ms2_at_another_rate_with_untidy_stamps(tmp_path: Path, hz: int) -> None:
    """The same UMAFall fall as a 25–200 Hz m/s² watch with jittery, repeated stamps would log it."""
    rec = read_recording(DATA / "umafall" / "Subject_02_Fall_forwardFall_1.csv")
    order = np.argsort(rec.t, kind="stable")
    t, xyz = rec.t[order], rec.xyz[order]
    t100 = np.arange(t[0], t[-1], 1.0 / hz)
    x100 = np.column_stack([np.interp(t100, t, xyz[:, k]) for k in range(3)])
    rng = np.random.default_rng(7)
    stamps = t100 + rng.normal(0, 0.1 / hz, len(t100))
    dup = rng.random(len(t100)) < 0.1
    stamps[dup] = np.roll(stamps, 1)[dup]
    p = wrist.write_csv(tmp_path / "fall_ms2.csv", stamps, x100 * STANDARD_GRAVITY, extra=False)
    (line,) = run_cli([p], hz, "ms2")
    assert len(line["falls"]) == 1  # type: ignore[arg-type]


def test_the_live_detector_reports_what_the_file_detector_does() -> None:
    for s, name, hz, _ in [TRIALS[0], TRIALS[8], TRIALS[11]]:
        rec = read_recording(DATA / s / f"{name}.csv")
        t, xyz = pad_still(rec.t, rec.xyz, hz, seed=trial_seed(name))
        offline = detect_falls(t, xyz, hz)
        live = LiveFallDetector(hz)
        got = []
        order = np.argsort(t, kind="stable")
        t, xyz = t[order], xyz[order]
        edges = np.searchsorted(t, np.arange(t[0], t[-1] + 0.5, 0.5))  # a GATT batch every ½ s
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            got += live.push(t[lo:hi], xyz[lo:hi])
        got += live.flush()
        assert [round(f.t, 1) for f in got] == [round(f.t, 1) for f in offline], name
        assert [f.confidence for f in got] == pytest.approx([f.confidence for f in offline], abs=0.05)
        for f in got:
            assert f.decided_at - f.t <= 10.0


# S02_A112_T01 (a fall) and backwardFall_4 were judged differently live and from the file: the 20 Hz
# grid and its bins started wherever the buffer did. (Candidates chained over a long run of motion can
# still differ: see docs/fall-detection.md.)
@pytest.mark.parametrize("s,name,hz", [("fallalld", "S02_A112_T01", 50), ("fallalld", "S02_A003_T01", 50),
                                       ("umafall", "Subject_02_Fall_backwardFall_4", 20),
                                       ("umafall", "Subject_02_ADL_Aplausing_3", 20)])
def test_live_and_file_judge_the_same_candidates_whatever_the_push_size(s: str, name: str, hz: int) -> None:
    rec = read_recording(DATA / s / f"{name}.csv")
    order = np.argsort(rec.t, kind="stable")
    t, xyz = pad_still(rec.t[order], rec.xyz[order], hz, seed=trial_seed(name))
    pre_t, pre = pad_still(-t[::-1], xyz[::-1], hz, seconds=10.0, seed=1)  # 10 s still before, as a band streams
    t, xyz = -pre_t[::-1], pre[::-1]
    offline: list[Judged] = []
    falls = detect_falls(t, xyz, hz, judged=offline)
    assert offline
    for push in (1, 7, 25, 83):  # 83: the most samples one GATT notification carries
        live = LiveFallDetector(hz, judged=[])
        got = []
        for lo in range(0, len(t), push):
            got += live.push(t[lo:lo + push], xyz[lo:lo + push])
        got += live.flush()
        assert live.judged == offline, (name, push)  # same candidates, same times, same probabilities
        assert [(f.t, f.confidence) for f in got] == [(f.t, f.confidence) for f in falls], (name, push)


def test_labels_of_both_sets_are_read() -> None:
    for s in ("fallalld", "umafall"):
        trials = read_labels(s, DATA / s)
        assert any(t.fall for t in trials) and any(not t.fall for t in trials)
        assert all(t.path.is_file() for t in trials[:20])
