"""CSV recordings and the `chumphae falls detect` command, through real files and the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from chumphae.cli import app
from chumphae.detect.recordings import STANDARD_GRAVITY, RecordingError, read_recording
from tests.detect import wrist


def test_columns_by_name_units_and_bad_rows(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("id;AZ;t;Ax;ay;note\n1;9.80665;0.00;0;0;x\n2;NaN;0.02;0;0;x\nt;az;ax;ay;az;x\n"
                 "3;19.6133;0.04;0;0;x\n", encoding="utf-8")
    r = read_recording(p, "ms2")
    assert r.skipped_rows == 2
    assert r.t.tolist() == [0.0, 0.04]
    assert r.xyz[:, 2].tolist() == pytest.approx([1.0, 2.0])


def test_missing_column_is_named(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("when,ax,ay,az\n0,0,0,1\n")  # "time" is an alias of t since falls-13 (test_fall_files.py)
    with pytest.raises(RecordingError, match="lacks column.*t"):
        read_recording(p)


def test_wrong_units_are_suspected(tmp_path: Path) -> None:
    t, xyz, _ = wrist.clean_fall()
    p = wrist.write_csv(tmp_path / "f.csv", t, xyz, scale=STANDARD_GRAVITY)
    assert read_recording(p, "g").units_suspect
    assert not read_recording(p, "ms2").units_suspect


def test_cli_prints_one_json_line_per_file(tmp_path: Path) -> None:
    t, xyz, impact = wrist.clean_fall()
    fall = wrist.write_csv(tmp_path / "fall.csv", t, xyz * STANDARD_GRAVITY, extra=True)
    ct, cxyz = wrist.claps()
    clap = wrist.write_csv(tmp_path / "clap.csv", ct, cxyz * STANDARD_GRAVITY, extra=False)
    res = CliRunner().invoke(app, ["falls", "detect", str(fall), str(clap), "--hz", "50", "--units", "ms2"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in res.stdout.strip().splitlines()]
    assert [x["file"] for x in lines] == [str(fall), str(clap)]
    (f,) = lines[0]["falls"]
    assert set(f) == {"t", "decided_at", "confidence"}
    assert abs(f["t"] - impact) < 0.5 and f["decided_at"] - f["t"] <= 10 and 0 <= f["confidence"] <= 1
    assert lines[1]["falls"] == []


def test_cli_keeps_going_past_a_bad_file_and_fails_at_the_end(tmp_path: Path) -> None:
    good = wrist.write_csv(tmp_path / "g.csv", np.arange(0, 3, 0.02), np.tile([0, 0, 1.0], (150, 1)))
    res = CliRunner().invoke(app, ["falls", "detect", str(tmp_path / "missing.csv"), str(good), "--units", "g"])
    assert res.exit_code == 1
    first, second = (json.loads(x) for x in res.stdout.strip().splitlines())
    assert first["falls"] == [] and "missing.csv" in first["error"]
    assert second == {"file": str(good), "falls": []}


def test_cli_refuses_unknown_units(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["falls", "detect", "x.csv", "--units", "mg"])
    assert res.exit_code != 0


def test_cli_refuses_a_model_file_it_cannot_use(tmp_path: Path) -> None:
    bad = tmp_path / "model.json"
    bad.write_text('{"features": ["peak"], "trees": []}')
    good = wrist.write_csv(tmp_path / "g.csv", np.arange(0, 3, 0.02), np.tile([0, 0, 1.0], (150, 1)))
    res = CliRunner().invoke(app, ["falls", "detect", str(good), "--model", str(bad)])
    assert res.exit_code != 0
    assert "features" in res.output
