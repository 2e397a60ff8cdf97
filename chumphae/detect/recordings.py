"""Accelerometer recordings from CSV files, for offline fall evaluation.

The contract is small on purpose so anyone's recordings can be fed in: a
header row naming `t`, `ax`, `ay`, `az` (any order, any case, other columns
ignored), `t` in seconds, accelerations in g or m/s² (`--units`). The
delimiter may be `,`, `;` or a tab. Rows that do not parse (blank, a
repeated header, "NaN") are skipped and counted rather than failing the
file: a real logger writes such rows.

Other loggers' headers are recognised too (`header_columns`): a unit in
brackets is dropped (`x-axis (g)`, `ax [m/s^2]`) and case, spaces, `-` and
`_` are ignored; the time is `t`, else the first of `time`, `elapsed`,
`elapsed time`, `seconds`, `timestamp`, `epoc`/`epoch` whose first row is a
number (so MetaWear's `epoc (ms),timestamp (+0700),elapsed (s),x-axis (g),…`
reads its elapsed seconds, not its date strings); an axis is `ax`, `x`,
`x-axis` or a name starting `acc` and ending in the axis letter (`acc_x`,
`accelerometer X`, `accelX`). A clock in ms, µs or ns (epoch stamps
included) is recognised later, by the timeline repair.

`gravity_problem` says when the values cannot be what the detector needs,
an accelerometer's reading with gravity in the stated units: the median
magnitude of the 1 s mean acceleration is the gravity the sensor sees
(≈ 1 g, whatever the motion), so ≈ 9.8 in "g" is m/s², ≈ 0.1 g in "m/s²" is
g, ≈ 1000 is milli-g, and ≈ 0 is *linear acceleration* (gravity removed,
as some watches and phones report): its orientation-free features (free
fall under 0.6 g, the level and the turn of gravity after an impact) do not
exist there, so such a file is refused rather than silently judged. Other
levels out of 0.5–2 g (a sensor reading 0.3 g at rest) are judged, with a
warning.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

STANDARD_GRAVITY = 9.80665  # m/s² per g
COLUMNS = ("t", "ax", "ay", "az")
UNITS = ("g", "ms2")
TIME_ALIASES = ("t", "time", "elapsed", "elapsedtime", "seconds", "timestamp", "epoc", "epoch")
GRAVITY_OK_G = (0.5, 2.0)  # the 1 s mean |a| of a worn accelerometer with gravity, g (median over the file)
LINEAR_MAX_G = 0.1  # below this there is no gravity in the reading: linear acceleration


class RecordingError(ValueError):
    """The file cannot be read as a recording (says which file and why)."""


@dataclass(frozen=True, slots=True)
class Recording:
    path: str
    t: NDArray[np.float64]  # seconds, as in the file (not yet repaired)
    xyz: NDArray[np.float64]  # (n, 3) in g
    skipped_rows: int
    units_suspect: bool  # the median |a| looks like the other unit


def _dialect(sample: str) -> str:
    first = sample.splitlines()[0] if sample else ""
    counts = {d: first.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d])


def _norm(name: str) -> str:
    """A header cell without quotes, a unit in brackets, case, spaces, '-' and '_'."""
    n = re.sub(r"[\(\[].*?[\)\]]", "", name.strip().strip('"').strip("'"))
    return re.sub(r"[\s_\-.]", "", n.lower())


def _is_axis(n: str, axis: str) -> bool:
    return n in (f"a{axis}", axis, f"{axis}axis") or (n.startswith("acc") and n.endswith(axis))


def header_columns(header: list[str], first_row: list[str] | None = None) -> list[int] | None:
    """Indices of (t, ax, ay, az) in a header row (see module doc), or None when one is missing."""
    raw = [h.strip().strip('"').lower() for h in header]
    if all(c in raw for c in COLUMNS):
        return [raw.index(c) for c in COLUMNS]
    names = [_norm(h) for h in header]

    def numeric(i: int) -> bool:
        if first_row is None or i >= len(first_row):
            return first_row is None
        try:
            float(first_row[i])
        except ValueError:
            return False
        return True

    t_col = next((i for a in TIME_ALIASES for i, n in enumerate(names) if n == a and numeric(i)), None)
    axes = [next((i for i, n in enumerate(names) if _is_axis(n, ax) and i != t_col), None) for ax in "xyz"]
    if t_col is None or any(i is None for i in axes):
        return None
    return [t_col, *(int(i) for i in axes if i is not None)]


def _header_problem(header: list[str], first: list[str] | None) -> str:
    """What a header that `header_columns` cannot use lacks, in one line: a time column that is not numbers
    (dates), or the columns not found."""
    names = [_norm(h) for h in header]
    shown = ", ".join(h.strip().strip('"') for h in header)
    axes = [a for a in "xyz" if not any(_is_axis(n, a) for n in names)]
    times = [i for a in TIME_ALIASES for i, n in enumerate(names) if n == a]
    if times and not axes and first is not None:
        i = times[0]
        cell = first[i] if i < len(first) else ""
        return (f"the time column {header[i].strip()!r} holds {cell!r}, not a number; give a column t in seconds "
                f"(or an ms/µs/ns clock) (has: {shown})")
    missing = (["t (seconds)"] if not times else []) + [f"a{a}" for a in axes]
    return f"header lacks column(s) {', '.join(missing)} (has: {shown}); name them t (seconds), ax, ay, az"


def _numbers(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return bool(row)


def read_recording(path: str | Path, units: str = "g") -> Recording:
    """Read one CSV recording; accelerations come back in g."""
    if units not in UNITS:
        raise RecordingError(f"units must be one of {', '.join(UNITS)}, not {units!r}")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as e:
        raise RecordingError(f"{p}: {e.strerror or e}") from None
    lines = text.splitlines()
    rows = csv.reader(lines, delimiter=_dialect(text[:4096]))
    header = next(rows, None)
    if header is None:
        raise RecordingError(f"{p}: empty file")
    first = next(csv.reader(lines[1:2], delimiter=_dialect(text[:4096])), None)
    found = header_columns(header, first)
    if found is None:
        if _numbers(header):
            raise RecordingError(f"{p}: no header row (the first row is numbers); add one naming the columns "
                                 "t (seconds), ax, ay, az")
        raise RecordingError(f"{p}: {_header_problem(header, first)}")
    cols = found
    need = max(cols)
    values: list[tuple[float, float, float, float]] = []
    skipped = 0
    for row in rows:
        if len(row) <= need:
            skipped += 1
            continue
        try:
            t, ax, ay, az = (float(row[c]) for c in cols)
        except ValueError:
            skipped += 1
            continue
        if not all(np.isfinite((t, ax, ay, az))):
            skipped += 1
            continue
        values.append((t, ax, ay, az))
    if not values:
        comma = any(re.fullmatch(r"-?\d+,\d+", v.strip()) for ln in lines[1:20]
                    for v in next(csv.reader([ln], delimiter=_dialect(text[:4096])), []))
        raise RecordingError(f"{p}: no numeric rows" + ("; the numbers have decimal commas: write them with '.'"
                                                        if comma else ""))
    arr = np.asarray(values, dtype=np.float64)
    xyz = arr[:, 1:4] / (STANDARD_GRAVITY if units == "ms2" else 1.0)
    med = float(np.median(np.linalg.norm(xyz, axis=1)))
    suspect = med > 4.0 or med < 1.0 / 4.0
    return Recording(str(path), arr[:, 0], xyz, skipped, suspect)


STAMPS_HZ_RANGE = (5.0, 1000.0)  # a rate from the stamps outside this is not believed


def stamps_hz(t: NDArray[np.float64]) -> float:
    """The rate the stamps `t` show, Hz (0 when they show none in `STAMPS_HZ_RANGE`): the median step tells
    seconds from an ms/µs/ns clock, the rate is the mean step between pauses of over 1 s (jittery loggers such
    as UMAFall's write short and long steps around it, so the median step would read them fast)."""
    t = np.sort(np.asarray(t, dtype=np.float64))
    d = np.diff(t)
    d = d[d > 0]
    if len(d) == 0:
        return 0.0
    med = float(np.median(d))
    for scale in (1.0, 1e3, 1e6, 1e9):
        if STAMPS_HZ_RANGE[0] <= scale / med <= STAMPS_HZ_RANGE[1]:
            ts = t / scale
            edges = np.r_[0, np.flatnonzero(np.diff(ts) > 1.0) + 1, len(ts)]
            span = sum(float(ts[b - 1] - ts[a]) for a, b in zip(edges[:-1], edges[1:], strict=True))
            return (len(ts) - (len(edges) - 1)) / span if span > 0 else scale / med
    return 0.0


def rate_problem(t: NDArray[np.float64], hz: float, tolerance: float = 1.3) -> str | None:
    """A warning when the stamps show a rate more than `tolerance`× away from the stated `hz`, else None."""
    found = stamps_hz(t)
    if found and not 1.0 / tolerance <= found / hz <= tolerance:
        return f"its stamps show about {found:.3g} Hz, not --hz {hz:g}; judged with --hz {hz:g} (give --hz {found:.0f})"
    return None


def gravity_level(xyz: NDArray[np.float64], hz: float) -> float:
    """The median magnitude of the acceleration's 1 s mean (moving, `hz` samples): the gravity the sensor sees."""
    n = max(1, int(round(hz)))
    if len(xyz) == 0:
        return float("nan")
    if len(xyz) <= n:
        return float(np.linalg.norm(xyz.mean(axis=0)))
    c = np.cumsum(np.vstack([np.zeros((1, 3)), xyz]), axis=0)
    means = (c[n:] - c[:-n]) / n
    return float(np.median(np.linalg.norm(means, axis=1)))


def gravity_problem(rec: Recording, hz: float, units: str) -> tuple[bool, str] | None:
    """(refuse?, why) when these values do not look like a worn accelerometer's reading with gravity in
    `units`, or None when they do.

    `rec.xyz` is in g as read with `units`; see the module doc for the cases. Refused: m/s² read as g or
    the other way, milli-g, and linear acceleration (a 1 s mean under `LINEAR_MAX_G`). Anything else out of
    range (a sensor reading 0.3 g or 3 g at rest: some of UMAFall's trials read 0.2–0.4 g) is judged, with
    a warning."""
    return level_problem(gravity_level(rec.xyz, hz), units)


def level_problem(g: float, units: str) -> tuple[bool, str] | None:
    """`gravity_problem` for a gravity level `g` (in g, as read with `units`) measured already: the level of
    one file, or the median level of a set's files (scripts/eval_falls.py, fall_data.check_units)."""
    lo, hi = GRAVITY_OK_G
    if not np.isfinite(g) or lo <= g <= hi:
        return None
    raw = g * (STANDARD_GRAVITY if units == "ms2" else 1.0)  # the level in the file's own numbers
    what = f"the 1 s mean acceleration has a median magnitude of {raw:.3g} {'m/s²' if units == 'ms2' else 'g'}"
    if units == "g" and lo <= raw / STANDARD_GRAVITY <= hi:
        return True, f"{what}: the values look like m/s², not g; rerun with --units ms2"
    if units == "ms2" and lo <= raw <= hi:
        return True, f"{what}: the values look like g, not m/s²; rerun with --units g"
    if units == "g" and lo <= raw / 1000.0 <= hi:
        return True, f"{what}: the values look like milli-g; divide them by 1000"
    if g < LINEAR_MAX_G:
        return True, (f"{what} (gravity is {'9.81 m/s²' if units == 'ms2' else '1 g'}): this looks like linear "
                "acceleration, with gravity removed; "
                "the detector needs the accelerometer's raw reading with gravity included, so this file "
                "cannot be judged")
    return False, (f"{what}, not about {'9.81 m/s²' if units == 'ms2' else '1 g'} as a worn accelerometer's "
                   "reading with gravity would be; judged anyway, check the sensor and --units")
