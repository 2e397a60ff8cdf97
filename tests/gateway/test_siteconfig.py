"""Site config: fetched with the token, 304 on a matching ETag, cached on disk, used when the backend is away."""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.service import load_config
from tests.gateway.fake_backend import FakeBackend

TOKEN = "gw-cfg-token"
DOC = {"site_id": "s1", "version": 3, "receivers": [{"id": "rx", "lat": 16.5, "lon": 102.1}],
       "bands": [{"address": "c0:ff:ee:00:00:01", "key_hex": "11" * 16, "patient_id": 7}]}


async def test_fetch_etag_cache_and_offline(tmp_path: Path) -> None:
    backend = FakeBackend(TOKEN, config=DOC)
    await backend.start()
    s = GatewaySettings(backend_url=backend.url, token=TOKEN, config_cache=tmp_path / "c.json")
    cfg = await load_config(s)
    assert cfg is not None and cfg.etag == backend.etag and cfg.patient_for("C0:FF:EE:00:00:01") == 7
    assert cfg.key_for("c0:ff:ee:00:00:01") == bytes.fromhex("11" * 16)
    async with httpx.AsyncClient() as client:
        same = await siteconfig.fetch(client, s.config_url, TOKEN, cfg)
        assert same is cfg  # 304 Not Modified
        assert await siteconfig.fetch(client, s.config_url, "wrong", None) is None  # 401
    assert (tmp_path / "c.json").stat().st_mode & 0o077 == 0  # holds band keys: owner only
    await backend.stop()
    offline = await load_config(s)  # backend away: the last copy
    assert offline is not None and offline.version == 3 and offline.etag == cfg.etag
