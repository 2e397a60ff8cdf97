"""docs/gateway-protocol.md §6 (advert recordings) as printed: another tool writes what the section shows,
and `chumphae-gateway --replay`'s reader takes it, down to the band frame inside."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from gateway.decode.chumphae_band import decode_frame
from gateway.record import parse_advert, parse_header
from gateway.replay import ReplaySource

DOCS = Path(__file__).resolve().parents[2] / "docs"


def section_examples() -> list[dict[str, object]]:
    text = (DOCS / "gateway-protocol.md").read_text(encoding="utf-8")
    section = text[text.index("## 6. Advert recordings"):]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, flags=re.S)]


def golden() -> tuple[str, bytes, bytes]:
    text = (DOCS / "band-frame.md").read_text(encoding="utf-8")
    vector = text[text.index("## Golden vector"):]
    address = re.search(r"Address `([0-9A-F:]{17})`", vector)
    key = re.search(r"key `([0-9a-f]{32})`", vector)
    payload = re.search(r"payload\s+([0-9a-f ]+)\n", vector)
    assert address and key and payload
    return address.group(1), bytes.fromhex(key.group(1)), bytes.fromhex(payload.group(1).replace(" ", ""))


def test_the_sections_header_advert_and_end_lines_are_read_as_printed(tmp_path: Path) -> None:
    header, advert, end = section_examples()
    assert parse_header(header) is not None
    a = parse_advert(advert)
    address, key, payload = golden()
    assert a.address == address and a.manufacturer_data == {0xFFFF: payload}
    state = decode_frame(a.address, key, a.manufacturer_data[0xFFFF])  # the frame inside verifies under the key
    assert state.sos and state.worn and state.battery_pct == 64

    rec = tmp_path / "field.jsonl"  # one JSON object per line, as a file holds them
    rec.write_text("".join(json.dumps(o) + "\r\n" for o in (header, advert, end)), encoding="utf-8")
    src = ReplaySource(rec, speed=0)

    async def drain() -> int:
        ticks = 0
        async for item in src:
            ticks += item is None
        return ticks

    ticks = asyncio.run(drain())
    assert (src.adverts, src.bad_lines) == (1, 0)
    assert ticks >= 120  # the end line keeps the clock going: 05:54:31 → 05:56:31


def test_replay_without_a_backend_reports_bad_lines_by_number_in_bangkok_time(tmp_path: Path) -> None:
    """As the section says: a saved §2 document as the config cache, no GATEWAY_TOKEN; a bad line is logged
    as `FILE:LINE: reason; line skipped` and counted. Log times carry their zone, as the backend's do."""
    import os
    import subprocess
    import sys

    header, advert, end = section_examples()
    rec = tmp_path / "field.jsonl"
    rec.write_text("\n".join([json.dumps(header), json.dumps(advert), "{not json", json.dumps(end)]) + "\n",
                   encoding="utf-8")
    config = tmp_path / "saved-config.json"  # the answer of GET /api/v1/gateway/config, saved as is
    config.write_text(json.dumps({"site_id": "s", "gateway_id": "g", "version": 1, "extent": None,
                                  "receivers": [{"id": "rx-rph", "lat": 16.5442, "lon": 102.0997}],
                                  "bands": [], "patients": [], "zones": [], "routes": []}), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= {"GATEWAY_CONFIG_CACHE": str(config), "GATEWAY_QUEUE_PATH": str(tmp_path / "outbox.sqlite3")}
    r = subprocess.run([sys.executable, "-m", "gateway.cli", "--replay", str(rec), "--speed", "0"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    bad = [ln for ln in r.stderr.splitlines() if f"{rec}:3: not JSON; line skipped" in ln]
    assert len(bad) == 1, r.stderr[-2000:]
    assert re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+07:00 ERROR ", bad[0]), bad[0]
    assert "bad lines skipped 1" in r.stdout + r.stderr
