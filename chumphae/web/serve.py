"""Serve the caregiver page: `/` is the page, `/assets/...` its bundle; a clear page if it was not built.

Also the files that make it installable and resilient: `/manifest.webmanifest`, the icons, and
`/sw.js`, the service worker that keeps the page's shell for a flaky village connection (it
never caches the API or the feed).

The bundle is built from `web/` by `scripts/demo` / `scripts/test` (`ensure_web` in
`scripts/_env.sh`) into `chumphae/web/dist/`. Nothing here reaches the internet:
the page carries its own libraries and draws the tax map itself.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

DIST = Path(__file__).resolve().parent / "dist"

router = APIRouter()

# What the page's own files may do: only this origin (the feed's WebSocket included), no CDN, no tiles.
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
       "connect-src 'self' ws: wss:; script-src 'self'; worker-src 'self'; manifest-src 'self'; "
       "media-src 'self' data: blob:; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")

NOT_BUILT = """<!doctype html>
<html lang="th"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Smart Chumphae: หน้าเว็บยังไม่ได้สร้าง / page not built</title>
<style>body{font:20px/1.5 system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}
code{background:#eee;padding:.1em .3em}</style></head>
<body>
<h1>หน้าเว็บผู้ดูแลยังไม่ได้สร้าง</h1>
<p>ระบบหลังบ้านทำงานอยู่ แต่ยังไม่ได้สร้างหน้าเว็บสำหรับผู้ดูแล
ให้รัน <code>scripts/demo</code> หรือ <code>scripts/test</code> ซึ่งจะสร้างให้อัตโนมัติ
หรือสร้างเองด้วย <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code></p>
<h1 lang="en">The caregiver page has not been built</h1>
<p lang="en">The backend is running, but the caregiver page bundle is missing
(<code>chumphae/web/dist/index.html</code>). Run <code>scripts/demo</code> or
<code>scripts/test</code>, which build it, or build it yourself with
<code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>.</p>
</body></html>
"""


def dist_dir() -> Path:
    return DIST


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index() -> Response:
    """The page itself (never cached, so a new build is picked up at the next load)."""
    page = dist_dir() / "index.html"
    if not page.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
    return FileResponse(page, media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP})


# Files at the page's root (from web/public): name → (media type, Cache-Control).
ROOT_FILES: dict[str, tuple[str, str]] = {
    # The service worker must be re-checked on every load (so a new build replaces it) and may
    # control the whole origin (it sits at the root).
    "sw.js": ("text/javascript; charset=utf-8", "no-cache"),
    "manifest.webmanifest": ("application/manifest+json; charset=utf-8", "no-cache"),
    "icon.svg": ("image/svg+xml", "public, max-age=86400"),
    "icon-192.png": ("image/png", "public, max-age=86400"),
    "icon-512.png": ("image/png", "public, max-age=86400"),
}


def _root_file(name: str) -> Response:
    path = dist_dir() / name
    if not path.is_file():
        return Response(status_code=404)
    media_type, cache = ROOT_FILES[name]
    headers = {"Cache-Control": cache}
    if name == "sw.js":
        headers["Service-Worker-Allowed"] = "/"
        headers["Content-Security-Policy"] = CSP
    return FileResponse(path, media_type=media_type, headers=headers)


@router.get("/sw.js", include_in_schema=False)
def service_worker() -> Response:
    return _root_file("sw.js")


@router.get("/manifest.webmanifest", include_in_schema=False)
def manifest() -> Response:
    return _root_file("manifest.webmanifest")


@router.get("/icon.svg", include_in_schema=False)
def icon_svg() -> Response:
    return _root_file("icon.svg")


@router.get("/icon-192.png", include_in_schema=False)
def icon_192() -> Response:
    return _root_file("icon-192.png")


@router.get("/icon-512.png", include_in_schema=False)
def icon_512() -> Response:
    return _root_file("icon-512.png")


@router.get("/assets/{name:path}", include_in_schema=False)
def asset(name: str) -> Response:
    """A file of the bundle. Names carry a content hash, so they may be cached for good."""
    root = (dist_dir() / "assets").resolve()
    try:
        path = (root / name).resolve()
        found = path.is_relative_to(root) and path.is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long for the file system
        found = False
    if not found:
        return Response(status_code=404)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type == "application/javascript":
        media_type += "; charset=utf-8"
    return FileResponse(path, media_type=media_type,
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})
