"""debt20: `chumphae-gateway --replay FILE --now --speed S` with a backend (GATEWAY_TOKEN) keeps the recording's
clock within `MAX_AHEAD_S` of the wall clock, as `--simulate` does (gwsmall19); stand-alone it runs free.

Before, a fast replay re-dated to now ran ahead of the backend's clock without limit (a recording longer than
10 minutes at `--speed 0` or above 1: the backend refused its positions as from the future). Through
`gateway.cli.main` and the real `run_gateway`, replay source and uplink, against the fake backend on loopback;
only the cap is scaled down (3 s for 8 minutes) and the run stopped after 2.5 s."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.decode import chumphae_band as band
from gateway.record import FORMAT, VERSION
from tests.gateway.conftest import CLI_TOKEN, assert_held_at_cap, run_cli_briefly
from tests.gateway.sources import ADDR, KEY, SITE

CAP_S = 3.0
LENGTH_S = 300  # the recording: 5 minutes, a band heard twice a second by two receivers


def recording(path: Path) -> Path:
    t0 = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
    lines = [json.dumps({"format": FORMAT, "version": VERSION, "started": t0.isoformat()})]
    for i in range(LENGTH_S * 2):
        frame = band.encode(ADDR, KEY, band.BandState(seq=100 + i))
        for rx in ("rx-a", "rx-b"):
            lines.append(json.dumps({"t": (t0 + timedelta(seconds=i * 0.5)).isoformat(), "receiver": rx,
                                     "address": ADDR, "rssi": -60 - i % 5,
                                     "manufacturer_data": {"0xFFFF": frame.hex().upper()}}))
    lines.append(json.dumps({"end": (t0 + timedelta(seconds=LENGTH_S)).isoformat()}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str, speed: str) -> tuple[float, list[Any]]:
    """`chumphae-gateway --replay FILE --now --speed SPEED` for at most 2.5 s: the replay clock's lead on the wall
    clock at the end (seconds), and the positions the backend stored."""
    cache = tmp_path / "config.json"
    cache.write_text(json.dumps({"etag": None, "config": SITE}), encoding="utf-8")  # stand-alone: the site's bands
    argv = ["--replay", str(recording(tmp_path / "field.jsonl")), "--now", "--speed", speed]
    return run_cli_briefly(tmp_path, monkeypatch, token, argv, cap_s=CAP_S, config=SITE)


@pytest.mark.parametrize("speed", ["40", "0"])
def test_with_a_backend_a_fast_replay_re_dated_to_now_stays_within_the_cap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, speed: str) -> None:
    """Uncapped, `--speed 40` was about 100 s ahead after 2.5 s, `--speed 0` the whole recording (300 s)."""
    lead, positions = _replay(tmp_path, monkeypatch, CLI_TOKEN, speed)
    assert_held_at_cap(lead, positions, CAP_S)


def test_stand_alone_a_replay_runs_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GATEWAY_TOKEN: nothing is sent, so no backend's window to keep to: `--speed 40` runs at 40."""
    lead, _positions = _replay(tmp_path, monkeypatch, "", "40")
    assert lead >= 40 * 2.0, lead

