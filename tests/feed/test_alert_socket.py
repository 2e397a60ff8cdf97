"""`chumphae serve --alert-port P` on the real PostgreSQL: a gateway's alert socket is served by a process of its
own; an SOS sent there reaches a caregiver's feed socket held by the other process once and in order, also when
the gateway sends the same SOS on its main socket as well (docs/gateway-protocol.md §3.3)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, func, select
from websockets.asyncio.client import ClientConnection, connect

from chumphae.auth.service import assign, create_gateway
from chumphae.models import Alert, IngestedMessage
from tests.conftest import World
from tests.factories import make_band, make_patient
from tests.feed.liveserver import serve_process
from tests.feed.test_fanout import pg_world, schema_url  # noqa: F401  (fixture)

PATIENTS = 3


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def lanes(pg_world: World, tmp_path: Path) -> Iterator[tuple[str, int]]:  # noqa: F811
    """The backend with an alert port: (main base URL, alert port)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")}
    env.update(CHUMPHAE_DATABASE_URL=schema_url(pg_world.engine), CHUMPHAE_DATA_DIR=str(tmp_path / "w"),
               CHUMPHAE_LOG_LEVEL="WARNING")
    alert_port = _port()
    with serve_process(["--alert-port", str(alert_port)], env) as base:
        for _ in range(300):  # the alert processes start beside the main one
            try:
                if httpx.get(f"http://127.0.0.1:{alert_port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            asyncio.run(asyncio.sleep(0.2))
        yield base, alert_port


def _site(world: World) -> tuple[str, list[tuple[str, int]]]:
    with Session(world.engine, expire_on_commit=False) as s:
        _, token = create_gateway(s, slug="gw-lane", name="gw lane", site="lane", lat=16.54, lon=102.1,
                                  receivers=[{"id": "rx-lane", "lat": 16.54, "lon": 102.1}])
        bands = []
        for k in range(PATIENTS):
            patient = make_patient(s, name_th=f"ผู้ป่วย {k}", cid=None, pid=f"8{k:05d}")
            address = f"C0:FF:EE:00:02:{k:02X}"
            make_band(s, patient_id=patient.id, address=address, site="lane")
            assign(s, user_id=world.users["caregiver"], patient_id=patient.id)  # type: ignore[arg-type]
            bands.append((address, patient.id))
        s.commit()
    return token, bands  # type: ignore[return-value]


def _sos(address: str, patient_id: int, t: datetime) -> tuple[str, str]:
    mid = str(uuid.uuid4())
    return mid, json.dumps({"id": mid, "type": "alert", "t": t.isoformat(), "seq": 1, "body": {
        "type": "sos", "severity": "critical", "address": address, "patient_id": patient_id, "t": t.isoformat(),
        "confidence": 1.0, "lat": 16.54, "lon": 102.1, "uncertainty_m": 15.0, "match": None, "details": {}}})


async def _acked(ws: ClientConnection, ids: list[str]) -> None:
    """Until every one of `ids` is acked on `ws` (acks may carry several ids)."""
    waiting = set(ids)
    while waiting:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert frame["type"] in ("ack", "config_changed"), frame
        if frame["type"] == "ack":
            waiting -= set(frame["ids"])


@pytest.mark.postgres
@pytest.mark.slow
async def test_an_sos_on_the_alert_socket_reaches_a_feed_on_the_other_process_once_and_in_order(
        pg_world: World, lanes: tuple[str, int]) -> None:  # noqa: F811
    base, alert_port = lanes
    token, bands = _site(pg_world)
    ws_base = base.replace("http://", "ws://")
    headers = {"Authorization": f"Bearer {token}"}
    async with (connect(f"{ws_base}/ws/alerts",
                        additional_headers={"Authorization": f"Bearer {pg_world.tokens['caregiver']}"}) as feed,
                connect(f"{ws_base}/api/v1/gateway/ws", additional_headers=headers) as main):
        while (frame := json.loads(await asyncio.wait_for(feed.recv(), 30)))["type"] != "snapshot":
            pass
        welcome = json.loads(await asyncio.wait_for(main.recv(), 30))
        assert welcome["type"] == "welcome"
        assert welcome["alert_socket"] == {"port": alert_port, "path": "/api/v1/gateway/alerts"}
        where = welcome["alert_socket"]
        async with connect(f"ws://127.0.0.1:{where['port']}{where['path']}", additional_headers=headers) as lane:
            assert json.loads(await asyncio.wait_for(lane.recv(), 30))["type"] == "welcome"
            t0 = datetime.now(UTC) - timedelta(seconds=30)
            # two SOSes a band, the bands interleaved; each on the alert socket, then on the main socket (as a
            # gateway sends them: both sockets carry its alerts in the same order, §3.3)
            sent = [_sos(*bands[k % PATIENTS], t0 + timedelta(seconds=k)) for k in range(2 * PATIENTS)]
            for _, text in sent:
                await lane.send(text)
                await main.send(text)
            await _acked(lane, [mid for mid, _ in sent])
            await _acked(main, [mid for mid, _ in sent])  # a duplicate is acked too
            # the alert socket did not replace the main one (4008): it still takes and acks messages
            hb = str(uuid.uuid4())
            await main.send(json.dumps({"id": hb, "type": "heartbeat", "t": datetime.now(UTC).isoformat(),
                                        "body": {"uptime_s": 1.0}}))
            await _acked(main, [hb])

        seen: list[dict[str, Any]] = []
        last = frame["cursor"]
        try:
            async with asyncio.timeout(30):
                while len(seen) < len(sent):
                    f = json.loads(await feed.recv())
                    if f["type"] == "alert" and f["alert"]["type"] == "sos":
                        assert f["cursor"] > last, "in cursor order"
                        last = f["cursor"]
                        seen.append(f)
            async with asyncio.timeout(2.5):  # nothing more comes (no SOS twice)
                while True:
                    f = json.loads(await feed.recv())
                    assert not (f["type"] == "alert" and f["alert"]["type"] == "sos"), f
        except TimeoutError:
            pass
    # each SOS once, and each band's in the order sent (bands between them: as their commits fell)
    for address, pid in bands:
        want = [json.loads(text)["body"]["t"] for _, text in sent if json.loads(text)["body"]["address"] == address]
        got = [f["alert"]["last_triggered_at"] for f in seen if f["alert"]["patient_id"] == pid]
        assert [datetime.fromisoformat(x) for x in got] == [datetime.fromisoformat(x) for x in want]
    with Session(pg_world.engine) as s:
        assert s.exec(select(func.count()).select_from(Alert).where(Alert.type == "sos")).one() == PATIENTS
        assert s.exec(select(func.count()).select_from(IngestedMessage)
                      .where(col(IngestedMessage.msg_id).in_([m for m, _ in sent]))).one() == len(sent)


@pytest.mark.postgres
@pytest.mark.slow
async def test_the_uplink_opens_the_alert_socket_the_real_welcome_names(
        pg_world: World, lanes: tuple[str, int], tmp_path: Path) -> None:  # noqa: F811
    """The shipped uplink against `chumphae serve --alert-port`: it finds the alert socket from the welcome, and
    its SOS is stored once and acked (on the alert socket or the main one, whichever first)."""
    from gateway.queue import Outbox
    from gateway.uplink import Uplink

    base, _ = lanes
    token, bands = _site(pg_world)
    ob = Outbox(tmp_path / "o.db")
    up = Uplink(base.replace("http://", "ws://") + "/api/v1/gateway/ws", token, ob, heartbeat_s=60)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    try:
        async with asyncio.timeout(30):
            while not up.stats.alert_connected:
                await asyncio.sleep(0.05)
        address, pid = bands[0]
        t = datetime.now(UTC)
        ob.put("alert", {"type": "sos", "severity": "critical", "address": address, "patient_id": pid,
                         "t": t.isoformat(), "confidence": 1.0, "lat": 16.54, "lon": 102.1, "uncertainty_m": 15.0,
                         "match": None, "details": {}})
        up.notify()
        async with asyncio.timeout(30):
            while ob.depth()[0]:
                await asyncio.sleep(0.05)
        assert up.stats.alert_sent == 1
    finally:
        stop.set()
        await task
        ob.close()
    with Session(pg_world.engine) as s:
        assert s.exec(select(func.count()).select_from(Alert).where(Alert.type == "sos")).one() == 1


@pytest.mark.postgres
@pytest.mark.slow
def test_a_killed_serve_takes_its_alert_processes_with_it(pg_world: World, tmp_path: Path) -> None:  # noqa: F811
    """SIGKILL leaves `serve` no `finally`: the alert processes learn of it from the kernel (PR_SET_PDEATHSIG)
    and stop, so a restarted backend finds its alert port free."""
    import signal
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")}
    env.update(CHUMPHAE_DATABASE_URL=schema_url(pg_world.engine), CHUMPHAE_DATA_DIR=str(tmp_path / "k"),
               CHUMPHAE_LOG_LEVEL="WARNING")
    port, alert_port = _port(), _port()
    exe = Path(sys.executable).parent / "chumphae"
    proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port),
                             "--alert-port", str(alert_port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def answers() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{alert_port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        deadline = time.monotonic() + 90
        while not answers():
            assert proc.poll() is None and time.monotonic() < deadline, "the alert port never answered"
            time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)  # the parent only: its alert process is not told by `serve`
        proc.wait(10)
        deadline = time.monotonic() + 45
        while answers():
            assert time.monotonic() < deadline, "the alert process outlived its killed serve"
            time.sleep(0.3)
        with socket.socket() as s:  # and the port is free again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", alert_port))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
