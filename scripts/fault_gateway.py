"""Disk full at a gateway, against the real backend: what was sent, acknowledged, stored, duplicated, lost.

    .venv/bin/python scripts/fault_gateway.py [--full-s 5] [--rounds 3]

A real backend (SQLite in a temporary folder, the demo district seeded, uvicorn in this event
loop) and a gateway of the town site whose outbox lives on a 8 MiB tmpfs (as root; otherwise
SQLite's `PRAGMA max_page_count` gives the same SQLITE_FULL, and the line says which). A driver
hands the gateway real band frames of one demo band from two receivers; in each round the disk
is filled, the band's SOS button is pressed while it is full, then the filler is removed. At the
end it prints one line per figure and a summary line:

    messages queued by the gateway (alerts by type, positions, readings), sent (re-sends = sent −
    queued), acked, stored by the backend (ingested message ids; the id is the primary key, so a
    re-send is acknowledged and never stored twice), lost (queued, not dropped by design, not
    stored: must be 0), dropped by design (memory cap), SOS presses vs SOS alert messages.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402
from sqlmodel import Session, func, select  # noqa: E402

from chumphae.api.app import create_app  # noqa: E402
from chumphae.config import Settings  # noqa: E402
from chumphae.db import init_engine, session_scope  # noqa: E402
from chumphae.demo import DEMO_SITE  # noqa: E402
from chumphae.models import Alert, IngestedMessage  # noqa: E402
from chumphae.seed import rotate_gateway_tokens, seed_demo  # noqa: E402
from chumphae.timeutil import utcnow  # noqa: E402
from chumphae.values import Advert  # noqa: E402
from gateway.config import GatewaySettings  # noqa: E402
from gateway.decode import chumphae_band as band  # noqa: E402
from gateway.queue import Outbox  # noqa: E402
from gateway.service import Gateway, load_config  # noqa: E402
from gateway.siteconfig import SiteConfig  # noqa: E402


class Driver:
    """Band frames of one band from two receivers, pushed by `run`; a tick every 50 ms."""

    def __init__(self, config: SiteConfig) -> None:
        self.band = config.bands[0]
        self.receivers = [r.id for r in config.receivers[:2]] or ["rx"]
        self.start = utcnow()
        self.now = 0.0
        self.seq = 1000
        self.sos = False
        self.queue: asyncio.Queue[Advert] = asyncio.Queue()

    def clock(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return self.start + timedelta(seconds=self.now)

    def push(self, n: int) -> None:
        self.seq += 1
        frame = band.encode(self.band.address, self.band.key, band.BandState(seq=self.seq, sos=self.sos))
        self.queue.put_nowait(Advert(self.band.address, -55 - (n * 7) % 35, self.receivers[n % len(self.receivers)],
                                     self.wall(), self.now, {band.COMPANY_ID: frame}))

    async def __aiter__(self) -> AsyncIterator[Advert | None]:
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + 0.05
        while True:
            wait = next_tick - loop.time()
            if wait <= 0:
                next_tick, self.now = loop.time() + 0.05, self.now + 1.0
                yield None
                continue
            with contextlib.suppress(TimeoutError):
                yield await asyncio.wait_for(self.queue.get(), wait)


class Disk:
    def __init__(self, where: Path) -> None:
        self.where = where
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
                              capture_output=True, text=True, check=False)
        self.tmpfs = done.returncode == 0
        self.how = "tmpfs 8 MiB filled by a file" if self.tmpfs else \
            f"SQLite max_page_count (mount refused: {done.stderr.strip() or done.returncode})"

    def fill(self, outbox: Outbox) -> None:
        if not self.tmpfs:
            (pages,) = outbox._db.execute("PRAGMA page_count").fetchone()
            outbox._db.execute(f"PRAGMA max_page_count={int(pages)}")
            return
        db = sqlite3.connect(outbox.path)
        with contextlib.suppress(sqlite3.Error):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        fd = os.open(self.where / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            for size in (65536, 4096, 1):
                with contextlib.suppress(OSError):
                    while True:
                        os.write(fd, b"\0" * size)
        finally:
            os.close(fd)

    def free(self, outbox: Outbox) -> None:
        if self.tmpfs:
            (self.where / "filler").unlink()
        else:
            outbox._db.execute("PRAGMA max_page_count=1073741823")

    def close(self) -> None:
        if self.tmpfs:
            subprocess.run(["umount", "-l", str(self.where)], check=False, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait(pred: object, timeout: float = 30.0) -> bool:
    end = asyncio.get_running_loop().time() + timeout
    while not pred():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > end:
            return False
        await asyncio.sleep(0.05)
    return True


async def main(full_s: float, rounds: int) -> int:
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    tmp = Path(tempfile.mkdtemp(prefix="chumphae-fault-"))
    port = free_port()
    settings = Settings(data_dir=tmp / "data", database_url=f"sqlite:///{tmp / 'backend.db'}", port=port)
    engine = init_engine(settings.effective_database_url)
    with session_scope(engine) as s:
        seed_demo(s)
        tokens = rotate_gateway_tokens(s)
    server = uvicorn.Server(uvicorn.Config(create_app(settings, manage_engine=False), host="127.0.0.1", port=port,
                                           log_level="error", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    disk = Disk(tmp / "disk")
    gs = GatewaySettings(backend_url=f"http://127.0.0.1:{port}", token=tokens[DEMO_SITE], queue_path=disk.where / "outbox.sqlite3",
                         config_cache=tmp / "config.json", heartbeat_s=0.5, backoff_min_s=0.1, backoff_max_s=1.0,
                         config_poll_s=0, position_every_s=5.0)
    config = await load_config(gs)
    assert config is not None and config.bands, "the seeded town site has no bands"
    driver = Driver(config)
    gw = Gateway(gs, config, driver)
    stop = asyncio.Event()
    runner = asyncio.create_task(gw.run(stop))
    n = 0

    async def traffic(seconds: float) -> None:
        nonlocal n
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            n += 1
            driver.push(n)
            await asyncio.sleep(0.01)

    presses = 0
    full_episodes_seen = 0
    try:
        await traffic(2.0)
        for _ in range(rounds):
            disk.fill(gw.outbox)
            await traffic(1.0)
            full_episodes_seen += await wait(lambda: gw.outbox.disk_full, 10)
            driver.sos = True
            presses += 1
            await traffic(0.3)
            driver.sos = False
            await traffic(full_s)
            disk.free(gw.outbox)
            await wait(lambda: not gw.outbox.disk_full, 10)
            await traffic(1.0)
        await wait(lambda: gw.outbox.depth()[0] == 0, 30)
    finally:
        stop.set()
        await runner
        server.should_exit = True
        await serving
        disk.close()
    st, up, ob = gw.pipeline.stats, gw.uplink.stats if gw.uplink else None, gw.outbox
    with Session(engine) as s:
        stored = dict(s.exec(select(IngestedMessage.kind, func.count()).group_by(IngestedMessage.kind)).all())
        alert_rows = dict(s.exec(select(Alert.type, func.count()).group_by(Alert.type)).all())
    queued = st.queued
    data = sum(stored.get(k, 0) for k in ("alert", "position", "reading"))
    dropped = ob.memory_dropped + ob.dropped
    print(f"disk full by: {disk.how}; rounds {rounds}, disk-full episodes seen {full_episodes_seen}")
    sent = up.sent if up else 0
    sos = st.by_alert.get("sos", 0)
    lost = queued - dropped - data
    print(f"queued by the gateway: {queued} (alerts {st.alerts} {dict(sorted(st.by_alert.items()))}, positions {st.positions})")
    print(f"sent: {sent} (re-sends {sent - queued}); acked: {up.acked if up else 0}; rejected: {up.rejected if up else 0}")
    print(f"stored by the backend: {data} data messages {dict(sorted(stored.items()))}; alert rows (state) {alert_rows}")
    print(f"dropped by design (memory cap / outbox cap): {dropped}")
    print(f"lost: {lost}")
    print(f"SOS presses {presses}, SOS alert messages {sos}, alert messages stored {stored.get('alert', 0)} of "
          f"{st.alerts}; task restarts {gw.supervisor.health()['task_restarts_total']}")
    ok = lost == 0 and sos == presses and stored.get("alert", 0) == st.alerts and full_episodes_seen == rounds
    print(f"summary: {'OK' if ok else 'FAIL'} — {queued} queued, {data} stored, {lost} lost, {sent - queued} re-sent, "
          f"{stored.get('alert', 0)}/{st.alerts} alert messages stored ({sos}/{presses} SOS), disk full "
          f"{full_episodes_seen}/{rounds} times ({'tmpfs' if disk.tmpfs else 'max_page_count'})")
    return 0 if ok else 1


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full-s", type=float, default=3.0, help="seconds of traffic while the disk is full, per round")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    raise SystemExit(asyncio.run(main(a.full_s, a.rounds)))
