"""The site configuration (bands, keys, receivers, patients, zones) and how it is fetched.

Fetched from the backend (`GET /api/v1/gateway/config`, ETag) at start, on
`config_changed` and every `config_poll_s` (a safety net for a lost push;
`Gateway.refresh_config`); the last good copy is kept on disk so a gateway that boots
while the backend is away still knows its bands and their keys.
The format is in docs/gateway-protocol.md §2.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Receiver:
    id: str
    lat: float
    lon: float
    p1m_dbm: float = -59.0
    path_loss_n: float = 2.7


@dataclass(frozen=True, slots=True)
class Band:
    address: str
    key: bytes
    patient_id: int | None
    model: str = "chumphae-v1"


@dataclass(frozen=True, slots=True)
class SiteConfig:
    site_id: str
    gateway_id: str
    version: int
    receivers: tuple[Receiver, ...]
    bands: tuple[Band, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)  # patients, zones, routes, extent
    etag: str | None = None
    by_address: dict[str, Band] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.by_address.update({b.address.upper(): b for b in self.bands})

    def key_for(self, address: str) -> bytes | None:
        b = self.by_address.get(address.upper())
        return b.key if b else None

    def patient_for(self, address: str) -> int | None:
        b = self.by_address.get(address.upper())
        return b.patient_id if b else None

    @property
    def zones(self) -> list[dict[str, Any]]:
        return list(self.raw.get("zones") or [])

    @property
    def patients(self) -> list[dict[str, Any]]:
        return list(self.raw.get("patients") or [])

    @property
    def routes(self) -> list[dict[str, Any]]:
        return list(self.raw.get("routes") or [])


def checked(doc: Any) -> dict[str, Any]:
    """`doc` if it is a site config at all: a JSON object with `receivers` and `bands` lists, which the backend
    always sends (§2); else ValueError. One rule for a fetched answer and the cached copy. An answer without them
    (a proxy's or a broken backend's `{}`, `[]`, `null`): faults19: `{}` was applied, the gateway knew no band and
    sent nothing from then on, saying nothing; `[]` raised AttributeError, and at start ended the gateway even
    with a good cached copy on disk. A cache written before faults19 may hold such an answer (debt20)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("receivers"), list) \
            or not isinstance(doc.get("bands"), list):
        raise ValueError(f"not a site config (a JSON object with receivers and bands lists): "
                         f"{type(doc).__name__} with {sorted(doc)[:8] if isinstance(doc, dict) else 'no keys'}")
    return doc


def parse(doc: dict[str, Any], etag: str | None = None) -> SiteConfig:
    """Build a SiteConfig from the JSON document; raises ValueError on a bad one."""
    try:
        receivers = tuple(
            Receiver(
                id=str(r["id"]),
                lat=float(r["lat"]),
                lon=float(r["lon"]),
                p1m_dbm=float(r.get("p1m_dbm", -59.0)),
                path_loss_n=float(r.get("path_loss_n", 2.7)),
            )
            for r in doc.get("receivers") or []
        )
        bands = []
        for b in doc.get("bands") or []:
            key = bytes.fromhex(str(b["key_hex"]))
            if len(key) != 16:
                raise ValueError(f"band {b.get('address')}: key must be 16 bytes")
            pid = b.get("patient_id")
            bands.append(
                Band(str(b["address"]).upper(), key, None if pid is None else int(pid), str(b.get("model", "chumphae-v1")))
            )
        version = int(doc.get("version", 0))  # in here: `null` is a TypeError, refused as the rest (review19gw)
    except (KeyError, TypeError) as e:
        raise ValueError(f"bad site config: {e!r}") from e
    return SiteConfig(
        site_id=str(doc.get("site_id", "")),
        gateway_id=str(doc.get("gateway_id", "")),
        version=version,
        receivers=receivers,
        bands=tuple(bands),
        raw={k: v for k, v in doc.items()},
        etag=etag,
    )


def to_doc(cfg: SiteConfig) -> dict[str, Any]:
    return dict(cfg.raw)


def save_cache(path: Path, cfg: SiteConfig) -> None:
    """Atomic write: a power cut mid-write must not leave half a config. A disk that refuses the write (full,
    failing) is logged and the gateway goes on with the config it holds (faults18: it died at start)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"etag": cfg.etag, "config": to_doc(cfg)}), encoding="utf-8")
        os.chmod(tmp, 0o600)  # holds band keys
        os.replace(tmp, path)
    except OSError as e:
        log.error("config cache %s not written (%s: %s): the gateway goes on with the config it fetched; "
                  "the cache is written at the next change", path, type(e).__name__, e.strerror or e)
        with contextlib.suppress(OSError):
            tmp.unlink()


def load_cache(path: Path) -> SiteConfig | None:
    """The cached config: the file `save_cache` writes (`{"etag", "config"}`), or a site config saved
    as `GET /api/v1/gateway/config` answers it (no ETag then), for a replay written by hand. A config that
    `fetch` would refuse (`checked`) is ignored with a WARNING, as an unreadable file is: the gateway fetches."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "config" not in data and "receivers" in data:
            return parse(checked(data))
        if not isinstance(data, dict) or "config" not in data:
            raise ValueError('neither {"etag": …, "config": {…}} nor a site config (no "receivers")')
        return parse(checked(data["config"]), data.get("etag"))  # as `fetch` would take it (debt20)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # AttributeError: `"config": []`
        log.warning("ignoring unreadable config cache %s: %s: %s", path, type(e).__name__, e)
        return None


async def fetch(
    client: httpx.AsyncClient, url: str, token: str, current: SiteConfig | None, why: list[str] | None = None
) -> SiteConfig | None:
    """The new config, `current` if unchanged (304), or None if the backend could not give one; then, when
    `why` is given, why not is appended to it in words for the one line a gateway without a config stops with
    (`backend unreachable`, `the backend refuses this gateway's token (HTTP 401)`, …; outside29)."""
    headers = {"Authorization": f"Bearer {token}"}
    if current is not None and current.etag:
        headers["If-None-Match"] = current.etag
    try:
        resp = await client.get(url, headers=headers, timeout=10.0)
    except httpx.HTTPError as e:
        log.warning("config fetch failed (%s); keeping last copy", type(e).__name__)
        if why is not None:
            why.append("backend unreachable")
        return None
    if resp.status_code == 304 and current is not None:
        return current
    if resp.status_code != 200:
        log.warning("config fetch: HTTP %s; keeping last copy", resp.status_code)
        if why is not None:
            why.append(f"the backend refuses this gateway's token (HTTP {resp.status_code})"
                       if resp.status_code in (401, 403) else f"the backend answered HTTP {resp.status_code}")
        return None
    try:
        return parse(checked(resp.json()), resp.headers.get("etag"))
    except ValueError as e:
        log.error("config from backend rejected: %s; keeping the config in use", e)
        if why is not None:
            why.append("the backend's answer was not a site config")
        return None
