#!/usr/bin/env python3
"""The backend's hot path: gateway WebSocket in → stored → acked → on a caregiver's live feed.

Starts a real backend (uvicorn, `chumphae.api.app.create_app`) in a child
process on 127.0.0.1, on a fresh SQLite file (default) or in a private
PostgreSQL schema (`--url postgresql://...`, created and dropped here). Seeds
one site: a gateway, N patients each wearing a band of that site, one
caregiver assigned to all of them. Then, per run:

* pipeline: a plain `websockets` client as the gateway (bearer token) sends M
  `position` messages, pipelined with at most `--window` (protocol max 256)
  unacked in flight; a plain `websockets` feed client for the caregiver
  (`/ws/alerts`, bearer header) receives the `position` deltas. Measured:
  messages acked per second (first send → last ack) and, per message, send →
  feed frame latency (median, p95);
* idle latency: `--idle` single messages, each sent only after the previous
  one reached the feed (the latency a lone alert-free position sees);
* baseline: the same M rows inserted straight into `position` through the
  SQLAlchemy ORM, one session and one commit per message (a naive ingest:
  no dedupe, no feed log, no ack), from this process.

Prints each run, medians over the runs and the pipeline/baseline ratio; the
last line is one `SUMMARY ...` line.
Usage: .venv/bin/python scripts/bench_ingest.py [--bands 50] [--messages 3000] [--runs 3]
       [--url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LAT, LON = 16.5442, 102.0997
SITE = "bench-site"


# --------------------------------------------------------------------------- the backend (child process)

def serve(url: str, schema: str | None, port: int) -> None:
    import uvicorn

    from chumphae.api.app import create_app
    from chumphae.config import Settings
    from chumphae.db import make_engine, set_engine

    set_engine(make_engine(url, schema=schema))
    app = create_app(Settings(redis_url=None), manage_engine=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio", lifespan="on")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_backend(url: str, schema: str | None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [sys.executable, __file__, "--serve", "--url", url, "--port", str(port)]
    if schema:
        cmd += ["--schema", schema]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"backend exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("backend did not start within 30 s") from None
            time.sleep(0.05)


# --------------------------------------------------------------------------- database

def seed(engine: Any, bands: int) -> tuple[str, str, list[tuple[str, int, int]]]:
    """A gateway, `bands` patients with a band each, a caregiver for all; (gw token, user token, bands)."""
    from sqlmodel import Session

    from chumphae.auth.service import assign, create_gateway, create_user
    from chumphae.models import Patient, Wristband

    with Session(engine, expire_on_commit=False) as s:
        gw, gw_token = create_gateway(s, slug="gw-bench", name="bench gateway", site=SITE, lat=LAT, lon=LON,
                                      receivers=[{"id": "rx-0", "lat": LAT, "lon": LON, "p1m_dbm": -59}])
        user, user_token = create_user(s, name="bench caregiver", role="caregiver")
        out = []
        for i in range(bands):
            p = Patient(name_th=f"ผู้ป่วย {i}", name_en=f"Patient {i}", nhso_group=2,
                        home_lat=LAT + (i % 7) * 1e-4, home_lon=LON + (i % 5) * 1e-4)
            s.add(p)
            s.flush()
            address = f"C0:BE:0C:00:{i // 256:02X}:{i % 256:02X}"
            band = Wristband(address=address, key_hex=os.urandom(16).hex(), patient_id=p.id, site=SITE)
            s.add(band)
            s.flush()
            assign(s, user_id=user.id, patient_id=p.id)  # type: ignore[arg-type]
            out.append((address, p.id, band.id))
        s.commit()
        assert gw.id is not None
        return gw_token, user_token, out  # type: ignore[return-value]


def position_body(address: str, patient_id: int, t: datetime, k: int) -> dict[str, Any]:
    return {"address": address, "patient_id": patient_id, "t": t.isoformat(),
            "lat": LAT + (k % 11) * 1e-5, "lon": LON + (k % 13) * 1e-5, "uncertainty_m": 18.5,
            "source": "ble", "receivers": 3, "in_coverage": True,
            "match": {"status": "inside", "zone_version": 1, "distance_to_boundary_m": -22.1,
                      "distance_to_route_m": 4.0,
                      "place": {"parcel_code": "03I002", "building_code": None, "landmark": None,
                                "description_th": "บ้าน", "description_en": "home"}}}


def baseline(engine: Any, bands: list[tuple[str, int, int]], gateway_id: int, m: int, t0: datetime) -> float:
    """Rows per second: the same position rows, one ORM session + commit per message."""
    from sqlmodel import Session

    from chumphae.models import PositionRecord

    start = time.perf_counter()
    for k in range(m):
        _, patient_id, band_id = bands[k % len(bands)]
        with Session(engine) as s:
            s.add(PositionRecord(patient_id=patient_id, band_id=band_id, gateway_id=gateway_id,
                                 t=t0 + timedelta(milliseconds=k), lat=LAT + (k % 11) * 1e-5,
                                 lon=LON + (k % 13) * 1e-5, uncertainty_m=18.5, source="ble", in_coverage=True,
                                 zone_status="inside", zone_version=1, distance_to_boundary_m=-22.1,
                                 parcel_code="03I002"))
            s.commit()
    return m / (time.perf_counter() - start)


# --------------------------------------------------------------------------- clients

class Feed:
    """The caregiver's feed socket: position frames keyed by (patient_id, t) → arrival time."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.arrived: dict[tuple[int, str], float] = {}
        self.waiters: dict[tuple[int, str], asyncio.Future[float]] = {}
        self.resyncs = 0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            now = time.perf_counter()
            frame = json.loads(raw)
            if frame.get("type") == "resync":
                self.resyncs += 1
            if frame.get("type") != "position":
                continue
            p = frame["position"]
            key = (p["patient_id"], _norm(p["t"]))
            self.arrived[key] = now
            fut = self.waiters.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(now)

    def wait(self, key: tuple[int, str]) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        if key in self.arrived:
            fut.set_result(self.arrived[key])
        else:
            self.waiters[key] = fut
        return fut


