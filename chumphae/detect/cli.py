"""`chumphae falls …`: the raw-stream fall detector (candidates + the shipped model), offline.

    chumphae falls detect FILE... --hz 50 --units g

prints one JSON object per file per line:
    {"file": "...", "falls": [{"t": 12.34, "decided_at": 19.34, "confidence": 0.81}]}
A file that cannot be read still gets its line (with an "error" field and no
falls) so a batch run keeps its one-line-per-file shape; the exit status is 1
if any file failed. So does a file whose values are not an accelerometer's
reading with gravity in the stated `--units` (m/s² read as g or the other
way, milli-g, or linear acceleration with gravity removed, which this
detector cannot judge): its "error" says which and how to fix it, rather
than the file being judged wrongly and reported without falls. `--hz` is the recording's nominal rate (20–240 Hz all
work; the timestamps are repaired and the stream brought to 20 Hz);
`confidence` is the model's probability; `--model PATH` tries another model
file written by scripts/train_falls.py. A file whose stamps show a rate
more than 1.3× away from `--hz` is judged with `--hz` and a warning on
stderr names the rate its stamps show (falls-18: the rate changes what is
found on some files).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chumphae.detect.fall_detector import detect_falls
from chumphae.detect.fall_model import ModelError, load, shipped
from chumphae.detect.recordings import UNITS, RecordingError, gravity_problem, rate_problem, read_recording

app = typer.Typer(help="Falls from wrist accelerometer recordings (offline evaluation).",
                  no_args_is_help=True)


@app.command("detect")
def detect(
    files: Annotated[list[str], typer.Argument(help="CSV files with a header naming t,ax,ay,az.")],
    hz: Annotated[float, typer.Option(help="The recording's nominal rate, Hz (20–240).")] = 50.0,
    units: Annotated[str, typer.Option(help="Units of ax/ay/az: g or ms2 (m/s²).")] = "g",
    details: Annotated[bool, typer.Option(help="Also print the features behind each fall.")] = False,
    model: Annotated[str | None, typer.Option(help="A model file from scripts/train_falls.py.")] = None,
) -> None:
    """Detect falls in each FILE; one JSON line per file."""
    if units not in UNITS:
        raise typer.BadParameter(f"use one of {', '.join(UNITS)}", param_hint="--units")
    if hz <= 0:
        raise typer.BadParameter("must be positive", param_hint="--hz")
    try:
        fall_model = load(model) if model else shipped()
    except ModelError as e:
        raise typer.BadParameter(str(e), param_hint="--model") from None
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
        problem = gravity_problem(rec, hz, units)
        if problem is not None and problem[0]:
            out.update(falls=[], error=f"{name}: {problem[1]}")
            failed = True
            typer.echo(json.dumps(out, ensure_ascii=False))
            continue
        if problem is not None:
            typer.echo(f"{name}: {problem[1]}", err=True)
        rate = rate_problem(rec.t, hz)
        if rate is not None:
            typer.echo(f"{name}: {rate}", err=True)
        falls = []
        for f in detect_falls(rec.t, rec.xyz, hz, fall_model):
            item: dict[str, object] = {"t": round(f.t, 3), "decided_at": round(f.decided_at, 3),
                                       "confidence": f.confidence}
            if details:
                item["features"] = f.features
            falls.append(item)
        out["falls"] = falls
        typer.echo(json.dumps(out, ensure_ascii=False))
    if failed:
        raise typer.Exit(1)
