"""Labelled sets of wrist recordings for training and evaluating the fall model.

A set is a folder of CSV recordings (`t,ax,ay,az`, g) with a `labels.csv`
(`name, kind (fall|adl), activity, subject, age, hz`), the shape of
`../shared/data/falls/*/`. A folder of such folders is several sets.
Other sets' shapes are read as `chumphae falls detect` reads a file
(`recordings.read_recording`: other loggers' headers, `,` `;` or tab, an
ms/µs/ns clock made seconds), with
these rules for `labels.csv` (`read_labels`): column names in any case;
`kind` fall or adl in any case (anything else is refused); `name` with or
without `.csv`; `age` optional; `hz` optional or empty (then estimated from
the trial's own stamps, `estimate_hz`); an optional `units` column (g or
ms2) overrides the tools' `--units` per trial. `check_units` refuses a set
whose values are not in the stated units (`recordings.gravity_problem`).

Each trial is followed by `PAD_S` = 15 s of stillness at its last
orientation (a band keeps streaming after a fall; the trials stop), with a
little sensor noise seeded from the trial's name, so every run sees the same
bytes. For training, each trial is also seen clipped at ±2 g (consumer
watches often clip there; neither set does) and as another watch would have
recorded it (`as_other_watch`: 20–60 Hz, jitter, orientation, gain, offset,
noise, range), each as another trial of the same subject, so grouped folds
keep it with its original. Features of every candidate are cached per set in a `.npz` keyed by
the feature code's version and the files' sizes and times.
"""

from __future__ import annotations

import csv
import hashlib
import sys
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from chumphae.detect import fall_features as ff
from chumphae.detect.fall_stream import STANDARD_RANGES_G, clock_scale
from chumphae.detect.recordings import (
    STAMPS_HZ_RANGE,
    STANDARD_GRAVITY,
    Recording,
    RecordingError,
    gravity_level,
    level_problem,
    rate_problem,
    read_recording,
    stamps_hz,
)

PAD_S = 15.0
CLIP_AUGMENT_G = (2.0,)
WATCH_COPIES = 1  # and as another watch would have recorded it (`as_other_watch`)
DEVICE_HZ = (20.0, 60.0)  # training also sees each trial as a ±2 g watch would have recorded it
REST_NOISE_MAX_G = 0.015  # pad_own: at most this noise per axis (the top of as_other_watch's range)
REST_LEVEL_G = (0.9, 1.1)  # pad_own: the rest level kept within these
WEARER_SPEED = (0.8, 1.25)  # as_other_wearer: the motion played this many times as fast (log-uniform)
WEARER_GAIN = (0.7, 1.3)  # as_other_wearer: the dynamic part (|a| around gravity) scaled by this (uniform)
FEATURE_VERSION = "3"  # 3: the absolute grids (2: also local candidates, not shipped)


@dataclass(frozen=True, slots=True)
class Trial:
    set: str
    name: str
    path: Path
    fall: bool
    activity: str
    subject: str
    hz: float
    units: str = "g"  # of the file's ax/ay/az: g or ms2 (read_recording converts to g)


class LabelsError(ValueError):
    """A set that cannot be read as labelled trials (says which set and why, in one line)."""


@dataclass(frozen=True, slots=True)
class SetFeatures:
    """Every candidate of every trial of one set."""

    trials: list[Trial]
    X: NDArray[np.float64]  # (n_candidates, n_features)
    trial_of: NDArray[np.int64]  # (n_candidates,) index into trials
    t: NDArray[np.float64]  # candidate time, s
    decided_at: NDArray[np.float64]


def find_sets(root: Path) -> dict[str, Path]:
    """`root` itself if it has a labels.csv, else each sub-folder that has one."""
    if (root / "labels.csv").is_file():
        return {root.name: root}
    found = {p.parent.name: p.parent for p in sorted(root.glob("*/labels.csv"))}
    if not found:
        raise FileNotFoundError(f"{root}: no labels.csv in it or in its sub-folders")
    return found


