"""The 10-minute safety-net config poll, against a real HTTP server on 127.0.0.1 with a short interval:
If-None-Match / 304 while unchanged, a change picked up with no `config_changed`, the config in use kept
while the backend is away, and picked up again when it is back."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from chumphae.timeutil import utcnow
from chumphae.values import Advert
from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.service import Gateway, load_config
from tests.gateway.fake_backend import FakeBackend, wait_for

TOKEN = "gw-poll-token"
A1, A2 = "C0:FF:EE:00:00:01", "C0:FF:EE:00:00:02"


def doc(version: int, *addresses: str) -> dict[str, Any]:
    return {"site_id": "s1", "gateway_id": "gw1", "version": version,
            "receivers": [{"id": "rx-a", "lat": 16.5442, "lon": 102.0997}],
            "bands": [{"address": a, "key_hex": f"{i + 1:02x}" * 16, "patient_id": i + 1}
                      for i, a in enumerate(addresses)],
            "patients": [{"id": i + 1} for i in range(len(addresses))]}


class Idle:
    """A source that hears nothing until the gateway stops."""

    def clock(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> datetime:
        return utcnow()

    async def __aiter__(self) -> AsyncIterator[Advert | None]:
        while True:
            await asyncio.sleep(0.05)
            yield None


async def test_poll_refetches_with_etag_and_keeps_the_last_good_copy(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN, config=doc(1, A1))
    await backend.start()
    s = GatewaySettings(backend_url=backend.url, token=TOKEN, config_poll_s=0.1,
                        config_cache=tmp_path / "c.json", queue_path=tmp_path / "q.sqlite3")
    cfg = await load_config(s)
    assert cfg is not None and cfg.version == 1
    gw = Gateway(s, cfg, Idle(), uplink=False)  # no socket, so no config_changed: only the poll
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop))
    try:
        # unchanged: asked with the ETag in use, answered 304, nothing rebuilt
        await wait_for(lambda: len(backend.config_requests) >= 4, timeout=10)
        assert all(r == (cfg.etag, 304) for r in backend.config_requests[1:])
        assert gw.config is cfg

        # changed on the backend: picked up by the poll, steps rebuilt, cache written
        backend.config = doc(2, A1, A2)
        await wait_for(lambda: gw.config.version == 2, timeout=10)
        assert gw.config.etag == backend.etag and gw.pipeline.config is gw.config
        assert gw.config.patient_for(A2) == 2
        cached = siteconfig.load_cache(s.config_cache)
        assert cached is not None and cached.version == 2

        # backend away for several polls: the config in use stays, the gateway runs on
        await backend.stop()
        seen = len(backend.config_requests)
        await asyncio.sleep(0.6)
        assert len(backend.config_requests) == seen and not task.done()
        assert gw.config.version == 2 and gw.config.patient_for(A2) == 2

        # back (same port) with a newer config: picked up again
        backend.config = doc(3, A2)
        await backend.start()
        await wait_for(lambda: gw.config.version == 3, timeout=10)
        assert gw.config.patient_for(A1) is None
    finally:
        stop.set()
        await task
        await backend.stop()


def test_the_cache_takes_its_own_file_or_a_saved_config_and_names_what_is_wrong_with_others(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cache.json"
    cfg = siteconfig.parse(doc(2, A1), '"e2"')
    siteconfig.save_cache(path, cfg)
    back = siteconfig.load_cache(path)
    assert back is not None and back.version == 2 and back.etag == '"e2"' and back.patient_for(A1) == 1
    path.write_text(json.dumps(doc(3, A1, A2)), encoding="utf-8")  # GET /api/v1/gateway/config, saved
    plain = siteconfig.load_cache(path)
    assert plain is not None and plain.version == 3 and plain.etag is None and plain.patient_for(A2) == 2
    path.write_text(json.dumps({"etag": None}), encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        assert siteconfig.load_cache(path) is None
    assert 'no "receivers"' in caplog.text
