"""Poison messages, gateway side, against a real WebSocket fake backend.

A message the backend chokes on (it closes 1011 whenever it receives it) must not block the
queue: after `poison_after` such sessions with it at the head and no ack, it moves behind the
others (kept, never dropped), and the alert queued after it is acked. A 1013 close (storage
unavailable) is no message's fault: back off, re-send, defer nothing. An `error` frame drops
the named message and counts it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.queue import ACKED, PENDING, REJECTED, Outbox
from gateway.uplink import Uplink
from tests.gateway.fake_backend import FakeBackend, wait_for

TOKEN = "gw-test-token-0123456789"


def uplink(backend: FakeBackend, ob: Outbox, **kw: object) -> Uplink:
    return Uplink(backend.url.replace("http", "ws") + "/api/v1/gateway/ws", TOKEN, ob, heartbeat_s=60,
                  backoff_min_s=0.02, backoff_max_s=0.1, **kw)  # type: ignore[arg-type]


def states(ob: Outbox) -> dict[str, int]:
    return {i: st for i, _t, st in ob.all_ids()}


async def test_poison_alert_moves_behind_and_the_alert_after_it_is_acked(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN)
    await backend.start()
    ob = Outbox(tmp_path / "o.db")
    poison = ob.put("alert", {"type": "sos", "t": "0001-01-01T00:00:00+01:00"})  # heads the send order
    wander = ob.put("alert", {"type": "wander", "patient_id": 1})
    positions = ob.put_many([("position", {"n": i}, None) for i in range(5)])
    backend.poison.add(poison.id)
    up = uplink(backend, ob, poison_after=3)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: [q.id for q in ob.pending(10)] == [poison.id])  # all else acked
        assert backend.deliveries[wander.id] == 1
        assert backend.closes.count(1011) >= 3 and up.stats.deferred >= 1
        assert poison.id not in backend.stored  # the backend never stored it …
        st = states(ob)
        assert st[poison.id] == PENDING  # … and the gateway keeps it (an alert is never dropped)
        assert st[wander.id] == ACKED and all(st[p.id] == ACKED for p in positions)
        assert [q.id for q in ob.pending(10)] == [poison.id]
        # new messages go before it: it does not block what comes later either
        later = ob.put("alert", {"type": "fall", "patient_id": 1})
        up.notify()
        await wait_for(lambda: states(ob)[later.id] == ACKED)
        assert states(ob)[poison.id] == PENDING
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


async def test_storage_unavailable_1013_backs_off_and_resends_without_deferring(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN)
    backend.storage_down = True
    await backend.start()
    ob = Outbox(tmp_path / "o.db")
    alert = ob.put("alert", {"type": "sos"})
    pos = ob.put("position", {"n": 1})
    up = uplink(backend, ob, poison_after=2)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: backend.closes.count(1013) >= 4)
        assert up.stats.deferred == 0 and up.stats.last_error == "backend storage unavailable (1013)"
        assert [q.id for q in ob.pending(10)] == [alert.id, pos.id]  # order untouched
        backend.storage_down = False
        await wait_for(lambda: ob.depth()[0] == 0)
        assert backend.deliveries[alert.id] == 1 and backend.deliveries[pos.id] == 1
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()


async def test_error_frame_drops_the_message_and_counts_it(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN)
    await backend.start()
    ob = Outbox(tmp_path / "o.db")
    bad = ob.put("gossip", {"x": 1})  # unknown type: the backend answers `error` and goes on
    good = ob.put("alert", {"type": "sos"})
    up = uplink(backend, ob)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        await wait_for(lambda: ob.depth()[0] == 0)
        assert states(ob) == {bad.id: REJECTED, good.id: ACKED}
        assert up.stats.rejected == 1 and up.stats.deferred == 0 and up.stats.connects == 1
    finally:
        stop.set()
        await task
        await backend.stop()
        ob.close()
