"""debt19: `chumphae demo --scenario X --speed S` keeps to the backend's clock window as the living demo does
(demo19's `MAX_AHEAD_S`), and a scenario that is not there is said before anything starts."""

from __future__ import annotations

import asyncio

import pytest
import typer

from chumphae import demo
from chumphae.config import get_settings
from chumphae.timeutil import utcnow
from gateway.simulate.scenario import load


def test_a_sped_up_scenario_stays_within_the_backends_clock_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--scenario` ran at `--speed` with no cap: at 50 a scenario longer than ~10 minutes ran more than the
    backend's 10 minutes (chumphae/ingest/envelope.py FUTURE) ahead of the wall clock and its positions were
    refused (the shipped ones, 2 to 8 minutes, end just inside). Now it runs fast until `MAX_AHEAD_S` ahead,
    then at real time (here the cap is 3 s, the speed 40, the demo scenario alone: no backend token)."""
    monkeypatch.setattr(demo, "MAX_AHEAD_S", 3.0)

    async def run() -> object:
        stop = asyncio.Event()
        task = asyncio.create_task(demo._scenario(get_settings(), "http://127.0.0.1:9", "", load("demo"), 40.0, stop))
        await asyncio.sleep(2.5)
        stop.set()
        return await asyncio.wait_for(task, 30)

    gw = asyncio.run(run())
    src = gw.source  # type: ignore[attr-defined]
    lead = (src.wall() - utcnow()).total_seconds()
    assert src.clock() >= 3.0 + 2.0  # it did run faster than real time first
    assert lead <= 3.0 + 1.5, lead  # uncapped it would be ~95 s ahead


def test_a_scenario_that_is_not_there_is_said_before_anything_starts(capsys: pytest.CaptureFixture[str]) -> None:
    """`--scenario wander` (there is none: demo, everything, fall, night-wander) started the backend and the
    page, and the gateway task died with only a log line; now it is refused first, exit code 2."""
    with pytest.raises(typer.Exit) as exc:
        asyncio.run(asyncio.wait_for(demo.run_demo(get_settings(), scenario="wander", speed=50.0), 20))
    assert exc.value.exit_code == 2
    err = capsys.readouterr().err
    assert "no scenario 'wander'" in err and "night-wander" in err, err
