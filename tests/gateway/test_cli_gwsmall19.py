"""gwsmall19: `chumphae-gateway --simulate SCENARIO --speed S` with a backend (GATEWAY_TOKEN) keeps the scenario's
clock within `MAX_AHEAD_S` of the wall clock, as `chumphae demo --scenario` does; stand-alone it runs free.

Through `gateway.cli.main` and the real `run_gateway`, simulator and uplink, against the fake backend on
loopback; only the cap is scaled down (3 s for 8 minutes) and the run stopped after 2.5 s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.gateway.conftest import assert_held_at_cap, run_cli_briefly

TOKEN = "gw-test-token-0123456789"
CAP_S = 3.0


def _run_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str, speed: str) -> tuple[float, list[Any]]:
    """`chumphae-gateway --simulate demo --speed SPEED` for 2.5 s: the simulated clock's lead on the wall clock
    at the end (seconds), and the positions the backend stored."""
    return run_cli_briefly(tmp_path, monkeypatch, token, ["--simulate", "demo", "--speed", speed], cap_s=CAP_S)


@pytest.mark.parametrize("speed", ["40", "0"])
def test_with_a_backend_a_sped_up_simulation_stays_within_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   speed: str) -> None:
    """Uncapped, `--speed 40` was 79 s ahead after 2.5 s (a scenario longer than ~10 minutes ran past the
    backend's +10 minute window and its positions were refused), `--speed 0` 288 s: the whole scenario."""
    lead, positions = _run_cli(tmp_path, monkeypatch, TOKEN, speed)
    assert_held_at_cap(lead, positions, CAP_S)


def test_stand_alone_a_simulation_runs_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No GATEWAY_TOKEN: nothing is sent, so no backend's window to keep to: `--speed 40` runs at 40."""
    lead, _positions = _run_cli(tmp_path, monkeypatch, "", "40")
    assert lead >= 40 * 2.0, lead
