"""Disk full at the gateway, for real: the outbox on a tiny tmpfs that a filler file fills.

Run twice: on a tmpfs mounted for the test (needs root; skipped, saying why, when `mount` is
refused) and with SQLite's `PRAGMA max_page_count` held at the current size, which produces the
same SQLITE_FULL without any mount (always runs). The pipeline keeps running, heartbeats keep
flowing and say `disk_full`, an SOS pressed while the disk is full reaches the backend exactly
once (sent from memory), one pressed while the disk is full *and* the backend is away is moved
to disk with its id when space returns and is delivered once when the backend is back; nothing
is lost, nothing duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from gateway.queue import ACKED, PENDING, Outbox
from tests.gateway.conftest import running
from tests.gateway.fake_backend import FakeBackend, wait_for
from tests.gateway.sources import PushSource

TOKEN = "gw-test-token-0123456789"


class Disk(Protocol):
    how: str

    def fill(self, outbox: Outbox) -> None: ...

    def free(self, outbox: Outbox) -> None: ...


class Tmpfs:
    """A real file system of `size` that a filler file fills to the last byte."""

    how = "tmpfs"

    def __init__(self, where: Path, size: str = "8m") -> None:
        self.where = where
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                        "the max_page_count variant of this test covers SQLITE_FULL without a mount")
        self.filler = where / "filler"

    def fill(self, outbox: Outbox) -> None:
        # Shrink the WAL first so the next write must grow a file (as it would after a checkpoint).
        db = sqlite3.connect(outbox.path)
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            for size in (65536, 4096, 1):  # to the last byte
                try:
                    while True:
                        os.write(fd, b"\0" * size)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self, outbox: Outbox) -> None:
        self.filler.unlink()

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.where)], check=False, capture_output=True)


class PageLimit:
    """SQLite's own ceiling: no page beyond the database's current size (SQLITE_FULL, no mount)."""

    how = "max_page_count"

    def fill(self, outbox: Outbox) -> None:
        (pages,) = outbox._db.execute("PRAGMA page_count").fetchone()
        outbox._db.execute(f"PRAGMA max_page_count={int(pages)}")

    def free(self, outbox: Outbox) -> None:
        outbox._db.execute("PRAGMA max_page_count=1073741823")


@pytest.fixture(params=["tmpfs", "max_page_count"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Disk, Path]]:
    if request.param == "tmpfs":
        fs = Tmpfs(tmp_path / "disk")
        try:
            yield fs, fs.where
        finally:
            fs.unmount()
    else:
        yield PageLimit(), tmp_path / "disk"


async def _traffic(source: PushSource, stop: asyncio.Event) -> None:
    """A band heard by two receivers, its signal swinging so that positions keep changing."""
    n = 0
    while not stop.is_set():
        n += 1
        source.push(receiver="rx-a" if n % 2 else "rx-b", rssi=-50 - (n * 7) % 40)
        await asyncio.sleep(0.01)


def sos_ids(backend: FakeBackend) -> list[str]:
    return [i for i, m in backend.stored.items() if m["type"] == "alert" and m["body"]["type"] == "sos"]


async def test_disk_full_keeps_running_delivers_alerts_once_and_recovers(
    disk: tuple[Disk, Path], tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    fs, where = disk
    record_property("disk_full_by", fs.how)
    backend = FakeBackend(TOKEN)
    await backend.start()
    traffic_stop = asyncio.Event()
    async with running(tmp_path, where / "outbox.sqlite3", backend) as (gw, source):
        traffic = asyncio.create_task(_traffic(source, traffic_stop))
        ob = gw.outbox
        await wait_for(lambda: len(backend.of_type("position")) >= 3)

        fs.fill(ob)
        await wait_for(lambda: ob.disk_full)
        beats = len(backend.heartbeats)
        adverts, ticks = gw.pipeline.stats.adverts, source.ticks
        await wait_for(lambda: any(h.get("disk_full") for h in backend.heartbeats[beats:]))
        beat = next(h for h in backend.heartbeats[beats:] if h.get("disk_full"))
        assert "full" in (beat["last_error"] or "").lower() or "i/o" in (beat["last_error"] or "").lower()

        # 1. SOS while the disk is full and the backend is there: sent from memory, acked once
        source.push(sos=True)
        await wait_for(lambda: len(sos_ids(backend)) == 1)
        first = sos_ids(backend)[0]
        await wait_for(lambda: first not in {q.id for q in ob.pending(1000)})  # its ack arrived
        assert ob.disk_full and first not in {i for i, _t, _s in ob.all_ids()}  # it never touched the disk
        assert gw.pipeline.stats.adverts > adverts and source.ticks > ticks  # the pipeline kept running

        # 2. SOS while the disk is full and the backend is away: held in memory, alerts first
        await backend.stop()
        source.push()  # button released, then pressed again: a second press
        source.push(sos=True)
        await wait_for(lambda: gw.pipeline.stats.by_alert.get("sos") == 2)
        held = [q for q in ob.pending(1000) if q.type == "alert"]
        assert len(held) == 1 and ob.memory_queue() >= 1 and ob.disk_full
        second = held[0].id
        assert ob.pending(1)[0].id == second  # the alert heads the send order, ahead of positions
        assert second not in {i for i, _t, _s in ob.all_ids()}

        # 3. space returns: the memory queue goes to disk by itself, same ids
        fs.free(ob)
        await wait_for(lambda: not ob.disk_full)
        on_disk = {i: st for i, _t, st in ob.all_ids()}
        assert on_disk.get(second) == PENDING and ob.memory_queue() == 0

        # 4. the backend returns: everything delivered, the alerts exactly once
        traffic_stop.set()
        await traffic
        await backend.start()
        await wait_for(lambda: ob.depth()[0] == 0)
        await wait_for(lambda: any(h.get("disk_full") is False for h in backend.heartbeats[-3:]))
        assert sorted(sos_ids(backend)) == sorted([first, second])
        assert backend.deliveries[first] == 1 and backend.deliveries[second] == 1
        rows = ob.all_ids()
        assert all(st == ACKED for _i, _t, st in rows)
        assert {i for i, _t, _s in rows} <= set(backend.stored)  # nothing on disk the backend lacks
        assert ob.memory_dropped == 0 and gw.supervisor.restarts.get("pipeline", 0) == 0
        assert gw.supervisor.restarts.get("uplink", 0) == 0
    await backend.stop()


def test_memory_queue_is_bounded_keeps_alerts_and_flushes_with_the_same_ids(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.db", memory_max=3, retry_s=0.0)
    before = ob.put("position", {"n": -1})
    PageLimit().fill(ob)
    pad = "x" * 5000  # every message needs a new page: the database may not grow
    ps = ob.put_many([("position", {"n": i, "pad": pad}, None) for i in range(6)])
    alert = ob.put("alert", {"type": "sos", "pad": pad})
    assert ob.disk_full and ob.memory_queue() == 4 and ob.memory_dropped == 3  # 3 oldest positions thinned
    order = [q.id for q in ob.pending(10)]
    assert order == [alert.id, before.id, ps[3].id, ps[4].id, ps[5].id]
    assert ob.depth() == (5, 1)
    assert ob.ack([before.id, ps[3].id]) == 2  # one on disk (its ack waits in memory), one in memory
    assert [q.id for q in ob.pending(10)] == [alert.id, ps[4].id, ps[5].id]
    seq_before = ob.next_seq()  # heartbeats still get numbers
    PageLimit().free(ob)
    assert ob.recover()
    assert not ob.disk_full and ob.memory_queue() == 0
    rows = {i: st for i, _t, st in ob.all_ids()}
    assert rows == {before.id: ACKED, alert.id: PENDING, ps[4].id: PENDING, ps[5].id: PENDING}
    assert [q.id for q in ob.pending(10)] == [alert.id, ps[4].id, ps[5].id]
    ob.close()
    ob = Outbox(tmp_path / "o.db")  # a restart after recovery: all on disk, seq never goes back
    assert [q.id for q in ob.pending(10)] == [alert.id, ps[4].id, ps[5].id]
    assert ob.next_seq() > seq_before
    ob.close()
