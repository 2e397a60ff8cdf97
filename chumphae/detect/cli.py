"""`chumphae falls …`: the raw-stream fall detector, offline, on anyone's recordings.

    chumphae falls detect FILE... --hz 50 --units g

prints one JSON object per file per line:
    {"file": "...", "falls": [{"t": 12.34, "decided_at": 19.34, "confidence": 0.81}]}
A file that cannot be read still gets its line (with an "error" field and no
falls) so a batch run keeps its one-line-per-file shape; the exit status is 1
if any file failed.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chumphae.detect.fall_stream import FallParams, detect_falls
from chumphae.detect.recordings import UNITS, RecordingError, read_recording

app = typer.Typer(help="Falls from wrist accelerometer recordings (offline evaluation).",
                  no_args_is_help=True)


@app.command("detect")
def detect(
    files: Annotated[list[str], typer.Argument(help="CSV files with a header naming t,ax,ay,az.")],
    hz: Annotated[float, typer.Option(help="Rate to resample to (the recording's nominal rate).")] = 50.0,
    units: Annotated[str, typer.Option(help="Units of ax/ay/az: g or ms2 (m/s²).")] = "g",
    details: Annotated[bool, typer.Option(help="Also print the features behind each fall.")] = False,
) -> None:
    """Detect falls in each FILE; one JSON line per file."""
    if units not in UNITS:
        raise typer.BadParameter(f"use one of {', '.join(UNITS)}", param_hint="--units")
    if hz <= 0:
        raise typer.BadParameter("must be positive", param_hint="--hz")
    params = FallParams()
    failed = False
    for name in files:
        out: dict[str, object] = {"file": name}
        try:
            rec = read_recording(name, units)
        except RecordingError as e:
            out.update(falls=[], error=str(e))
            failed = True
            typer.echo(json.dumps(out, ensure_ascii=False))
            continue
        if rec.units_suspect:
            typer.echo(f"{name}: median |a| does not look like {units}; check --units", err=True)
        falls = []
        for f in detect_falls(rec.t, rec.xyz, hz, params):
            item: dict[str, object] = {"t": round(f.t, 3), "decided_at": round(f.decided_at, 3),
                                       "confidence": f.confidence}
            if details:
                item.update(peak_g=f.peak_g, clipped=f.clipped, free_fall_min_g=f.free_fall_min_g,
                            post_activity_g=f.post_activity_g, turn_deg=f.turn_deg)
            falls.append(item)
        out["falls"] = falls
        typer.echo(json.dumps(out, ensure_ascii=False))
    if failed:
        raise typer.Exit(1)
