"""Supervision: a failing task is logged with its traceback, restarted with backoff, and reported.

The helper itself; a gateway whose pipeline step raises (it keeps running, the heartbeat says
so, the SOS pressed afterwards is acked); the backend's alert clock restarted after it died.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from chumphae.supervise import Supervisor, short_error, wait_up_to
from chumphae.values import Detection, Match, Position, Reading
from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.pipeline import Detector, Matcher
from gateway.service import Gateway, default_steps
from gateway.siteconfig import SiteConfig
from tests.gateway.fake_backend import FakeBackend, wait_for
from tests.gateway.sources import SITE, PushSource

TOKEN = "gw-test-token-0123456789"


async def test_a_failing_task_restarts_with_backoff_and_is_counted(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[float] = []

    async def flaky() -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) <= 3:
            raise ValueError(f"run {len(runs)} failed for patient 1234567890123 with token chu_secret")

    sup = Supervisor(backoff_min_s=0.02, backoff_max_s=0.05)
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="chumphae.supervise"):
        await asyncio.wait_for(sup.spawn("flaky", flaky, stop), 5)
    assert len(runs) == 4  # three failures, then a run that returned: done
    assert sup.restarts == {"flaky": 3}
    health = sup.health()
    assert health["task_restarts_total"] == 3 and health["task_restarts"] == {"flaky": 3}
    assert health["last_error"].startswith("flaky: ValueError: run 3 failed")
    assert "1234567890123" not in health["last_error"] and "chu_secret" not in health["last_error"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and all(r.exc_info is not None for r in errors)  # the traceback is logged
    d = sup.delays["flaky"]  # doubling from the minimum, capped, ±20 % jitter
    assert 0.016 <= d[0] <= 0.024 and 0.032 <= d[1] <= 0.048 and 0.04 <= d[2] <= 0.06


async def test_a_loop_that_must_run_is_restarted_when_it_returns_and_stops_on_stop() -> None:
    runs = 0

    async def quits() -> None:
        nonlocal runs
        runs += 1

    sup = Supervisor(backoff_min_s=0.01, backoff_max_s=0.02)
    stop = asyncio.Event()
    task = sup.spawn("loop", quits, stop, restart_on_return=True)
    await wait_for(lambda: runs >= 3)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sup.restarts["loop"] >= 2 and "ended while it should still run" in (sup.last_error or "")


def test_short_error_is_one_short_line() -> None:
    text = short_error(RuntimeError("a\nvery " + "long " * 100))
    assert "\n" not in text and len(text) <= 120 and text.startswith("RuntimeError: a very long")


class FlakyDetector:
    """The real detectors, except that the reading with counter 3 makes it raise (a bug)."""

    def __init__(self, inner: Detector) -> None:
        self.inner = inner
        self.failed = 0

    def on_reading(self, reading: Reading, patient_id: int | None) -> list[Detection]:
        if reading.seq == 3:
            self.failed += 1
            raise RuntimeError("detector bug (a test)")
        return self.inner.on_reading(reading, patient_id)

    def on_position(self, position: Position, match: Match | None, patient_id: int | None) -> list[Detection]:
        return self.inner.on_position(position, match, patient_id)

    def tick(self, wall: datetime) -> list[Detection]:
        return self.inner.tick(wall)


async def test_gateway_pipeline_failure_restarts_and_heartbeats_say_so(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN)
    await backend.start()
    flaky: list[FlakyDetector] = []

    def steps(config: SiteConfig) -> tuple[Matcher, Detector]:
        matcher, detector = default_steps(config)
        flaky.append(FlakyDetector(detector))
        return matcher, flaky[-1]

    s = GatewaySettings(backend_url=backend.url, token=TOKEN, queue_path=tmp_path / "o.db",
                        config_cache=tmp_path / "c.json", heartbeat_s=0.2, backoff_min_s=0.05,
                        backoff_max_s=0.2, config_poll_s=0)
    source = PushSource()
    gw = Gateway(s, siteconfig.parse(SITE), source, steps=steps)
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        for _ in range(3):
            source.push()  # the third one makes the detector raise: the pipeline task dies
        await wait_for(lambda: gw.supervisor.restarts.get("pipeline", 0) >= 1)
        ticks = source.ticks
        await wait_for(lambda: source.ticks > ticks + 3)  # it runs again
        source.push(sos=True)
        await wait_for(lambda: any(m["body"]["type"] == "sos" for m in backend.of_type("alert")))
        await wait_for(lambda: any(h.get("task_restarts", {}).get("pipeline", 0) >= 1 for h in backend.heartbeats))
        beat: dict[str, Any] = next(h for h in backend.heartbeats if h.get("task_restarts", {}).get("pipeline"))
        assert beat["task_restarts_total"] >= 1
        assert beat["last_error"] == "pipeline: RuntimeError: detector bug (a test)"
        assert beat["disk_full"] is False and beat["memory_queue"] == 0
        assert flaky[0].failed == 1
    finally:
        stop.set()
        await task
        await backend.stop()


async def test_backend_alert_clock_is_restarted_when_it_dies(app_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from chumphae.alert import escalate
    from tests.feed.liveserver import live_server

    real_run = escalate.run
    calls = 0

    async def dies_once(engine: Engine, options: escalate.ClockOptions) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("clock died (a test)")
        await real_run(engine, options)

    monkeypatch.setattr(escalate, "run", dies_once)
    with live_server(clock_options=escalate.ClockOptions(tick_s=0.1),
                     supervisor_options={"backoff_min_s": 0.05, "backoff_max_s": 0.1}) as server:
        sup: Supervisor = server.app.state.supervisor
        await wait_for(lambda: calls >= 2)
        assert sup.restarts["alert-clock"] == 1
        assert sup.health()["last_error"] == "alert-clock: RuntimeError: clock died (a test)"
        assert not sup.tasks["alert-clock"].done()  # running again


@pytest.mark.parametrize("finished", [True, False], ids=["awaited-thing-finishing", "waiting"])
async def test_a_loop_on_wait_up_to_stops_when_cancelled_even_as_its_wait_ends(finished: bool) -> None:
    """The race that hung uplinks and a scenario run in CI: the cancel lands in the same turn as the awaited
    event is set. `asyncio.wait_for` (3.11) swallows that cancel, so a `while True` loop never ends;
    `wait_up_to` passes it on."""
    event = asyncio.Event()
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            turns += 1
            await wait_up_to(event.wait(), 0.5)
            event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    if finished:
        event.set()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2)
    assert done == {task} and task.cancelled(), "the loop ran on after its cancel"
    assert turns == 1
    assert await wait_up_to(asyncio.sleep(0), 1) is True
    assert await wait_up_to(asyncio.Event().wait(), 0.01) is False
