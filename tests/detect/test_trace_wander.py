"""scripts/trace_wander.py (a dev tool): the traced run is the bench's own run, alert for alert.

One patient-day of the real bench (seed 11, 2 patients, patient 1: a wanderer with one short episode); the run
with the tracer's recording classes swapped in against the plain `bench_detect.run` of the same patient.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

from tests.detect.conftest import load_bench

ROOT = Path(__file__).resolve().parents[2]
bench = load_bench()


def _tracer() -> object:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        return importlib.import_module("trace_wander")
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def test_trace_reproduces_the_bench_alert_and_shows_it() -> None:
    tw = _tracer()
    plain = bench.run(1, 2, 11, only=[1])
    [(pid, exit_s, dwell, beyond)] = plain.wander.detail
    assert pid == 1 and beyond is not None
    alert_s = exit_s + dwell + beyond
    rep, rec = tw.trace(11, 1, days=1, patients=2, spans=[(exit_s - 5, alert_s + 5)])  # type: ignore[attr-defined]
    assert rep.wander.detail == plain.wander.detail
    assert [(x.type, x.at) for x in rep.runs[0].raised] == [(x.type, x.at) for x in plain.runs[0].raised]
    assert bench.BenchSource.__name__ == "BenchSource"  # the bench's own classes are back
    # the rows: the truth crosses the zone's edge at the bench's exit second; the alert's second says so
    def true_d(s: int) -> float:
        m = re.search(r"true +([+-][\d.]+)", rec.rows[s].truth)
        assert m is not None
        return float(m.group(1))
    exit_row, alert_row = round(exit_s), round(alert_s)  # rows are whole wall seconds, as the bench prints them
    assert true_d(exit_row - 1) <= 0.0 < true_d(exit_row)
    row = rec.rows[alert_row]
    assert "ALERT wander" in row.alerts and "alerted" in row.state
    assert not any("alerted" in rec.rows[s].state for s in rec.rows if s < alert_row)
    assert sum(1 for r in rec.rows.values() if r.fix) >= 20  # fixes recorded in the span
    assert abs(min(rec.rows) - (exit_s - 5)) <= 1 and abs(max(rec.rows) - (alert_s + 5)) <= 1
