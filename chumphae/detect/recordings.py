"""Accelerometer recordings from CSV files, for offline fall evaluation.

The contract is small on purpose so anyone's recordings can be fed in: a
header row naming `t`, `ax`, `ay`, `az` (any order, any case, other columns
ignored), `t` in seconds, accelerations in g or m/s² (`--units`). The
delimiter may be `,`, `;` or a tab. Rows that do not parse (blank, a
repeated header, "NaN") are skipped and counted rather than failing the
file: a real logger writes such rows.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

STANDARD_GRAVITY = 9.80665  # m/s² per g
COLUMNS = ("t", "ax", "ay", "az")
UNITS = ("g", "ms2")


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


def read_recording(path: str | Path, units: str = "g") -> Recording:
    """Read one CSV recording; accelerations come back in g."""
    if units not in UNITS:
        raise RecordingError(f"units must be one of {', '.join(UNITS)}, not {units!r}")
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as e:
        raise RecordingError(f"{p}: {e.strerror or e}") from None
    rows = csv.reader(text.splitlines(), delimiter=_dialect(text[:4096]))
    header = next(rows, None)
    if header is None:
        raise RecordingError(f"{p}: empty file")
    names = [h.strip().strip('"').lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise RecordingError(f"{p}: header lacks column(s) {', '.join(missing)} (has: {', '.join(names)})")
    cols = [names.index(c) for c in COLUMNS]
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
        raise RecordingError(f"{p}: no numeric rows")
    arr = np.asarray(values, dtype=np.float64)
    xyz = arr[:, 1:4] / (STANDARD_GRAVITY if units == "ms2" else 1.0)
    med = float(np.median(np.linalg.norm(xyz, axis=1)))
    suspect = med > 4.0 or med < 1.0 / 4.0
    return Recording(str(path), arr[:, 0], xyz, skipped, suspect)
