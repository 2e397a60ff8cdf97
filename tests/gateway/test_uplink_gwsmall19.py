"""gwsmall19: an opening handshake that times out (a frozen backend: TCP accepted, no upgrade answered) is a
failed connect, so the reconnect back-off grows as for a refused connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from gateway import uplink
from gateway.queue import Outbox
from gateway.uplink import Uplink


async def test_a_handshake_that_times_out_grows_the_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session was counted as one that lived (it lasted the 10 s handshake timeout, more than the 10 s
    rule), so the back-off was reset at every try: against a frozen backend the gateway retried every ~10.5 s
    for ever. Here the handshake gives up after 0.3 s and a session lives after 0.1 s (both scaled down): the
    old rule resets the delay to ~0.05 s each time; now it doubles to its cap (0.4 s)."""
    held: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)  # kept open, never answered: the backend's process is stopped, its listen queue is not

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    delays: list[float] = []
    real_wait = uplink.wait_up_to

    async def recorded(aw: Awaitable[Any], timeout: float) -> Any:
        delays.append(timeout)
        return await real_wait(aw, timeout)

    monkeypatch.setattr(uplink, "wait_up_to", recorded)
    up = Uplink(f"ws://127.0.0.1:{port}/api/v1/gateway/ws", "token", Outbox(tmp_path / "o.db"),
                backoff_min_s=0.05, backoff_max_s=0.4, alert_url="off")
    up.open_timeout_s, up.lived_s = 0.3, 0.1
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        async with asyncio.timeout(15):
            while len(delays) < 5:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()
    assert len(held) >= 5  # each try reached the server: accepted, then given up
    assert up.stats.connects == 0 and up.stats.last_error is not None and "TimeoutError" in up.stats.last_error
    assert delays[3] >= 0.4 * 0.8 and delays[4] >= 0.4 * 0.8, delays  # at the cap; the old rule: ~0.05 every time
    assert delays[0] <= 0.05 * 1.2 < 0.1 * 0.8 <= delays[1], delays  # and it doubled on the way