LABEL_COLUMNS = ("name", "kind", "activity", "subject")  # required; `age`, `hz`, `units` optional
KINDS = {"fall": True, "adl": False}
UNIT_NAMES = {"g": "g", "ms2": "ms2", "m/s2": "ms2", "m/s^2": "ms2", "m/s²": "ms2"}
HZ_RANGE = STAMPS_HZ_RANGE


def read_labels(name: str, folder: Path, units: str = "g") -> list[Trial]:
    """The trials of one set (see the module doc for what `labels.csv` may look like); `units`: the files' units
    where the labels have no `units` value. Raises LabelsError naming the set, the row and what is wrong."""
    where = folder / "labels.csv"
    try:
        text = where.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise LabelsError(f"{where}: cannot be read ({e})") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise LabelsError(f"{where}: empty")
    delim = max((",", ";", "\t"), key=lambda d: lines[0].count(d))
    reader = csv.reader(lines, delimiter=delim)
    header = [h.strip().lower() for h in next(reader)]
    missing = [c for c in LABEL_COLUMNS if c not in header]
    if missing:
        raise LabelsError(f"{where}: lacks column(s) {', '.join(missing)} (has: {', '.join(header)}); "
                          f"needs {', '.join(LABEL_COLUMNS)} (age, hz, units optional)")
    col = {h: i for i, h in enumerate(header)}
    out: list[Trial] = []
    for n, row in enumerate(reader, start=2):
        def cell(c: str, row: list[str] = row) -> str:
            i = col.get(c)
            return row[i].strip() if i is not None and i < len(row) else ""

        trial, kind, subject = cell("name"), cell("kind").lower(), cell("subject")
        if trial.lower().endswith(".csv"):
            trial = trial[:-4]
        if not trial or not subject:
            raise LabelsError(f"{where}, row {n}: no {'name' if not trial else 'subject'}")
        if kind not in KINDS:
            raise LabelsError(f"{where}, row {n}: kind {cell('kind')!r} is neither fall nor adl")
        u = UNIT_NAMES.get(cell("units").lower() or units)
        if u is None:
            raise LabelsError(f"{where}, row {n}: units {cell('units') or units!r} is neither g nor ms2")
        path = folder / f"{trial}.csv"
        if not path.is_file():
            raise LabelsError(f"{where}, row {n}: no file {path.name} beside it")
        try:
            hz = float(cell("hz")) if cell("hz") else 0.0
        except ValueError:
            raise LabelsError(f"{where}, row {n}: hz {cell('hz')!r} is not a number") from None
        if not hz:
            hz = estimate_hz(path, u)
        elif not 0 < hz <= HZ_RANGE[1]:
            raise LabelsError(f"{where}, row {n}: hz {hz:g} is not a sampling rate")
        out.append(Trial(name, trial, path, KINDS[kind], cell("activity") or kind, f"{name}:{subject}", hz, u))
    if not out:
        raise LabelsError(f"{where}: no trials")
    return out


@lru_cache(maxsize=8192)
def _stamps_hz(path: str, mtime_ns: int, units: str) -> float:
    return stamps_hz(read_recording(path, units).t)


def estimate_hz(path: Path, units: str = "g") -> float:
    """A trial's rate from its own stamps (`recordings.stamps_hz`: the mean step between pauses of over 1 s; the
    median step tells s from an ms/µs/ns clock), for labels without `hz`.
    Raises LabelsError when the stamps give no rate in `HZ_RANGE`."""
    try:
        hz = _stamps_hz(str(path), path.stat().st_mtime_ns, units)
    except RecordingError as e:
        raise LabelsError(str(e)) from None
    if not hz:
        raise LabelsError(f"{path}: no hz in labels.csv and its stamps give no sampling rate of "
                          f"{HZ_RANGE[0]:g}–{HZ_RANGE[1]:g} Hz; give the hz column")
    return round(hz, 1)