def _norm(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(timezone.utc).isoformat()


def envelope(seq: int, body: dict[str, Any]) -> tuple[str, str]:
    mid = str(uuid.uuid4())
    return mid, json.dumps({"id": mid, "type": "position", "t": datetime.now(timezone.utc).isoformat(),
                            "seq": seq, "body": body})


async def run_once(port: int, gw_token: str, user_token: str, bands: list[tuple[str, int, int]],
                   m: int, window: int, idle: int, seq0: int) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    base = f"ws://127.0.0.1:{port}"
    async with connect(f"{base}/ws/alerts", additional_headers={"Authorization": f"Bearer {user_token}"},
                       max_size=None) as fws, \
            connect(f"{base}/api/v1/gateway/ws", additional_headers={"Authorization": f"Bearer {gw_token}"},
                    max_size=None) as gws:
        for _ in range(2):  # welcome, snapshot
            json.loads(await asyncio.wait_for(fws.recv(), 10))
        assert json.loads(await asyncio.wait_for(gws.recv(), 10))["type"] == "welcome"
        feed = Feed(fws)

        t_base = datetime.now(timezone.utc)
        msgs = []
        for k in range(m):
            address, patient_id, _ = bands[k % len(bands)]
            t = t_base + timedelta(milliseconds=k)
            mid, text = envelope(seq0 + k, position_body(address, patient_id, t, k))
            msgs.append((mid, text, (patient_id, t.isoformat())))

        sent_at: dict[str, float] = {}
        acked = 0
        errors = 0
        ack_frames = 0
        room = asyncio.Semaphore(window)
        done = asyncio.Event()

        async def acks() -> None:
            nonlocal acked, errors, ack_frames
            async for raw in gws:
                frame = json.loads(raw)
                if frame["type"] == "ack":
                    ack_frames += 1
                    n = sum(1 for i in frame["ids"] if i in sent_at)
                    acked += n
                    for _ in range(n):
                        room.release()
                elif frame["type"] == "error":
                    errors += 1
                    room.release()
                if acked + errors >= len(sent_at) and len(sent_at) == m:
                    done.set()

        reader = asyncio.create_task(acks())
        start = time.perf_counter()
        for mid, text, _ in msgs:
            await room.acquire()
            sent_at[mid] = time.perf_counter()
            await gws.send(text)
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - start
        delivered = await asyncio.wait_for(asyncio.gather(*(feed.wait(key) for _, _, key in msgs)), 60)
        lat = [(arr - sent_at[mid]) * 1000 for (mid, _, _), arr in zip(msgs, delivered, strict=True)]

        # idle: one message at a time, the next only after the previous reached the feed
        idle_lat = []
        t_idle = t_base + timedelta(milliseconds=m + 10)
        for k in range(idle):
            address, patient_id, _ = bands[k % len(bands)]
            t = t_idle + timedelta(milliseconds=k)
            mid, text = envelope(seq0 + m + k, position_body(address, patient_id, t, k))
            sent_at[mid] = time.perf_counter()
            fut = feed.wait((patient_id, t.isoformat()))
            await gws.send(text)
            arr = await asyncio.wait_for(fut, 10)
            idle_lat.append((arr - sent_at[mid]) * 1000)
        reader.cancel()
        feed.task.cancel()
        await asyncio.gather(reader, feed.task, return_exceptions=True)
    return {"acked_per_s": acked / elapsed, "acked": acked, "errors": errors, "resyncs": feed.resyncs,
            "per_ack": acked / max(1, ack_frames),
            "lat_p50": statistics.median(lat), "lat_p95": quantile(lat, 0.95),
            "idle_p50": statistics.median(idle_lat) if idle_lat else float("nan")}


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


# --------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None, help="postgresql://... (default: a fresh SQLite file)")
    ap.add_argument("--bands", type=int, default=50)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--window", type=int, default=256, help="unacked messages in flight (protocol max 256)")
    ap.add_argument("--idle", type=int, default=50, help="one-at-a-time messages for the idle latency")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--schema", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.url, args.schema, args.port)
        return
    if not 1 <= args.window <= 256:
        ap.error("--window must be 1..256")

    import logging

    from sqlalchemy import text
    from sqlmodel import Session, select

    from chumphae.db import make_engine, upgrade
    from chumphae.models import Gateway

    logging.disable(logging.WARNING)  # alembic's INFO lines
    tmp = tempfile.TemporaryDirectory(prefix="bench_ingest_")
    schema = None
    admin = None
    if args.url:
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = make_engine(args.url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = args.url
    else:
        url = f"sqlite:///{Path(tmp.name) / 'bench.db'}"
    engine = make_engine(url, schema=schema)
    proc = None
    try:
        upgrade(engine)
        gw_token, user_token, bands = seed(engine, args.bands)
        with Session(engine) as s:
            gateway_id = s.exec(select(Gateway.id)).one()
        proc, port = start_backend(url, schema)
        db = "postgresql" if schema else "sqlite"
        print(f"bench_ingest: {db}, {args.bands} bands, {args.messages} positions per run, window {args.window}, "
              f"{args.runs} runs, backend pid {proc.pid} on 127.0.0.1:{port}")
        results = []
        for r in range(args.runs):
            res = asyncio.run(run_once(port, gw_token, user_token, bands, args.messages, args.window,
                                       args.idle, seq0=r * (args.messages + args.idle) + 1))
            res["baseline_per_s"] = baseline(engine, bands, gateway_id, args.messages,
                                             datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(days=r))
            results.append(res)
            print(f"  run {r + 1}: {res['acked_per_s']:8.0f} acked/s  feed latency p50 {res['lat_p50']:7.1f} ms "
                  f"p95 {res['lat_p95']:7.1f} ms  idle p50 {res['idle_p50']:5.1f} ms  | baseline "
                  f"{res['baseline_per_s']:7.0f} rows/s  (ids/ack {res['per_ack']:.0f}, errors {res['errors']}, resyncs {res['resyncs']})")
        med = {k: statistics.median(r[k] for r in results)
               for k in ("acked_per_s", "lat_p50", "lat_p95", "idle_p50", "baseline_per_s")}
        ratio = med["acked_per_s"] / med["baseline_per_s"]
        print(f"medians: pipeline {med['acked_per_s']:.0f} msg/s acked and delivered, baseline "
              f"{med['baseline_per_s']:.0f} rows/s (one ORM commit per row): ratio {ratio:.2f}x")
        print(f"SUMMARY db={db} bands={args.bands} messages={args.messages} window={args.window} runs={args.runs} "
              f"acked_per_s={med['acked_per_s']:.0f} feed_latency_p50_ms={med['lat_p50']:.1f} "
              f"feed_latency_p95_ms={med['lat_p95']:.1f} idle_latency_p50_ms={med['idle_p50']:.1f} "
              f"baseline_rows_per_s={med['baseline_per_s']:.0f} ratio={ratio:.2f}")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        engine.dispose()
        if admin is not None and schema:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
        tmp.cleanup()


if __name__ == "__main__":
    main()
