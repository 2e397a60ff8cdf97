"""Recording adverts: the JSON-lines format of `chumphae-gateway --record FILE` (docs/gateway-protocol.md §6).

Line 1 is a header, then one line per advertisement as the radio (or the
simulator) handed it over, and on a clean stop an end line:

    {"format": "chumphae-adverts", "version": 1, "started": "2026-12-01T05:54:31.000000+00:00", "source": "radio"}
    {"t": "2026-12-01T05:54:31.412000+00:00", "receiver": "rx-rph", "address": "C0:FF:EE:00:00:01", "rssi": -71,
     "manufacturer_data": {"65535": "01a2…"}, "service_data": {}, "local_name": null, "tx_power": null}
    {"end": "2026-12-01T05:56:31.000000+00:00"}

`parse_advert` is the one reader of an advert line (used by the replay);
it raises `BadLine` with the reason. `RecordingSource` wraps any gateway
source and writes every advert it yields, unchanged, before the pipeline sees it.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from chumphae.values import Advert

FORMAT = "chumphae-adverts"
VERSION = 1
BASE_UUID = "-0000-1000-8000-00805f9b34fb"  # Bluetooth base UUID: 16-bit "fcd2" → 0000fcd2-0000-1000-8000-00805f9b34fb

_MAC = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")
_UUID128 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_UUID16 = re.compile(r"^(0x)?[0-9a-f]{4}$")
_HEX = re.compile(r"^([0-9a-fA-F]{2})*$")
MAX_LINE = 16_384  # bytes; an advertisement is at most a few hundred


class BadLine(ValueError):
    """One line of a recording that cannot be read; the message says why (no data from the line)."""


class Source(Protocol):
    def clock(self) -> float: ...

    def wall(self) -> datetime: ...

    def __aiter__(self) -> AsyncIterator[Advert | None]: ...


def header(started: datetime, source: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": VERSION, "started": started.astimezone(UTC).isoformat(), "source": source}


def advert_line(a: Advert) -> dict[str, Any]:
    return {
        "t": a.t.astimezone(UTC).isoformat(),
        "receiver": a.receiver,
        "address": a.address,
        "rssi": a.rssi,
        "manufacturer_data": {str(k): bytes(v).hex() for k, v in sorted(a.manufacturer_data.items())},
        "service_data": {k: bytes(v).hex() for k, v in sorted(a.service_data.items())},
        "local_name": a.local_name,
        "tx_power": a.tx_power,
    }


def parse_time(v: Any, what: str = "t") -> datetime:
    if not isinstance(v, str):
        raise BadLine(f"{what} must be an ISO 8601 string")
    try:
        t = datetime.fromisoformat(v)
    except ValueError:
        raise BadLine(f"{what} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise BadLine(f"{what} has no UTC offset (write Z or +00:00)")
    return t.astimezone(UTC)


def parse_header(obj: Any) -> datetime | None:
    """Check a header object; its `started` time (or None). Raises BadLine."""
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BadLine(f'not a recording: the first line must be {{"format": "{FORMAT}", "version": {VERSION}, …}}')
    if obj.get("version") != VERSION:
        raise BadLine(f"format version {obj.get('version')!r} is not supported (this gateway reads {VERSION})")
    return parse_time(obj["started"], "started") if obj.get("started") is not None else None


def _company(k: str) -> int:
    try:
        n = int(k, 16) if k.lower().startswith("0x") else int(k)
    except ValueError:
        raise BadLine(f"manufacturer_data key {k[:20]!r} is not a company id (decimal or 0x hex)") from None
    if not 0 <= n <= 0xFFFF:
        raise BadLine(f"manufacturer_data key {n} is not a 16-bit company id")
    return n


def _uuid(k: str) -> str:
    u = k.lower()
    if _UUID128.match(u):
        return u
    if _UUID16.match(u):
        return "0000" + u[-4:] + BASE_UUID
    raise BadLine(f"service_data key {k[:40]!r} is not a UUID (16-bit like fcd2 or 128-bit)")


def _hex(v: Any, where: str) -> bytes:
    if not isinstance(v, str) or not _HEX.match(v) or len(v) > 2 * 255:
        raise BadLine(f"{where} must be an even number (≤ 510) of hex digits")
    return bytes.fromhex(v)


def parse_advert(obj: Any, monotonic: float = 0.0) -> Advert:
    """One advert line (already JSON-decoded) → Advert. Raises BadLine."""
    if not isinstance(obj, dict):
        raise BadLine("a line must be a JSON object")
    t = parse_time(obj.get("t"))
    receiver, address, rssi = obj.get("receiver"), obj.get("address"), obj.get("rssi")
    if not isinstance(receiver, str) or not 0 < len(receiver) <= 64:
        raise BadLine("receiver must be a non-empty string (≤ 64 characters)")
    if not isinstance(address, str) or not _MAC.match(address.upper()):
        raise BadLine("address must be a Bluetooth address AA:BB:CC:DD:EE:FF")
    if isinstance(rssi, bool) or not isinstance(rssi, int) or not -127 <= rssi <= 20:
        raise BadLine("rssi must be an integer from -127 to 20 (dBm)")
    mfr, svc = obj.get("manufacturer_data") or {}, obj.get("service_data") or {}
    if not isinstance(mfr, dict) or not isinstance(svc, dict):
        raise BadLine("manufacturer_data and service_data must be objects")
    name, tx = obj.get("local_name"), obj.get("tx_power")
    if name is not None and (not isinstance(name, str) or len(name) > 248):
        raise BadLine("local_name must be a string (≤ 248 characters) or null")
    if tx is not None and (isinstance(tx, bool) or not isinstance(tx, int) or not -127 <= tx <= 20):
        raise BadLine("tx_power must be an integer from -127 to 20 or null")
    return Advert(
        address=address.upper(),
        rssi=rssi,
        receiver=receiver,
        t=t,
        monotonic=monotonic,
        manufacturer_data={_company(str(k)): _hex(v, f"manufacturer_data[{k}]") for k, v in mfr.items()},
        service_data={_uuid(str(k)): _hex(v, "service_data value") for k, v in svc.items()},
        local_name=name,
        tx_power=tx,
    )


class RecordingSource:
    """Any gateway source, with every advert it yields written to `path` first (JSON lines).

    The file is created at construction (an existing file is refused: field recordings are not
    overwritten by accident), flushed at least once a second, and closed by `close()`
    with the end line. Iterating again (the pipeline task restarted) appends to the same file."""

    def __init__(self, inner: Source, path: Path, *, kind: str) -> None:
        self.inner = inner
        self.path = path
        self.adverts = 0
        try:
            self._file: IO[str] | None = path.open("x", encoding="utf-8")
        except FileExistsError:
            raise ValueError(f"--record {path}: the file exists; choose a new name") from None
        self._write(header(inner.wall(), kind))
        self._file.flush()
        self._flushed = time.monotonic()

    def clock(self) -> float:
        return self.inner.clock()

    def wall(self) -> datetime:
        return self.inner.wall()

    def _write(self, obj: dict[str, Any]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")

    async def __aiter__(self) -> AsyncIterator[Advert | None]:
        async with contextlib.aclosing(aiter(self.inner)) as adverts:  # type: ignore[type-var]
            async for a in adverts:
                if a is not None:
                    self._write(advert_line(a))
                    self.adverts += 1
                if self._file is not None and time.monotonic() - self._flushed >= 1.0:
                    self._file.flush()
                    self._flushed = time.monotonic()
                yield a

    def close(self) -> None:
        if self._file is not None:
            self._write({"end": self.inner.wall().astimezone(UTC).isoformat()})
            self._file.close()
            self._file = None
