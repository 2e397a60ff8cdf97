"""debt19: a set's trial files are read once (`fall_data._reads`), by `check_units`, for the features of every
training copy and for the fingerprints; what they give is what a fresh read gives.

A small set written to tmp_path: 50 Hz trials of a wrist at rest, walking and falling (one with an ms clock).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from chumphae.detect import fall_data
from chumphae.detect.fall_data import TRAINING_COPIES, check_units, read_labels, trial_candidates, trial_fingerprint
from chumphae.detect.recordings import Recording, read_recording

HZ = 50.0


def trial(seed: int, fall: bool) -> tuple[np.ndarray, np.ndarray]:
    """20 s at HZ: walking (about 1 g with a 2 Hz swing), then for a fall a 3.5 g impact and lying still."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(20 * HZ)) / HZ
    xyz = np.column_stack([0.2 * np.sin(2 * np.pi * 2 * t), 0.1 * np.cos(2 * np.pi * 2 * t), np.ones_like(t)])
    if fall:
        k = int(10 * HZ)
        xyz[k:k + 3] = [2.0, 1.5, 2.2]
        xyz[k + 3:] = [0.98, 0.1, 0.1]
    return t, xyz + rng.normal(0.0, 0.01, xyz.shape)


def write_trial(path: Path, seed: int, fall: bool, ms: bool = False) -> None:
    t, xyz = trial(seed, fall)
    stamps = t * 1e3 + 1.7e12 if ms else t
    lines = "".join(f"{s:.4f},{x:.4f},{y:.4f},{z:.4f}\n" for s, (x, y, z) in zip(stamps, xyz, strict=True))
    path.write_text("t,ax,ay,az\n" + lines, encoding="utf-8")


def write_set(folder: Path) -> Path:
    folder.mkdir()
    rows = ["name,kind,activity,subject,hz"]
    for i, fall in enumerate([True, False, True, False]):
        write_trial(folder / f"trial{i}.csv", i, fall, ms=i == 2)  # one trial with ms epoch stamps
        rows.append(f"trial{i},{'fall' if fall else 'adl'},{'fall' if fall else 'walk'},S{i % 2},{HZ:g}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """A fresh read cache, and how many times each file was read from disk."""
    counted: Counter[str] = Counter()

    def counting(path: str | Path, units: str = "g") -> Recording:
        counted[Path(path).name] += 1
        return read_recording(path, units)

    monkeypatch.setattr(fall_data, "_reads", fall_data._ReadCache(fall_data.READS_KEPT_BYTES))
    monkeypatch.setattr(fall_data, "read_recording", counting)
    return counted


def features(trials: list[fall_data.Trial]) -> list[np.ndarray]:
    return [c.features for copy in TRAINING_COPIES for tr in trials
            for c in trial_candidates(tr, clip_g=copy.clip_g, other_watch=copy.other_watch)]


def test_check_units_the_copies_and_the_fingerprints_read_each_file_once(
        tmp_path: Path, reads: Counter[str], monkeypatch: pytest.MonkeyPatch) -> None:
    trials = read_labels("mini", write_set(tmp_path / "mini"))
    assert check_units("mini", trials) == []
    got = features(trials)
    prints = [trial_fingerprint(tr) for tr in trials]
    assert reads == {f"trial{i}.csv": 1 for i in range(4)}  # were 1 + 3 copies + 1 fingerprint = 5 each
    assert got and len(set(prints)) == 4

    monkeypatch.setattr(fall_data, "_reads", fall_data._ReadCache(0))  # keeps nothing: each read from disk
    assert prints == [trial_fingerprint(tr) for tr in trials]
    again = features(trials)
    assert len(again) == len(got) and all(np.array_equal(a, b) for a, b in zip(again, got, strict=True))
    assert reads == {f"trial{i}.csv": 5 for i in range(4)}  # 1 fingerprint + 3 copies more, none kept


def test_what_is_kept_is_read_only_and_a_changed_file_is_read_again(tmp_path: Path, reads: Counter[str]) -> None:
    trials = read_labels("mini", write_set(tmp_path / "mini"))
    t, xyz = fall_data.trial_recording(trials[0])
    with pytest.raises(ValueError, match="read-only"):
        xyz[0, 0] = 9.0  # no reader can change what the next one is handed
    path = trials[0].path
    write_trial(path, 99, True)  # other values, the same size
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    _, xyz2 = fall_data.trial_recording(trials[0])
    assert reads["trial0.csv"] == 2 and not np.array_equal(xyz2, xyz)


def test_the_cache_keeps_at_most_its_bytes_the_least_recently_used_dropped(tmp_path: Path,
                                                                           reads: Counter[str]) -> None:
    trials = read_labels("mini", write_set(tmp_path / "mini"))
    one = 1000 * 8 + 1000 * 3 * 8  # the arrays of one 20 s trial at 50 Hz
    cache = fall_data._ReadCache(2 * one)
    for tr in trials + trials[2:]:
        cache.read(tr.path, tr.units)
    assert cache.size <= 2 * one and len(cache.kept) == 2
    assert reads == {"trial0.csv": 1, "trial1.csv": 1, "trial2.csv": 1, "trial3.csv": 1}  # 2 and 3 kept
    cache.read(trials[0].path, "g")
    assert reads["trial0.csv"] == 2
