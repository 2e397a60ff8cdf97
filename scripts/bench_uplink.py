#!/usr/bin/env python3
"""Gateway send path: draining the outbox through the real `gateway.uplink.Uplink`, with and without its
damaged-row check (`Uplink._unsendable`: each row's size, and each row json-parsed to find its own id).

The outbox (`gateway.queue.Outbox`, SQLite in a temporary folder) is filled with `--messages` positions whose
bodies are the pipeline's own (`gateway.pipeline.position_body`, ~600 characters). A backend stand-in runs in
another process (as the backend is another machine): a WebSocket server on loopback that acks the frames it has
read in one `ack` each time its socket runs dry, as the backend acks a stored batch. Per run, the uplink connects
and sends until every message is acked; timed in the gateway's process by its CPU time (`time.process_time`,
which other jobs on a shared machine do not distort) and by the wall clock, from the connect to the last ack.
The two ways alternate, `--runs` runs each:

* check: the uplink as shipped;
* baseline: the same uplink with `_unsendable` answering False at once (no check), in the same run.

Also timed alone, by CPU time: `_unsendable` over every row of a filled outbox (µs per message, median of `--runs`).
The figures are medians; the ratio is check/baseline of the CPU time per message. The last line is `SUMMARY ...`.

Usage: .venv/bin/python scripts/bench_uplink.py [--messages 5000] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.server import ServerConnection, serve

from chumphae.values import Match, Place, Position, ZoneStatus
from gateway.pipeline import position_body
from gateway.queue import Outbox, Queued
from gateway.uplink import Uplink

TOKEN = "bench-uplink"
START = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def bodies(n: int) -> list[tuple[str, dict[str, Any], datetime | None]]:
    """`n` positions of 60 bands, one a second each, as the pipeline writes them into the outbox."""
    out: list[tuple[str, dict[str, Any], datetime | None]] = []
    place = Place("40-1234-0012", "B-0012-01", None, "บ้านเลขที่ 12 หมู่ 4 ตำบลชุมแพ", "House 12, Moo 4, Chumphae")
    for i in range(n):
        t = START + timedelta(seconds=i // 60)
        pos = Position(f"C0:FF:EE:00:{i % 60 // 256:02X}:{i % 60:02X}", t, 16.5442 + i % 60 * 1e-4,
                       102.0997 + (i // 60) * 1e-5, 18.5, receivers=3)
        m = Match(pos, ZoneStatus.INSIDE, 3, -42.5, 12.25, place, schedule="day", outside_share=0.0)
        out.append(("position", position_body(pos, 1 + i % 60, m), t))
    return out


def serve_acks(port_out: Any, ready: Any) -> None:
    """The backend stand-in (its own process): acks what it has read whenever its socket runs dry."""

    async def handler(ws: ServerConnection) -> None:
        ids: list[str] = []
        flush: asyncio.Task[None] | None = None

        async def ack() -> None:
            while ids:
                await asyncio.sleep(0)  # every frame already read joins this ack
                batch = ids[:]
                ids.clear()
                await ws.send(json.dumps({"type": "ack", "ids": batch}))

        async for raw in ws:
            doc = json.loads(raw)
            if doc.get("type") == "hello":
                continue
            ids.append(doc["id"])
            if flush is None or flush.done():
                flush = asyncio.create_task(ack())

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
            port_out.value = server.sockets[0].getsockname()[1]
            ready.set()
            await asyncio.Future()

    asyncio.run(main())


async def drain(folder: Path, rows: list[tuple[str, dict[str, Any], datetime | None]], port: int,
                check: bool) -> tuple[float, float]:
    """(CPU s, wall s) of the gateway's process to send every row and have it acked."""
    ob = Outbox(folder / f"outbox-{time.monotonic_ns()}.db")
    ob.put_many(rows)
    up = Uplink(f"ws://127.0.0.1:{port}/api/v1/gateway/ws", TOKEN, ob, heartbeat_s=3600, alert_url="off")
    if not check:
        up._unsendable = lambda q: False  # type: ignore[method-assign]
    stop = asyncio.Event()
    c0, w0 = time.process_time(), time.perf_counter()
    task = asyncio.create_task(up.run(stop))
    while up.stats.acked < len(rows):
        await asyncio.sleep(0.002)
    c1, w1 = time.process_time(), time.perf_counter()
    stop.set()
    await task
    assert up.stats.sent == len(rows) and up.stats.rejected == 0 and ob.depth()[0] == 0
    ob.close()
    return c1 - c0, w1 - w0


