"""review20: `chumphae-gateway --replay FILE` with a backend (GATEWAY_TOKEN), without `--now`, of a recording whose
times are ahead of this computer's clock (recorded on a gateway whose clock was ahead, or Bangkok times written
with `Z`): since debt20 held at `MAX_AHEAD_S`, it waits until its first advert is within the cap, which for a
recording 7 h ahead is almost 7 h with its SOS held, and it said nothing. Now the wait is said once at WARNING,
at its start. Through `gateway.cli.main` and the real `run_gateway` against the fake backend on loopback; the cap
scaled down to 3 s, the recording 20 s ahead (a 17 s wait), the run stopped after 2.5 s."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from chumphae.timeutil import utcnow
from gateway.decode import chumphae_band as band
from gateway.record import FORMAT, VERSION
from tests.gateway.conftest import CLI_TOKEN, run_cli_briefly
from tests.gateway.sources import ADDR, KEY, SITE

CAP_S = 3.0
AHEAD_S = 20.0


def recording(path: Path, ahead_s: float, end_s: float = 5.0) -> Path:
    """An SOS press heard twice a second for 5 s, starting `ahead_s` after now; the end line at `end_s`."""
    t0 = utcnow() + timedelta(seconds=ahead_s)
    lines = [json.dumps({"format": FORMAT, "version": VERSION, "started": t0.isoformat()})]
    for i in range(10):
        frame = band.encode(ADDR, KEY, band.BandState(seq=100 + i, sos=i >= 1))
        lines.append(json.dumps({"t": (t0 + timedelta(seconds=i * 0.5)).isoformat(), "receiver": "rx-a",
                                 "address": ADDR, "rssi": -60, "manufacturer_data": {"0xFFFF": frame.hex()}}))
    lines.append(json.dumps({"end": (t0 + timedelta(seconds=end_s)).isoformat()}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_recording_from_ahead_held_at_the_cap_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    argv = ["--replay", str(recording(tmp_path / "ahead.jsonl", AHEAD_S)), "--speed", "1"]
    with caplog.at_level(logging.WARNING, logger="gateway.replay"):
        _lead, positions = run_cli_briefly(tmp_path, monkeypatch, CLI_TOKEN, argv, cap_s=CAP_S, config=SITE)
    assert positions == []  # held: nothing further ahead than the cap went to the backend
    said = [r.getMessage() for r in caplog.records if r.name == "gateway.replay" and r.levelno == logging.WARNING]
    assert len(said) == 1, said  # was: nothing, for the whole wait
    assert "ahead of this computer's clock" in said[0] and "--now" in said[0], said
    waits = float(said[0].split("the replay waits ")[1].split(" s")[0])
    assert AHEAD_S - CAP_S - 2.0 <= waits <= AHEAD_S - CAP_S + 1.0, said


def test_a_replay_held_at_the_cap_as_it_goes_says_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """`--now --speed 0` reaches the cap and is then held about a second a tick: that is the cap working, not a
    recording from ahead, and no WARNING comes."""
    argv = ["--replay", str(recording(tmp_path / "now.jsonl", -600.0, end_s=60.0)), "--now", "--speed", "0"]
    with caplog.at_level(logging.WARNING, logger="gateway.replay"):
        lead, _positions = run_cli_briefly(tmp_path, monkeypatch, CLI_TOKEN, argv, cap_s=CAP_S, config=SITE)
    assert lead >= CAP_S - 1.0, lead  # it did reach the cap (else this test shows nothing)
    assert not [r for r in caplog.records if r.name == "gateway.replay" and r.levelno == logging.WARNING]