READS_KEPT_BYTES = 256 * 2**20  # recordings kept read (`_reads`); the shipped sets' arrays take 88 MB


class _ReadCache:
    """Each trial file read once: `check_units` reads every trial before any long work, then the features read it
    again for each training copy and `trial_fingerprint` once more (five reads of ~14 s for the shipped sets).
    Recordings are kept by file (path, size, modification time, units) up to `limit` bytes of arrays, the least
    recently used dropped first; their arrays are read-only, so no reader can change what another is handed."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.kept: OrderedDict[tuple[str, int, int, str], Recording] = OrderedDict()

    def read(self, path: Path, units: str) -> Recording:
        try:
            st = path.stat()
        except OSError:
            return read_recording(path, units)  # says why in its RecordingError
        key = (str(path), st.st_size, st.st_mtime_ns, units)
        rec = self.kept.get(key)
        if rec is not None:
            self.kept.move_to_end(key)
            return rec
        rec = read_recording(path, units)
        rec.t.setflags(write=False)
        rec.xyz.setflags(write=False)
        n = rec.t.nbytes + rec.xyz.nbytes
        if n <= self.limit:
            self.kept[key] = rec
            self.size += n
            while self.size > self.limit:
                _, old = self.kept.popitem(last=False)
                self.size -= old.t.nbytes + old.xyz.nbytes
        return rec


_reads = _ReadCache(READS_KEPT_BYTES)


def trial_recording(tr: Trial) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(t in seconds, xyz in g) of one trial, as `chumphae falls detect` reads it: the file's units (`tr.units`)
    and its clock (an ms/µs/ns clock, epoch stamps included, divided into seconds; a clock in seconds is kept
    to the bit, so the sets here give the features they always gave)."""
    rec = _reads.read(tr.path, tr.units)
    scale = clock_scale(np.sort(rec.t), tr.hz) if len(rec.t) else 1.0
    return (rec.t / scale if scale != 1.0 else rec.t), rec.xyz


def check_units(name: str, trials: list[Trial]) -> list[str]:
    """Every trial read in its units before any long work, and the set judged by the median of its trials'
    gravity levels (`recordings.level_problem`, what `chumphae falls detect` applies to one file): raises
    LabelsError (one line: the level, the fix) when the set is not an accelerometer's reading with gravity in
    its units (m/s² read as g, g as m/s², milli-g, linear acceleration). A set that passes may still hold
    trials that would not on their own (some UMAFall trials read 0.2–0.4 g at rest): they are judged, and
    counted in the one warning line returned (none when every trial is at about 1 g); so are trials whose
    stamps show a rate more than 1.3× away from their `hz` (`recordings.rate_problem`)."""
    levels: list[float] = []
    odd: list[tuple[Trial, str]] = []
    off_rate: list[tuple[Trial, str]] = []
    for tr in trials:
        try:
            rec = _reads.read(tr.path, tr.units)  # kept: the features and the fingerprints read it again
        except RecordingError as e:
            raise LabelsError(f"{name}: {e}") from None
        g = gravity_level(rec.xyz, tr.hz)
        levels.append(g)
        problem = level_problem(g, tr.units)
        if problem is not None:
            odd.append((tr, f"{g * STANDARD_GRAVITY:.3g} m/s²" if tr.units == "ms2" else f"{g:.3g} g"))
        rate = rate_problem(rec.t, tr.hz)
        if rate is not None:
            off_rate.append((tr, rate.split(";")[0].replace("--hz", "its hz")))
    units = Counter(tr.units for tr in trials).most_common(1)[0][0]
    problem = level_problem(float(np.nanmedian(levels)), units) if levels else None
    if problem is not None and problem[0]:
        raise LabelsError(f"{name} ({len(trials)} trials, median over them): {problem[1]} "
                          "(here: --units g|ms2, or a units column in labels.csv)")
    out = []
    if odd:
        tr, why = odd[0]
        out.append(f"{name}: {len(odd)} of {len(trials)} trials judged though their gravity level is away from 1 g "
                   f"(the set's is not), first {tr.path.name} at {why}")
    if off_rate:
        tr, why = off_rate[0]
        out.append(f"{name}: {len(off_rate)} of {len(trials)} trials judged with a labelled hz more than 1.3× away "
                   f"from what their stamps show, first {tr.path.name}: {why}")
    return out


