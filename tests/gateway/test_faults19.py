"""faults19: a second field engineer's fault pass (docs/gateway-protocol.md §4), each defect it found pinned here.

Real components on loopback: the `chumphae-gateway` process itself, or the gateway (`Gateway`: pipeline,
SQLite outbox, uplink) against a real WebSocket backend (`tests.gateway.fake_backend`), real band frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import GatewaySettings
from gateway.queue import ACKED, Outbox
from gateway.service import load_config
from tests.gateway.conftest import running
from tests.gateway.fake_backend import FakeBackend, wait_for
from tests.gateway.sources import SITE

TOKEN = "gw-test-token-0123456789"
GATEWAY = Path(sys.executable).with_name("chumphae-gateway")


def delete(queue: Path) -> None:
    """The outbox's files removed as `rm outbox.sqlite3*` would."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{queue}{suffix}").unlink(missing_ok=True)


def test_a_gateway_whose_outbox_file_is_damaged_starts_moves_it_aside_and_runs(tmp_path: Path) -> None:
    """Fault 1: the outbox file is not a database any more (an SD card after a power cut: here 8 KiB of random
    bytes). The gateway process exited with status 1 and a traceback (`sqlite3.DatabaseError: file is not a
    database`) at every start: under a supervisor, a crash loop in which no alert ever left. Now the damaged
    file is moved aside for a person, said at ERROR, and the gateway runs on a new outbox."""
    queue = tmp_path / "outbox.sqlite3"
    junk = os.urandom(8192)
    queue.write_bytes(junk)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    done = subprocess.run([str(GATEWAY), "--simulate", "fall", "--speed", "0", "--exit-when-done",
                           "--queue", str(queue)], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alerts {'fall': 1}" in done.stdout
    aside = list(tmp_path.glob("outbox.sqlite3.damaged-*"))
    assert [p.read_bytes() for p in aside] == [junk]  # kept as it was, for a person to look at
    errors = [line for line in done.stderr.splitlines() if " ERROR gateway.queue" in line]
    assert len(errors) == 1 and "file is not a database" in errors[0] and aside[0].name in errors[0]
    assert "Traceback" not in done.stderr


async def test_an_outbox_file_deleted_while_running_is_made_again_and_a_restart_loses_nothing(tmp_path: Path) -> None:
    """Fault 2: the outbox file deleted while the gateway runs (someone freeing space on the SD card, a clean-up
    script). SQLite kept writing to the unlinked file and nothing was said; at the next restart the outbox was
    new and empty: the SOS and positions still waiting for their ack were gone. Now the gateway notices within
    a second, says so at ERROR and in its heartbeat, and writes its outbox again at the same path with every
    pending message: after a restart the SOS is still there and is delivered."""
    queue = tmp_path / "outbox.sqlite3"
    backend = FakeBackend(TOKEN)
    backend.hold_acks = {"alert", "position"}  # stored, not acknowledged yet: pending at the gateway
    await backend.start()
    try:
        async with running(tmp_path, queue, backend) as (gw, source):
            for n in range(20):
                source.push(rssi=-50 - n)
                await asyncio.sleep(0.02)
            source.push(sos=True)
            await wait_for(lambda: any(m["body"].get("type") == "sos" for m in backend.of_type("alert")))
            sos = next(q.id for q in gw.outbox.pending(1000) if q.type == "alert")
            before = {q.id for q in gw.outbox.pending(1000)}
            delete(queue)
            beats = len(backend.heartbeats)
            await wait_for(lambda: queue.exists() and gw.outbox.replaced == 1)
            await wait_for(lambda: any(h.get("outbox_replaced") == 1 for h in backend.heartbeats[beats:]))
            beat = next(h for h in backend.heartbeats[beats:] if h.get("outbox_replaced") == 1)
            assert "outbox file deleted" in (beat["last_error"] or "")
        again = Outbox(queue)  # the restart
        try:
            on_disk = {i: st for i, _t, st in again.all_ids()}
            assert before <= set(on_disk) and on_disk[sos] == 0  # was: an empty outbox
        finally:
            again.close()
        backend.hold_acks = set()
        async with running(tmp_path, queue, backend) as (gw, _source):
            await wait_for(lambda: {i: st for i, _t, st in gw.outbox.all_ids()}.get(sos) == ACKED)
        assert [m["id"] for m in backend.of_type("alert")] == [sos]  # stored once
    finally:
        await backend.stop()


def test_a_damaged_page_loses_only_its_own_rows(tmp_path: Path) -> None:
    """Fault 1, running: the outbox opens but a page in the middle is damaged (`database disk image is malformed`
    from the first read that reaches it). `depth()` (every heartbeat) raised, and so would `pending()` (the
    uplink, restarted for ever) or `put()` (the pipeline: the SOS lost). Now the first call that meets the
    damage rebuilds the outbox from what can be read, and the alert (first row) survives."""
    queue = tmp_path / "outbox.sqlite3"
    ob = Outbox(queue)
    sos = ob.put("alert", {"type": "sos"})
    for n in range(2000):
        ob.put("position", {"n": n, "pad": "x" * 200})
    ob.close()
    size = queue.stat().st_size
    with open(queue, "r+b") as f:
        f.seek(size // 2 // 4096 * 4096)
        f.write(os.urandom(4 * 4096))
    ob = Outbox(queue)
    try:
        depth, alerts = ob.depth()  # raised sqlite3.DatabaseError: database disk image is malformed
        assert alerts == 1 and 1000 < depth < 2001
        assert ob.replaced == 1 and "malformed" in (ob.last_damage or "")
        assert ob.pending(1)[0].id == sos.id
        later = ob.put("alert", {"type": "sos"})
        assert {q.id for q in ob.pending(2)} == {sos.id, later.id}
    finally:
        ob.close()
    assert len(list(tmp_path.glob("outbox.sqlite3.damaged-*"))) == 1
    again = Outbox(queue)
    try:
        assert again.replaced == 0 and {q.id for q in again.pending(2)} == {sos.id, later.id}
    finally:
        again.close()


async def test_a_config_answer_that_is_not_a_site_config_is_refused_and_the_one_in_use_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Fault 3: the config URL answers 200 with JSON that is not a site config (a proxy's or a broken backend's
    `{}`, `[]`, `null`). `{}` was taken as a site with no bands and no receivers: from the next poll the gateway
    knew no band, sent no position or alert, and its heartbeats went on as if nothing happened. `[]` raised
    AttributeError: at start the gateway died although a good copy was cached on disk. Now both are refused
    at ERROR and the config in use (or the cached one) is kept."""
    backend = FakeBackend(TOKEN, config={**SITE, "version": 4})
    await backend.start()
    try:
        s = GatewaySettings(backend_url=backend.url, token=TOKEN, config_cache=tmp_path / "c.json",
                            queue_path=tmp_path / "q.sqlite3")
        first = await load_config(s)  # cached on disk too
        assert first is not None and len(first.bands) == 1
        garbage: list[Any] = [{}, [], None, "maintenance", {"receivers": [], "bands": "none"}]
        for answer in garbage:
            backend.config = answer
            caplog.clear()
            with caplog.at_level(logging.ERROR, logger="gateway.siteconfig"):
                polled = await load_config(s, first)  # the poll: was {} → a config with no band
                started = await load_config(s)  # a start with the cached copy: was AttributeError for [] and "…"
            assert polled is first, json.dumps(answer)
            assert started is not None and started.version == 4 and len(started.bands) == 1, json.dumps(answer)
            assert sum("config from backend rejected" in r.getMessage() for r in caplog.records) == 2
    finally:
        await backend.stop()


def test_an_outbox_whose_folder_is_removed_or_cannot_be_made_keeps_its_messages(tmp_path: Path) -> None:
    """Fault 2 again, the folder itself removed (`rm -rf data/` by a clean-up script) while the gateway runs: the
    outbox is made again with its folder. And where no file can be made (the folder replaced by a file here;
    a read-only file system alike: SQLITE_CANTOPEN / SQLITE_READONLY), messages are held in memory as on a
    full disk (`disk_full`, one ERROR line) and written when a file can be made again: an SOS put meanwhile
    is not lost. (The first version of this pass raised `unable to open database file` from every `put`.)"""
    import shutil

    folder = tmp_path / "data"
    queue = folder / "outbox.sqlite3"
    ob = Outbox(queue, retry_s=0.0)
    try:
        first = ob.put("alert", {"type": "sos"})
        shutil.rmtree(folder)
        assert not ob.check_file()  # made again, with its folder
        assert {i for i, _t, _s in ob.all_ids()} == {first.id} and queue.exists()
        shutil.rmtree(folder)
        folder.write_text("not a folder")
        assert not ob.check_file()  # cannot be made: held in memory
        assert ob.disk_full and "unable to open" in (ob.last_disk_error or "")
        second = ob.put("alert", {"type": "sos"})
        assert {q.id for q in ob.pending(10)} == {first.id, second.id}
        assert not ob.recover()
        folder.unlink()
        assert ob.recover() and not ob.disk_full
        assert {i: st for i, _t, st in ob.all_ids()} == {first.id: 0, second.id: 0}
    finally:
        ob.close()
    again = Outbox(queue)
    try:
        assert {q.id for q in again.pending(10)} == {first.id, second.id}
    finally:
        again.close()
