"""debt20: a cached site config that `fetch` would refuse is refused at load too (one rule, `siteconfig.checked`).

faults19 made `fetch` refuse an answer that is not a site config (`{}`, no `receivers` / `bands` lists), but a
gateway upgraded from before it may have cached such an answer: `load_cache` still took it at start, and with
the backend away (or answering 304 to its ETag) the gateway ran knowing no band, sending nothing, saying
nothing. Now the cache is ignored with a WARNING and the gateway fetches, as it does with no cache."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from gateway import siteconfig
from gateway.config import GatewaySettings
from gateway.service import load_config
from tests.gateway.conftest import free_port
from tests.gateway.fake_backend import FakeBackend
from tests.gateway.test_siteconfig import DOC, TOKEN

JUNK: list[Any] = [
    {"etag": None, "config": {}},  # a proxy's `{}`, cached before faults19
    {"etag": '"0123456789abcdef"', "config": {"site_id": "s1", "version": 3}},  # no receivers, no bands
    {"etag": None, "config": {"site_id": "s1", "receivers": [], "bands": "none"}},
    {"site_id": "s1", "receivers": [{"id": "rx", "lat": 16.5, "lon": 102.1}]},  # a saved answer without bands
]


@pytest.mark.parametrize("cached", JUNK, ids=["empty", "no-lists", "bands-not-a-list", "saved-without-bands"])
async def test_a_cached_config_fetch_would_refuse_is_ignored_at_start_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, cached: Any) -> None:
    cache = tmp_path / "c.json"
    cache.write_text(json.dumps(cached), encoding="utf-8")
    away = GatewaySettings(backend_url=f"http://127.0.0.1:{free_port()}", token=TOKEN, config_cache=cache)
    with caplog.at_level(logging.WARNING, logger="gateway.siteconfig"):
        assert siteconfig.load_cache(cache) is None  # was: a SiteConfig with no receivers and no bands
        assert await load_config(away) is None  # the backend away: no config (was: the junk, run with no band)
    said = [r for r in caplog.records if "config cache" in r.getMessage()]
    assert said and all(r.levelno == logging.WARNING for r in said)
    assert "not a site config" in said[0].getMessage()

    backend = FakeBackend(TOKEN, config=DOC)
    await backend.start()
    try:
        if isinstance(cached.get("config"), dict):
            cached["etag"] = backend.etag  # even an ETag the backend would answer 304 to is not sent
            cache.write_text(json.dumps(cached), encoding="utf-8")
        s = GatewaySettings(backend_url=backend.url, token=TOKEN, config_cache=cache)
        cfg = await load_config(s)
        assert cfg is not None and cfg.patient_for("C0:FF:EE:00:00:01") == 7 and len(cfg.receivers) == 1
        assert backend.config_requests == [(None, 200)]  # fetched whole
    finally:
        await backend.stop()
    reloaded = siteconfig.load_cache(cache)  # the good answer cached in its place
    assert reloaded is not None and reloaded.version == 3 and len(reloaded.bands) == 1


def test_a_cached_site_with_empty_lists_is_still_a_site_config(tmp_path: Path) -> None:
    """The rule is fetch's: a site with no receivers or bands yet (empty lists) is a site config."""
    cache = tmp_path / "c.json"
    cache.write_text(json.dumps({"etag": '"e"', "config": {"site_id": "s1", "receivers": [], "bands": []}}),
                     encoding="utf-8")
    cfg = siteconfig.load_cache(cache)
    assert cfg is not None and cfg.site_id == "s1" and cfg.etag == '"e"'