def check_alone(folder: Path, rows: list[tuple[str, dict[str, Any], datetime | None]]) -> float:
    """µs per message of `_unsendable` over every row of a filled outbox (none damaged)."""
    ob = Outbox(folder / f"alone-{time.monotonic_ns()}.db")
    ob.put_many(rows)
    queued: list[Queued] = ob.pending(len(rows))
    up = Uplink("ws://127.0.0.1:9/", TOKEN, ob)
    t0 = time.process_time()
    for q in queued:
        if up._unsendable(q):
            raise AssertionError("a sound row judged unsendable")
    dt = time.process_time() - t0
    ob.close()
    return dt / len(queued) * 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args(argv)
    logging.getLogger("gateway").setLevel(logging.ERROR)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # the gateway on one core
    rows = bodies(a.messages)
    size = statistics.median(len(json.dumps(b, ensure_ascii=False)) for _, b, _ in rows)
    ctx = multiprocessing.get_context("spawn")
    port, ready = ctx.Value("i", 0), ctx.Event()
    server = ctx.Process(target=serve_acks, args=(port, ready), daemon=True)
    server.start()
    if not ready.wait(30):
        raise SystemExit("the backend stand-in did not start")
    print(f"{a.messages:,} positions (bodies ~{size:.0f} characters), backend stand-in on 127.0.0.1:{port.value} "
          f"(another process), {a.runs} runs each way, alternating")
    cpu: dict[bool, list[float]] = {True: [], False: []}
    wall: dict[bool, list[float]] = {True: [], False: []}
    alone: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-uplink-") as tmp:
            folder = Path(tmp)
            for i in range(a.runs):
                for check in ((True, False) if i % 2 == 0 else (False, True)):
                    c, w = asyncio.run(drain(folder, rows, port.value, check))
                    cpu[check].append(c / a.messages * 1e6)
                    wall[check].append(w / a.messages * 1e6)
                alone.append(check_alone(folder, rows))
                print(f"run {i + 1}: check {cpu[True][-1]:.1f} µs CPU/msg ({wall[True][-1]:.1f} wall)   "
                      f"baseline {cpu[False][-1]:.1f} µs CPU/msg ({wall[False][-1]:.1f} wall)   "
                      f"_unsendable alone {alone[-1]:.2f} µs/msg", flush=True)
    finally:
        server.terminate()
        server.join(5)
    mc, mb = statistics.median(cpu[True]), statistics.median(cpu[False])
    wc, wb = statistics.median(wall[True]), statistics.median(wall[False])
    ma = statistics.median(alone)
    print(f"median: check {mc:.1f} µs CPU/msg, baseline {mb:.1f}, ratio {mc / mb:.3f} "
          f"(wall {wc:.1f} vs {wb:.1f} µs/msg, {wc / wb:.3f}); _unsendable alone {ma:.2f} µs/msg = "
          f"{ma / mb * 100:.1f} % of the baseline's CPU per message")
    print(f"SUMMARY bench_uplink: outbox drain {mc:.1f} µs CPU/msg with the damaged-row check, {mb:.1f} without "
          f"(ratio {mc / mb:.3f}); the check alone {ma:.2f} µs/msg ({ma / mb * 100:.1f} %); "
          f"check_us_per_msg={mc:.1f} baseline_us_per_msg={mb:.1f} alone_us_per_msg={ma:.2f}")


if __name__ == "__main__":
    main()
