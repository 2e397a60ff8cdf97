"""Timeline repair, clipping, and the rule-only detector (kept as the baseline eval_falls.py measures)."""

from __future__ import annotations

import numpy as np
import pytest

from chumphae.detect.fall_stream import FallParams, detect_rails, prepare
from chumphae.detect.fall_stream import detect_falls_rules as detect_falls
from tests.detect import wrist


def test_repeated_timestamps_are_spread_not_dropped() -> None:
    t = np.repeat(np.arange(0, 5, 0.08), 4)  # batches of 4 samples share one stamp (50 Hz true)
    xyz = np.tile([0.0, 0.0, 1.0], (len(t), 1))
    tl = prepare(t, xyz, 50.0)
    assert tl.repeated == len(t) - len(np.unique(t))
    assert len(tl.grids) == 1
    assert 45 <= tl.rate_hz <= 55


def test_millisecond_clock_is_recognised() -> None:
    t = np.arange(0, 3000, 20.0)  # ms at 50 Hz
    tl = prepare(t, np.tile([0.0, 0.0, 1.0], (len(t), 1)), 50.0)
    assert tl.clock_scale == 1e3
    assert tl.grids[0].t[-1] == pytest.approx(2.98, abs=0.03)


def test_gap_splits_the_stream_and_shuffled_rows_are_sorted() -> None:
    t = np.r_[np.arange(0, 4, 0.02), np.arange(10, 14, 0.02)]
    xyz = np.tile([0.0, 0.0, 1.0], (len(t), 1))
    order = np.random.default_rng(0).permutation(len(t))
    tl = prepare(t[order], xyz[order], 50.0)
    assert [round(float(g.t[0])) for g in tl.grids] == [0, 10]
    assert all(np.all(np.diff(g.t) > 0) for g in tl.grids)


def test_resampling_keeps_a_peak_between_grid_points() -> None:
    t = np.arange(0, 3, 0.01)
    xyz = np.tile([0.0, 0.0, 1.0], (len(t), 1))
    xyz[150] = [0.0, 0.0, 5.0]  # a 10 ms spike at 100 Hz, resampled to 25 Hz
    g = prepare(t, xyz, 25.0).grids[0]
    assert g.peak.max() == pytest.approx(5.0)


def test_rails_are_found_on_clipped_axes_only() -> None:
    t, xyz, _ = wrist.clean_fall(peak_g=6.0)
    clipped = np.clip(xyz, -2.0, 2.0)
    assert detect_rails(clipped) == pytest.approx((2.0, 2.0, 2.0))
    assert all(np.isinf(detect_rails(xyz)))  # the unclipped 6 g trace shows no rail


@pytest.mark.parametrize("after", ["still", "fidget"])
def test_a_fall_is_found_at_its_impact_and_decided_within_10_s(after: str) -> None:
    t, xyz, impact = wrist.clean_fall(after=after)
    falls = detect_falls(t, xyz, 50.0)
    assert len(falls) == 1
    assert abs(falls[0].t - impact) < 0.5
    assert 0 < falls[0].decided_at - falls[0].t <= 10.0
    assert falls[0].confidence >= FallParams().min_confidence
    assert falls[0].turn_deg is not None and falls[0].turn_deg > 35


def test_a_fall_seen_by_a_2g_watch_is_still_found() -> None:
    t, xyz, impact = wrist.clean_fall(peak_g=6.0)
    falls = detect_falls(t, np.clip(xyz, -2.0, 2.0), 50.0)
    assert len(falls) == 1 and falls[0].clipped
    assert abs(falls[0].t - impact) < 0.5


def test_untidy_timestamps_do_not_change_the_answer() -> None:
    t, xyz, impact = wrist.clean_fall()
    rng = np.random.default_rng(1)
    jittered = t + rng.normal(0, 0.006, len(t))
    dup = rng.random(len(t)) < 0.05
    jittered[dup] = np.roll(jittered, 1)[dup]
    falls = detect_falls(jittered, xyz, 50.0)
    assert len(falls) == 1 and abs(falls[0].t - impact) < 0.5


def test_a_recording_that_starts_mid_fall_is_handled() -> None:
    t, xyz, impact = wrist.clean_fall()
    keep = t >= impact - 0.8
    falls = detect_falls(t[keep], xyz[keep], 50.0)
    assert len(falls) <= 1  # no crash, no double report; it may or may not have enough evidence


def test_a_stumble_with_walking_after_is_not_a_fall() -> None:
    t, xyz, _ = wrist.clean_fall(after="walk")
    assert detect_falls(t, xyz, 50.0) == []


def test_clapping_then_resting_is_not_a_fall() -> None:
    t, xyz = wrist.claps()
    assert detect_falls(t, xyz, 50.0) == []


def test_hitting_a_table_and_leaving_the_hand_there_is_not_a_fall() -> None:
    t, xyz = wrist.table_knock()
    assert detect_falls(t, xyz, 50.0) == []


def test_a_quiet_day_has_no_fall() -> None:
    t = np.arange(0, 600, 0.02)
    xyz = np.tile([-0.95, 0.1, 0.25], (len(t), 1)) + np.random.default_rng(2).normal(0, 0.02, (len(t), 3))
    assert detect_falls(t, xyz, 50.0) == []