def trial_fingerprint(tr: Trial) -> str:
    """The content of a trial, whatever its file's name, folder, header or delimiter: the first 12 hex digits
    of the sha256 of its accelerations in g rounded to 1e-4 (what scripts/train_falls.py lists beside a model,
    so scripts/eval_falls.py can leave a model's own training trials out of its figures)."""
    _, xyz = trial_recording(tr)
    q = np.round(xyz * 1e4).astype("<i8")
    return hashlib.sha256(q.tobytes()).hexdigest()[:12]


FINGERPRINTS_SUFFIX = ".trials.txt"  # beside a model file: its training trials' `trial_fingerprint`s


def fingerprints_path(model_path: Path) -> Path:
    """Where the fingerprints of a model file's training trials are: `fall_model.json` → `fall_model.trials.txt`."""
    return model_path.with_suffix(FINGERPRINTS_SUFFIX)


def write_fingerprints(path: Path, trials: list[Trial]) -> int:
    """The sorted, distinct `trial_fingerprint`s of `trials`, one a line after a comment line; returns how many."""
    fps = sorted({trial_fingerprint(tr) for tr in trials})
    path.write_text("# trial_fingerprint of every trial the model beside this file was trained on "
                    "(chumphae/detect/fall_data.py)\n" + "".join(f"{fp}\n" for fp in fps), encoding="utf-8")
    return len(fps)


