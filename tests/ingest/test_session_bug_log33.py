"""A bug in a gateway session's own code (neither one message nor the database) closes the socket with 1011 and
says where it failed, never the exception's text: that may quote a message (a position, a CID; PDPA). The line
used to be `log.exception`, whose traceback ends with the exception's text."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chumphae.ingest import connection
from tests.feed.liveserver import LiveServer, recv_json
from tests.ingest.conftest import Site
from tests.ingest.test_gateway_socket import frame, position, url
from tests.ingest.test_poison import NOW

QUOTED = "lat 16.54471 cid 3100912345678"


async def test_a_session_bug_closes_1011_and_logs_where_not_what(
        server: LiveServer, site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    async def broken(self: Any, queue: Any, priority: int) -> None:
        await queue.get()
        raise RuntimeError(f"session bug on {QUOTED}")

    monkeypatch.setattr(connection._Session, "process", broken)
    with caplog.at_level(logging.WARNING, logger="chumphae"):
        async with connect(url(server), additional_headers=site.auth()) as ws:
            assert (await recv_json(ws))["type"] == "welcome"
            await ws.send(frame("position", position(NOW))[1])
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await recv_json(ws, 15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    assert QUOTED not in caplog.text  # nor in any traceback formatted with it
    said = [r for r in caplog.records if "storing failed" in r.getMessage()]
    assert len(said) == 1 and "RuntimeError" in said[0].getMessage() and "in broken" in said[0].getMessage()
