"""fix19 (faults18's notes): the gateway sockets while PostgreSQL is away, through a loopback TCP proxy we cut.

- The upgrade answered HTTP 500 (the token lookup's OperationalError) where the REST API answers 503
  `unavailable` with Retry-After: now the socket is refused with 503 and Retry-After, and a gateway retries.
- The token guard of an open socket died on the first failed check (15 tracebacks in a 30 s cut): after such a
  blip a revoked gateway's socket stayed open. Now the guard asks again, and still closes with 4001.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chumphae.auth.service import create_gateway, revoke_gateway
from chumphae.db import make_engine, set_engine, upgrade
from chumphae.models import Gateway
from tests.feed.liveserver import live_server

pytestmark = pytest.mark.postgres


class Proxy:
    """127.0.0.1:port → PostgreSQL; `cut()` closes every link and refuses new ones until `mend()`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.links: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.links += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for s in self.links:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.links.clear()

    def mend(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@pytest.fixture
def through_proxy(pg_schema_engine: Engine) -> Iterator[tuple[Engine, Proxy, str]]:
    upgrade(pg_schema_engine)
    with Session(pg_schema_engine) as s:
        _, token = create_gateway(s, slug="gw-fix19", name="fix19")
        s.commit()
    url = pg_schema_engine.url
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    engine = make_engine(proxied, schema=_schema_of(pg_schema_engine))
    set_engine(engine)
    try:
        yield engine, proxy, token
    finally:
        set_engine(None)
        proxy.close()
        engine.dispose()


def _schema_of(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return str(conn.exec_driver_sql("SELECT current_schema()").scalar_one())


async def test_the_upgrade_is_refused_with_503_and_retry_after_while_the_database_is_away(
        through_proxy: tuple[Engine, Proxy, str]) -> None:
    engine, proxy, token = through_proxy
    headers = {"Authorization": f"Bearer {token}"}
    with live_server() as server:
        url = f"{server.ws}/api/v1/gateway/ws"
        async with connect(url, additional_headers=headers) as ws:  # the path is real: it works with the database
            assert (await asyncio.wait_for(ws.recv(), 10))
        proxy.cut()
        engine.dispose()  # pooled connections would only fail on use; new ones now cannot connect
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=headers, open_timeout=30):
                pass
        response: Any = refused.value.response
        assert response.status_code == 503, response.status_code
        assert response.headers["Retry-After"] == "5"
        proxy.mend()
        async with connect(url, additional_headers=headers) as ws:  # back once the database is
            assert (await asyncio.wait_for(ws.recv(), 10))


async def test_a_revocation_after_a_database_blip_still_closes_the_socket(
        through_proxy: tuple[Engine, Proxy, str], pg_schema_engine: Engine) -> None:
    engine, proxy, token = through_proxy
    with live_server(access_check_s=0.2) as server:
        async with connect(f"{server.ws}/api/v1/gateway/ws",
                           additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            await asyncio.wait_for(ws.recv(), 10)  # welcome
            proxy.cut()
            engine.dispose()
            await asyncio.sleep(1.5)  # several token checks fail meanwhile
            proxy.mend()
            with Session(pg_schema_engine) as s:  # revoked directly, not through the proxy
                revoke_gateway(s, gateway=s.exec(select(Gateway).where(Gateway.slug == "gw-fix19")).one())
                s.commit()
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 15)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001, closed.value