def read_fingerprints(path: Path) -> set[str] | None:
    """The fingerprints written by `write_fingerprints`, or None when there is no such file."""
    if not path.is_file():
        return None
    return {ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")}


def pad_still(t: NDArray[np.float64], xyz: NDArray[np.float64], hz: float, seconds: float = PAD_S,
              seed: int = 0, noise_g: float = 0.004) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The trial followed by `seconds` of stillness at its last orientation (1 g, light noise)."""
    if len(t) == 0:
        return t, xyz
    n = int(seconds * hz)
    last = xyz[-1] / max(1e-6, float(np.linalg.norm(xyz[-1])))
    rng = np.random.default_rng(seed)
    tail = last + rng.normal(0.0, noise_g, (n, 3))
    return (np.r_[t, float(np.max(t)) + np.arange(1, n + 1) / hz], np.vstack([xyz, tail]))


def rest_floor(t: NDArray[np.float64], xyz: NDArray[np.float64], hz: float, window_s: float = 1.0
               ) -> tuple[NDArray[np.float64], float]:
    """The recording's own sensor at rest: (per-axis noise in g, level |a| in g) over its stillest `window_s`.

    Windows of `window_s` (at the nominal rate, half overlapping) over the samples in time order; the one with
    the least total variance gives the noise (each axis's standard deviation) and the level (its mean |a|).
    A recording shorter than two windows' worth gives (0.004 g per axis, 1 g), `pad_still`'s defaults. A
    recording that is never still has no rest to copy: the noise is capped at `REST_NOISE_MAX_G` per axis
    (the noisiest watch `as_other_watch` makes) and the level kept within `REST_LEVEL_G`.
    """
    n = max(4, int(round(window_s * hz)))
    if len(t) < 2 * n:
        return np.full(3, 0.004), 1.0
    x = xyz[np.argsort(t, kind="stable")]
    starts = np.arange(0, len(x) - n + 1, max(1, n // 2))
    var = np.array([x[s:s + n].var(axis=0) for s in starts])  # (windows, 3)
    k = int(np.argmin(var.sum(axis=1)))
    w = x[starts[k]:starts[k] + n]
    level = float(np.clip(np.linalg.norm(w, axis=1).mean(), *REST_LEVEL_G))
    return np.minimum(np.sqrt(var[k]), REST_NOISE_MAX_G), level


def pad_own(t: NDArray[np.float64], xyz: NDArray[np.float64], hz: float, seconds: float = PAD_S,
            seed: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """`pad_still` with the padding as the recording's own sensor would read at rest (falls-13, training only).

    The last sample's direction at the level of the stillest second, with that second's per-axis noise
    (`rest_floor`): the padding then looks like the recording's own stillness, not like another sensor's
    (1.000 g with 0.004 g of noise, what the evaluation protocol appends), so a model cannot learn "this
    window ends in the appended stillness" as a cue. The evaluation keeps `pad_still`.
    """
    if len(t) == 0:
        return t, xyz
    noise, level = rest_floor(t, xyz, hz)
    n = int(seconds * hz)
    last = xyz[-1] / max(1e-6, float(np.linalg.norm(xyz[-1]))) * level
    rng = np.random.default_rng(seed)
    tail = last + rng.normal(0.0, 1.0, (n, 3)) * noise
    return (np.r_[t, float(np.max(t)) + np.arange(1, n + 1) / hz], np.vstack([xyz, tail]))


def trial_seed(name: str) -> int:
    return zlib.crc32(name.encode())


def _rotation(rng: np.random.Generator) -> NDArray[np.float64]:
    q = rng.normal(size=4)
    a, b, c, d = q / np.linalg.norm(q)
    return np.array([[a*a + b*b - c*c - d*d, 2*(b*c - a*d), 2*(b*d + a*c)],
                     [2*(b*c + a*d), a*a - b*b + c*c - d*d, 2*(c*d - a*b)],
                     [2*(b*d - a*c), 2*(c*d + a*b), a*a - b*b - c*c + d*d]])


def as_other_watch(t: NDArray[np.float64], xyz: NDArray[np.float64], hz: float, seed: int
                   ) -> tuple[NDArray[np.float64], NDArray[np.float64], float, float]:
    """The recording as another watch might have made it: (t, xyz, nominal hz, its noise in g).

    Seeded per trial: a random rate in `DEVICE_HZ` (linear interpolation, so
    a slower watch misses short peaks as real ones do), clock jitter (10 % of
    a period) and millisecond stamps, a random orientation on the wrist, a
    gain error of ±5 % and an offset of ±0.03 g per axis, white noise of
    0.002–0.015 g and axes clipping at ±4, ±8 or ±16 g (or not at all).
    """
    rng = np.random.default_rng(seed)
    order = np.argsort(t, kind="stable")
    t, xyz = t[order], xyz[order]
    new_hz = float(rng.uniform(*DEVICE_HZ))
    tn = np.arange(float(t[0]), float(t[-1]), 1.0 / new_hz)
    tn = tn + rng.normal(0.0, 0.1 / new_hz, len(tn))
    x = np.column_stack([np.interp(tn, t, xyz[:, j]) for j in range(3)]) @ _rotation(rng).T
    x = x * (1.0 + rng.uniform(-0.05, 0.05, 3)) + rng.uniform(-0.03, 0.03, 3)
    noise = float(rng.uniform(0.002, 0.015))
    x = x + rng.normal(0.0, noise, x.shape)
    rail = [None, 16.0, 8.0, 4.0][int(rng.integers(0, 4))]
    if rail is not None:
        x = np.clip(x, -rail, rail)
    stamps: NDArray[np.float64] = np.round(np.sort(tn), 3).astype(np.float64)
    return stamps, x, new_hz, noise


def rail_of(xyz: NDArray[np.float64]) -> float | None:
    """The clipping rail a recording touches: the smallest of `STANDARD_RANGES_G` at or above its largest |axis| when that
    reaches 98 % of it, else None."""
    top = float(np.max(np.abs(xyz))) if len(xyz) else 0.0
    for r in STANDARD_RANGES_G:
        if top <= r * 1.001:
            return r if top >= 0.98 * r else None
    return None


def as_other_wearer(t: NDArray[np.float64], xyz: NDArray[np.float64], hz: float, seed: int
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """The recording as another wearer might have moved it: (t, xyz, nominal hz). falls-14, training only.

    Seeded per trial: the motion played s× as fast (s log-uniform in `WEARER_SPEED`: people of other ages
    move at other speeds; the samples keep their values, the clock is divided by s, so the nominal rate is
    hz·s), and the dynamic part scaled by m (uniform in `WEARER_GAIN`: weaker or stronger people) around
    gravity, estimated per sample as the 1 s centred moving mean of each axis normalised to 1 g. A
    recording that touches a clipping rail (`rail_of`) is clipped there again.
    """
    rng = np.random.default_rng(seed)
    speed = float(np.exp(rng.uniform(np.log(WEARER_SPEED[0]), np.log(WEARER_SPEED[1]))))
    gain = float(rng.uniform(*WEARER_GAIN))
    order = np.argsort(t, kind="stable")
    t, xyz = t[order], xyz[order]
    if len(t) == 0:
        return t, xyz, hz * speed
    n = max(1, int(round(hz)))
    kernel = np.ones(n) / n
    grav = np.column_stack([np.convolve(np.pad(xyz[:, j], (n // 2, n - 1 - n // 2), mode="edge"), kernel,
                                        mode="valid") for j in range(3)])
    grav = grav / np.maximum(np.linalg.norm(grav, axis=1), 1e-6)[:, None]
    out = grav + gain * (xyz - grav)
    rail = rail_of(xyz)
    if rail is not None:
        out = np.clip(out, -rail, rail)
    t0 = float(t[0])
    return t0 + (t - t0) / speed, out, hz * speed


def trial_signal(tr: Trial, pad: bool = True, clip_g: float | None = None, other_watch: int = 0,
                 own_pad: bool = False, wearer: int = 0) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """(t, xyz, nominal hz) of one trial as a copy sees it: clipped at ±`clip_g`, re-recorded by `as_other_watch`
    with the k-th seed, moved by `as_other_wearer` with the k-th seed (`wearer`), then padded (see
    trial_candidates; `own_pad`: by `pad_own`, the copy's own rest)."""
    t, xyz = trial_recording(tr)
    hz, noise = tr.hz, 0.004
    if wearer:
        t, xyz, hz = as_other_wearer(t, xyz, hz, trial_seed(tr.name) ^ (0xA6E5 * wearer))
    if clip_g is not None:
        xyz = np.clip(xyz, -clip_g, clip_g)
    if other_watch:
        t, xyz, hz, noise = as_other_watch(t, xyz, hz, trial_seed(tr.name) ^ (0x5EED * other_watch))
    if pad and own_pad:
        t, xyz = pad_own(t, xyz, hz, seed=trial_seed(tr.name))
    elif pad:
        t, xyz = pad_still(t, xyz, hz, seed=trial_seed(tr.name), noise_g=noise)
    return t, xyz, hz


def trial_candidates(tr: Trial, pad: bool = True, clip_g: float | None = None,
                     other_watch: int = 0, own_pad: bool = False, wearer: int = 0) -> list[ff.Candidate]:
    """Candidates of one trial (padded); `clip_g` first clips every axis at ±clip_g (a smaller watch);
    `other_watch` k > 0: first re-recorded by `as_other_watch` with the k-th seed (training augmentation)."""
    t, xyz, hz = trial_signal(tr, pad, clip_g, other_watch, own_pad, wearer)
    _, ss = ff.streams(t, xyz, hz)
    return [c for s in ss for c in ff.stream_candidates(s)]


def _cache_key(trials: list[Trial]) -> str:
    h = hashlib.sha256(FEATURE_VERSION.encode() + repr(ff.FEATURES).encode())
    for tr in trials:
        st = tr.path.stat()
        h.update(f"{tr.name}:{tr.fall}:{st.st_size}:{st.st_mtime_ns}".encode())
        if tr.units != "g":  # (in g the key stays what it was, so existing caches still serve)
            h.update(f":{tr.units}".encode())
    return h.hexdigest()[:16]


def set_features(name: str, folder: Path, cache_dir: Path | None = None, limit: list[str] | None = None,
                 progress: bool = True, clip_g: float | None = None, other_watch: int = 0,
                 own_pad: bool = False, wearer: int = 0, units: str = "g") -> SetFeatures:
    """Features of every candidate in a set (cached in `cache_dir` when given); `units`: read_labels's.

    `clip_g`: as if recorded by a watch whose axes clip at ±clip_g (training augmentation).
    `own_pad`: padded by `pad_own` (the copy's own rest) instead of the evaluation's `pad_still`.
    `wearer` k > 0: first moved by `as_other_wearer` with the k-th seed (training augmentation, falls-14).
    """
    trials = read_labels(name, folder, units)
    if limit is not None:
        keep = set(limit)
        trials = [t for t in trials if t.name in keep]
    key = _cache_key(trials) + (f"-clip{clip_g:g}" if clip_g is not None else "") + (f"-watch{other_watch}" if other_watch else "") + ("-ownpad" if own_pad else "") + (f"-wearer{wearer}" if wearer else "")
    cache = cache_dir / f"falls-{name}-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return SetFeatures(trials, z["X"], z["trial_of"], z["t"], z["decided_at"])
    rows: list[NDArray[np.float64]] = []
    of: list[int] = []
    tt: list[float] = []
    dec: list[float] = []
    for k, tr in enumerate(trials):
        for c in trial_candidates(tr, clip_g=clip_g, other_watch=other_watch, own_pad=own_pad, wearer=wearer):
            rows.append(c.features)
            of.append(k)
            tt.append(c.t)
            dec.append(c.decided_at)
        if progress and (k + 1) % 250 == 0:
            print(f"  {name}: features of {k + 1}/{len(trials)} trials", file=sys.stderr, flush=True)
    X = np.vstack(rows) if rows else np.zeros((0, len(ff.FEATURES)))
    out = SetFeatures(trials, X, np.asarray(of, dtype=np.int64), np.asarray(tt), np.asarray(dec))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, X=out.X, trial_of=out.trial_of, t=out.t, decided_at=out.decided_at)
    return out


def combine(parts: list[SetFeatures]) -> SetFeatures:
    """Several sets' candidates as one (trial indices shifted)."""
    trials: list[Trial] = []
    Xs, ofs, ts, ds = [], [], [], []
    for S in parts:
        Xs.append(S.X)
        ofs.append(S.trial_of + len(trials))
        ts.append(S.t)
        ds.append(S.decided_at)
        trials += S.trials
    return SetFeatures(trials, np.vstack(Xs), np.concatenate(ofs), np.concatenate(ts), np.concatenate(ds))


class Copy(NamedTuple):
    """One copy of a set the model is trained on: its name (as the screening caches name it) and how it is made."""
    name: str
    clip_g: float | None = None
    other_watch: int = 0
    own_pad: bool = False
    wearer: int = 0


# The trials as recorded, a copy clipped at ±CLIP_AUGMENT_G and `WATCH_COPIES` copies re-recorded by
# `as_other_watch` (rate, jitter, orientation, gain, noise, range), in this order.
TRAINING_COPIES: tuple[Copy, ...] = (
    (Copy("rec"),) + tuple(Copy(f"clip{g:g}", clip_g=g) for g in CLIP_AUGMENT_G)
    + tuple(Copy(f"watch{k}", other_watch=k) for k in range(1, WATCH_COPIES + 1)))


# falls-13's variant (not shipped unless docs/fall-detection.md says so): the same copies, each padded by
# `pad_own` (its own rest: noise floor and level) instead of the evaluation protocol's `pad_still`.
OWN_PAD_COPIES: tuple[Copy, ...] = tuple(c._replace(name=c.name + "-ownpad", own_pad=True) for c in TRAINING_COPIES)
# falls-14's variant (not shipped unless docs/fall-detection.md says so): the shipped copies and `WEARER_COPIES`
# more, each moved by `as_other_wearer` (another speed, another strength), both classes.
WEARER_COPIES = 1
WEARER_RECIPE: tuple[Copy, ...] = TRAINING_COPIES + tuple(Copy(f"wearer{k}", wearer=k)
                                                          for k in range(1, WEARER_COPIES + 1))
RECIPES: dict[str, tuple[Copy, ...]] = {"shipped": TRAINING_COPIES, "ownpad": OWN_PAD_COPIES, "wearer": WEARER_RECIPE,
                                        "bag5": TRAINING_COPIES, "subjinv": TRAINING_COPIES,
                                        "subjw": TRAINING_COPIES, "subjhalf": TRAINING_COPIES,
                                        "subjauto": TRAINING_COPIES}
# falls-14's other variant (not shipped unless docs/fall-detection.md says so): the shipped copies, this many
# tree models on bootstraps of the subjects, log-odds averaged (fall_train.fit_model's `bags`).
RECIPE_BAGS: dict[str, int] = {"bag5": 5}
# falls-15's variant (not shipped unless docs/fall-detection.md says so): the shipped copies, leaving out the k
# features that most identify the subject among the training set's daily activities, k chosen among these by
# subject-grouped out-of-fold scores of the training set (fall_train.fit_model's `drop_ks`).
RECIPE_DROP_KS: dict[str, tuple[int, ...]] = {"subjinv": (0, 3, 6)}
# falls-15's second variant (not shipped unless docs/fall-detection.md says so): the shipped copies, every training
# subject's rows weighing the same in total within each class (fall_train.fit_model's `subject_weight`).
RECIPE_SUBJECT_WEIGHT: frozenset[str] = frozenset({"subjw", "subjhalf"})
# falls-16's variant (not shipped unless docs/fall-detection.md says so): subjw's weights raised to this power
# (fall_train.fit_model's `subject_power`; a subject with n rows in a class weighs n ** 0.5 in total); others 1.
RECIPE_SUBJECT_POWER: dict[str, float] = {"subjhalf": 0.5}
# falls-17's variant (not shipped unless docs/fall-detection.md says so): the subject-balance power chosen among
# these inside the training set by its subject-grouped out-of-fold scores (fall_train.fit_model's `subject_powers`).
RECIPE_SUBJECT_POWERS: dict[str, tuple[float, ...]] = {"subjauto": (0.0, 0.5, 1.0)}


def training_parts(name: str, folder: Path, cache_dir: Path | None = None, limit: list[str] | None = None,
                   progress: bool = True, copies: tuple[Copy, ...] = TRAINING_COPIES, units: str = "g"
                   ) -> list[tuple[Copy, SetFeatures]]:
    """Each of `copies` (default `TRAINING_COPIES`) of a set with its features, in order (the first: the
    trials as recorded)."""
    return [(c, set_features(name, folder, cache_dir, limit, progress, clip_g=c.clip_g, other_watch=c.other_watch,
                             own_pad=c.own_pad, wearer=c.wearer, units=units))
            for c in copies]


def training_set(name: str, folder: Path, cache_dir: Path | None = None, limit: list[str] | None = None,
                 progress: bool = True, copies: tuple[Copy, ...] = TRAINING_COPIES, units: str = "g") -> SetFeatures:
    """A set as the model is trained on it: its `copies` (default `TRAINING_COPIES`) as one."""
    return combine([S for _, S in training_parts(name, folder, cache_dir, limit, progress, copies, units)])
