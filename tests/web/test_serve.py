"""Serving the caregiver page: the built bundle, its assets, and a clear page when it was not built."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from chumphae.web import serve


@pytest.fixture
def dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "dist"
    monkeypatch.setattr(serve, "DIST", root)
    return root


def test_not_built_says_so_in_thai_and_english(client: TestClient, dist: Path) -> None:
    r = client.get("/")
    assert r.status_code == 503
    assert "ยังไม่ได้สร้าง" in r.text and "has not been built" in r.text and "npm run build" in r.text


def test_index_and_hashed_assets(client: TestClient, dist: Path) -> None:
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>page</title>", encoding="utf-8")
    (dist / "assets" / "index-abc123.js").write_text("console.log(1)", encoding="utf-8")
    r = client.get("/")
    assert r.status_code == 200 and "<title>page</title>" in r.text
    assert "no-cache" in r.headers["cache-control"]
    assert "default-src 'self'" in r.headers["content-security-policy"]  # no CDN, no tiles
    a = client.get("/assets/index-abc123.js")
    assert a.status_code == 200 and a.headers["content-type"].startswith("text/javascript")
    assert "immutable" in a.headers["cache-control"]
    assert client.get("/assets/missing.js").status_code == 404


def test_assets_never_leave_the_bundle(client: TestClient, dist: Path) -> None:
    (dist / "assets").mkdir(parents=True)
    (dist / "secret.txt").write_text("not an asset", encoding="utf-8")
    for path in ("/assets/../secret.txt", "/assets/%2e%2e/secret.txt", "/assets/..%2fsecret.txt"):
        r = client.get(path)
        assert r.status_code == 404 or "not an asset" not in r.text, path


def test_every_path_the_page_calls_is_served(client: TestClient) -> None:
    """web/src/api.ts PATHS name only routes the app has (the page reads the mobile API, no routes of its own)."""
    import re

    src = (Path(__file__).resolve().parents[2] / "web" / "src" / "api.ts").read_text(encoding="utf-8")
    block = src[src.index("export const PATHS"):src.index("};", src.index("export const PATHS"))]
    paths = {re.sub(r"\$\{\w+\}", "{}", p) for p in re.findall(r'["`](/[^"`]*)["`]', block)}
    assert paths, "no paths found in PATHS"
    served = {re.sub(r"\{[^}]+\}", "{}", p) for p in client.app.openapi()["paths"]}  # type: ignore[attr-defined]
    http = {p for p in paths if not p.startswith("/ws/")}  # the feed socket: tests/feed/
    assert http <= served, sorted(http - served)
    assert not any(p.startswith("/web/api/") for p in served), "the page's old data routes are gone"


def test_installable_files(client: TestClient, dist: Path) -> None:
    """The manifest, icons and the service worker are served from the root with headers that keep them fresh."""
    dist.mkdir(parents=True)
    (dist / "sw.js").write_text("self.addEventListener('fetch', () => {})", encoding="utf-8")
    (dist / "manifest.webmanifest").write_text('{"name": "Smart Chumphae"}', encoding="utf-8")
    (dist / "icon-192.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    assert sw.headers["cache-control"] == "no-cache"  # a new build's worker replaces the old one
    assert sw.headers["service-worker-allowed"] == "/"
    m = client.get("/manifest.webmanifest")
    assert m.status_code == 200 and m.headers["content-type"].startswith("application/manifest+json")
    assert client.get("/icon-192.png").headers["content-type"] == "image/png"
    assert client.get("/icon-512.png").status_code == 404  # not in this bundle


def test_built_bundle_is_installable() -> None:
    """The real build (web/public → dist) carries a manifest naming icons that exist, and the worker."""
    import json

    public = Path(__file__).resolve().parents[2] / "web" / "public"
    manifest = json.loads((public / "manifest.webmanifest").read_text(encoding="utf-8"))
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        assert (public / icon["src"].lstrip("/")).is_file(), icon
        assert icon["src"].lstrip("/") in serve.ROOT_FILES
    sw = (public / "sw.js").read_text(encoding="utf-8")
    assert '"/api/"' in sw and '"/ws/"' in sw, "the worker must leave the API and the feed alone"
