#!/usr/bin/env python3
"""Delivery under failing providers: SOS over the gateway WebSocket → notices → fake LINE and SMS servers.

A real backend (uvicorn, `create_app`, its own delivery worker) on a fresh
SQLite file (or a private PostgreSQL schema with `--url`), plus `--workers - 1` more workers on their own engines (several
workers claiming the same table, as several backend processes would). The
fake LINE server and SMS gateway (tests/deliver/fakes.py: real HTTP servers
on 127.0.0.1) fail `--fail` of requests: 429 with Retry-After 1, 500, a
time-out without accepting, or accept-then-time-out (the case that makes
duplicates). N patients each have a caregiver on LINE and SMS; a gateway
sends one SOS per patient at `--rate` per second.

Printed per run: notices queued (LINE + SMS), sent, retried (tries beyond
the first), duplicated (a provider delivered the same notice twice: must be
0), lost (not delivered when the run ends: must be 0), and SOS → first
provider request latency p50 / p99 (send on the gateway socket → the first
request for that alert at a fake provider). Baseline: the same run with
providers that never fail; ratios against it. Last line: SUMMARY.

Usage: .venv/bin/python scripts/bench_delivery.py [--patients 60] [--fail 0.3] [--runs 3] [--workers 2] [--rate 5]
       [--url postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SITE = "bench-site"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def seed(engine: Any, patients: int) -> tuple[str, list[str]]:
    from sqlmodel import Session

    from chumphae.auth.service import assign, create_gateway, create_user
    from chumphae.deliver.linehook import set_contact
    from tests.factories import make_band, make_patient

    bands = []
    with Session(engine) as s:
        _, token = create_gateway(s, slug="gw-bench", name="bench", site=SITE, lat=16.5442, lon=102.0997)
        for i in range(patients):
            p = make_patient(s, name_th=f"ผู้ป่วย {i}", cid=None)
            address = f"C0:DE:{i // 256:02X}:{i % 256:02X}:00:01"
            make_band(s, patient_id=p.id, address=address, site=SITE)
            u, _ = create_user(s, name=f"caregiver {i}", role="caregiver")
            assign(s, user_id=u.id, patient_id=p.id)  # type: ignore[arg-type]
            set_contact(s, user_id=u.id, channel="line", address="U" + uuid.uuid4().hex)  # type: ignore[arg-type]
            set_contact(s, user_id=u.id, channel="sms", address=f"08{i:08d}")  # type: ignore[arg-type]
            bands.append(address)
        s.commit()
    return token, bands


def database(pg_url: str | None) -> tuple[Any, Any, Any]:
    """(engine, make another engine on the same data, clean up): a fresh SQLite file or a private PostgreSQL schema."""
    from sqlalchemy import text

    from chumphae.db import make_engine

    if not pg_url:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bench-delivery-')) / 'bench.db'}"
        return make_engine(url), lambda: make_engine(url), lambda: None
    schema = f"bench_delivery_{uuid.uuid4().hex[:8]}"
    admin = make_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return make_engine(pg_url, schema=schema), lambda: make_engine(pg_url, schema=schema), drop


async def one_run(*, patients: int, fail: float, rate: float, workers: int, seed_: int,
                  pg_url: str | None = None) -> dict[str, Any]:
    from sqlmodel import Session, select
    from websockets.asyncio.client import connect

    from chumphae.alert.escalate import ClockOptions
    from chumphae.db import set_engine, upgrade
    from chumphae.deliver.run import running_worker
    from chumphae.deliver.worker import WorkerOptions
    from chumphae.models import OutboxNotice
    from tests.deliver.fakes import LINE_TOKEN, SMS_PASSWORD, SMS_USER, Fake, line_server, sms_server
    from tests.feed.liveserver import live_server

    engine, another, cleanup = database(pg_url)
    upgrade(engine)
    set_engine(engine)
    token, bands = seed(engine, patients)
    opts = WorkerOptions(poll_s=0.2, batch=32, concurrency=16, lease_s=5.0, give_up_s=120.0, backoff_s=0.2,
                         backoff_max_s=2.0)
    with line_server(Fake("line", fail_rate=fail, seed=seed_, hang_s=0.5)) as line, \
            sms_server(Fake("sms", fail_rate=fail, seed=seed_ + 1, hang_s=0.5)) as sms:
        from chumphae.config import Settings

        settings = Settings(line_api_url=line.url, line_channel_access_token=LINE_TOKEN,  # type: ignore[arg-type]
                            sms_url=sms.url + "/send", sms_username=SMS_USER, sms_password=SMS_PASSWORD,  # type: ignore[arg-type]
                            delivery_timeout_s=0.3, delivery_poll_s=0.2, public_url="https://chumphae.example")
        extra = [another() for _ in range(workers - 1)]
        with live_server(clock_options=ClockOptions(tick_s=0), delivery_settings=settings,
                         delivery_options=opts) as srv:
            async with _workers(extra, settings, opts, running_worker):
                sent_at: dict[int, float] = {}
                acked_at: dict[int, float] = {}
                index_of_mid: dict[str, int] = {}
                async with connect(f"{srv.ws}/api/v1/gateway/ws",
                                   additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                    json.loads(await ws.recv())

                    async def read_acks() -> None:
                        while len(acked_at) < len(bands):
                            frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                            for mid in frame.get("ids", []) if frame.get("type") == "ack" else []:
                                acked_at.setdefault(index_of_mid[mid], time.monotonic())

                    reader = asyncio.create_task(read_acks())
                    for i, band in enumerate(bands):
                        now = datetime.now(UTC).isoformat()
                        mid = str(uuid.uuid4())
                        index_of_mid[mid] = i
                        sent_at[i] = time.monotonic()
                        await ws.send(json.dumps({"id": mid, "type": "alert", "t": now, "seq": i + 1, "body": {
                            "type": "sos", "address": band, "t": now, "lat": 16.5461, "lon": 102.1030,
                            "uncertainty_m": 25.0}}))
                        await asyncio.sleep(1.0 / rate)
                    await reader
                deadline = time.monotonic() + 150
                while time.monotonic() < deadline:
                    with Session(engine) as s:
                        open_ = s.exec(select(OutboxNotice.id).where(
                            OutboxNotice.channel != "feed",
                            OutboxNotice.status.in_(["queued", "sending"]))).all()  # type: ignore[attr-defined]
                    if not open_:
                        break
                    await asyncio.sleep(0.2)
        for e in extra:
            e.dispose()
        with Session(engine) as s:
            rows = [r for r in s.exec(select(OutboxNotice)).all() if r.channel != "feed"]
            from chumphae.models import Alert, Wristband

            band_of_alert = {a.id: a.band_id for a in s.exec(select(Alert)).all()}
            address_of_band = {b.id: b.address for b in s.exec(select(Wristband)).all()}
        set_engine(None)
        engine.dispose()
        cleanup()
        index_of_address = {b: i for i, b in enumerate(bands)}
        alert_of_key = {r.key: r.alert_id for r in rows}
        first_hit: dict[int, float] = {}
        for h in line.hits + sms.hits:
            aid = alert_of_key.get(h.key or "")
            if aid is not None:
                first_hit[aid] = min(first_hit.get(aid, h.t), h.t)
        latencies, after_ack, to_ack = [], [], []
        for aid, t in first_hit.items():
            band_id = band_of_alert.get(aid)
            i = index_of_address.get(address_of_band.get(band_id, ""), -1) if band_id else -1
            if i >= 0:
                latencies.append((t - sent_at[i]) * 1000.0)
                after_ack.append((t - acked_at[i]) * 1000.0)  # can be < 0: the push may beat the ack frame
                to_ack.append((acked_at[i] - sent_at[i]) * 1000.0)
        accepted = {**line.accepted, **sms.accepted}
        sent = [r for r in rows if r.status == "sent"]
        return {
            "queued": len(rows),
            "sent": len(sent),
            "retried": sum(max(0, r.attempts - 1) for r in rows),
            "duplicated": line.duplicates + sms.duplicates,
            "lost": sum(1 for r in rows if r.status != "sent" or r.key not in accepted),
            "phantom": sum(1 for r in sent if r.key not in accepted),  # recorded sent, never accepted
            "requests": len(line.hits) + len(sms.hits),
            "failed_requests": sum(1 for h in line.hits + sms.hits if h.answer != "ok"),
            "alerts_reached": len(first_hit),
            "p50_ms": pct(latencies, 0.5),
            "p99_ms": pct(latencies, 0.99),
            "ack_p50_ms": pct(to_ack, 0.5),
            "after_ack_p50_ms": pct(after_ack, 0.5),
            "after_ack_p99_ms": pct(after_ack, 0.99),
        }


class _workers:
    """Extra workers on their own engines (as other backend processes would run)."""

    def __init__(self, engines: list[Any], settings: Any, opts: Any, running_worker: Any) -> None:
        self.ctxs = [running_worker(e, settings, opts) for e in engines]

    async def __aenter__(self) -> None:
        for c in self.ctxs:
            await c.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        for c in self.ctxs:
            await c.__aexit__(None, None, None)


def line_of(name: str, r: dict[str, Any]) -> str:
    return (f"{name}: queued={r['queued']} sent={r['sent']} retried={r['retried']} duplicated={r['duplicated']} "
            f"lost={r['lost']} phantom={r['phantom']} requests={r['requests']} "
            f"(failed by the fake: {r['failed_requests']}) alerts_reached={r['alerts_reached']} "
            f"sos_to_first_request p50={r['p50_ms']:.0f}ms p99={r['p99_ms']:.0f}ms "
            f"(sos_to_ack p50={r['ack_p50_ms']:.0f}ms; ack_to_first_request p50={r['after_ack_p50_ms']:.0f}ms "
            f"p99={r['after_ack_p99_ms']:.0f}ms)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--fail", type=float, default=0.3)
    ap.add_argument("--rate", type=float, default=5.0, help="SOS per second from the gateway")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="delivery workers on the same database")
    ap.add_argument("--url", default=None, help="PostgreSQL URL (a private schema, dropped after); default SQLite")
    args = ap.parse_args()
    import logging

    logging.basicConfig(level=logging.ERROR)
    failing, base = [], []
    for run in range(args.runs):
        b = asyncio.run(one_run(patients=args.patients, fail=0.0, rate=args.rate, workers=args.workers,
                                seed_=run + 1, pg_url=args.url))
        f = asyncio.run(one_run(patients=args.patients, fail=args.fail, rate=args.rate, workers=args.workers,
                                seed_=run + 1, pg_url=args.url))
        print(line_of(f"run {run + 1} baseline (0% failing)", b))
        print(line_of(f"run {run + 1} {args.fail:.0%} failing", f))
        base.append(b)
        failing.append(f)
    med = {k: statistics.median(r[k] for r in failing) for k in ("p50_ms", "p99_ms")}
    bmed = {k: statistics.median(r[k] for r in base) for k in ("p50_ms", "p99_ms")}
    total = {k: sum(r[k] for r in failing) for k in ("queued", "sent", "retried", "duplicated", "lost", "phantom")}
    print(f"medians over {args.runs} runs: failing p50={med['p50_ms']:.0f}ms p99={med['p99_ms']:.0f}ms; "
          f"baseline p50={bmed['p50_ms']:.0f}ms p99={bmed['p99_ms']:.0f}ms; ratio p50 {med['p50_ms'] / bmed['p50_ms']:.2f} "
          f"p99 {med['p99_ms'] / bmed['p99_ms']:.2f}")
    print(f"SUMMARY db={'postgresql' if args.url else 'sqlite'} fail={args.fail:.0%} workers={args.workers} patients={args.patients} runs={args.runs} "
          f"queued={total['queued']} sent={total['sent']} retried={total['retried']} "
          f"duplicated={total['duplicated']} lost={total['lost']} "
          f"sos_to_first_request_p50={med['p50_ms']:.0f}ms p99={med['p99_ms']:.0f}ms "
          f"(baseline p50={bmed['p50_ms']:.0f}ms p99={bmed['p99_ms']:.0f}ms)")


if __name__ == "__main__":
    main()
