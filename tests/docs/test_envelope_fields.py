"""docs/gateway-protocol.md §3.1, from a gateway written by an outsider: the envelope's `t` and `seq` are
informative. docs11's run sent frames without them and had them stored, where the table promised nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

from websockets.asyncio.client import connect

from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import Site, server, site  # noqa: F401  (the fixtures)
from tests.ingest.test_gateway_socket import position, url

DOC = " ".join((Path(__file__).resolve().parents[2] / "docs" / "gateway-protocol.md").read_text(
    encoding="utf-8").split())


async def test_envelope_t_and_seq_are_informative(server: LiveServer, site: Site) -> None:  # noqa: F811
    assert "a missing `t` (or one that is not a string) is ignored" in DOC
    assert "`seq` | optional" in DOC
    now = datetime.now(UTC)
    frames = {
        "no t": {"type": "position", "seq": 1, "body": position(now)},
        "no seq": {"type": "position", "t": now.isoformat(), "body": position(now)},
        "seq -1": {"type": "position", "t": now.isoformat(), "seq": -1, "body": position(now)},
        "t not a time": {"type": "position", "t": "yesterday", "seq": 2, "body": position(now)},
    }
    ids = {name: str(uuid.uuid4()) for name in frames}
    async with connect(url(server), additional_headers=site.auth()) as ws:
        await recv_json(ws)
        for name, f in frames.items():
            await ws.send(json.dumps({"id": ids[name], **f}))
        answers: dict[str, str] = {}
        while len(answers) < len(frames):
            f = await recv_json(ws)
            if f["type"] == "ack":
                answers |= dict.fromkeys(f["ids"], "ack")
            elif f["type"] == "error":
                answers[f["id"]] = f["code"]
    assert {name: answers[mid] for name, mid in ids.items()} == {
        "no t": "ack", "no seq": "ack", "seq -1": "ack", "t not a time": "bad_envelope"}
