"""A real WebSocket + REST server implementing the backend side of docs/gateway-protocol.md.

Stores each message once per id (as the backend must), acks duplicates too,
answers malformed frames with `error`, serves the site config with an ETag.
It can be stopped and started again on the same port, for real, to test
that the gateway loses nothing while the backend is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections import Counter
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

TYPES = {"hello", "position", "alert", "reading", "heartbeat"}
MAIN_PATH, ALERT_PATH = "/api/v1/gateway/ws", "/api/v1/gateway/alerts"


class FakeBackend:
    def __init__(self, token: str, config: dict[str, Any] | None = None, port: int = 0) -> None:
        self.token = token
        self.config = config or {"receivers": [], "bands": []}  # a site with none (a site config has both lists)
        self.port = port
        self.stored: dict[str, dict[str, Any]] = {}  # id → message (the "database")
        self.deliveries: Counter[str] = Counter()  # id → times received
        self.errors: list[dict[str, Any]] = []
        self.refused = 0
        self.config_requests: list[tuple[str | None, int]] = []  # (If-None-Match sent, status answered)
        self.connections: set[ServerConnection] = set()
        self.poison: set[str] = set()  # message ids that make this backend close 1011 (as a crashing one would)
        self.storage_down = False  # close 1013 at the first message (storage unavailable)
        self.closes: list[int] = []  # close codes this backend sent
        self.heartbeats: list[dict[str, Any]] = []  # heartbeat bodies, in arrival order
        self.hold_acks: set[str] = set()  # message types stored but not acked until `release_acks` (a busy backend)
        self._held: list[tuple[ServerConnection, str]] = []
        # The alert socket (protocol §3.3): what the main socket's welcome names (None: nothing), and which
        # path each delivery came on; `hold_alert_lane`: the alert socket takes frames but never acks them.
        self.alert_socket: dict[str, Any] | None = None
        self.by_path: Counter[tuple[str, str]] = Counter()  # (path, id) → times received
        self.hold_alert_lane = False
        self._server: Server | None = None

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:16] + '"'

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.stored.values() if m["type"] == kind]

    async def start(self) -> None:
        self._server = await serve(self._handler, "127.0.0.1", self.port, process_request=self._http)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Go away for real: close the listening socket and every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _http(self, conn: ServerConnection, request: Request) -> Response | None:
        if not self._authorized(request):
            self.refused += 1
            return conn.respond(HTTPStatus.UNAUTHORIZED, "bad token\n")
        if request.path.startswith("/api/v1/gateway/config"):
            if request.headers.get("If-None-Match") == self.etag:
                resp = conn.respond(HTTPStatus.NOT_MODIFIED, "")
            else:
                resp = conn.respond(HTTPStatus.OK, json.dumps(self.config))
                resp.headers["Content-Type"] = "application/json"
            resp.headers["ETag"] = self.etag
            self.config_requests.append((request.headers.get("If-None-Match"), resp.status_code))
            return resp
        if request.path not in (MAIN_PATH, ALERT_PATH):
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    async def release_acks(self) -> None:
        """Ack what `hold_acks` held back, and stop holding."""
        self.hold_acks.clear()
        held, self._held = self._held, []
        for ws, mid in held:
            with contextlib.suppress(Exception):  # that session may have ended
                await ws.send(json.dumps({"type": "ack", "ids": [mid]}))

    async def push_config_changed(self) -> None:
        for c in list(self.connections):
            await c.send(json.dumps({"type": "config_changed", "etag": self.etag}))

    async def _handler(self, ws: ServerConnection) -> None:
        self.connections.add(ws)
        try:
            path = ws.request.path if ws.request is not None else MAIN_PATH
            welcome: dict[str, Any] = {"type": "welcome", "config_etag": self.etag}
            if path == MAIN_PATH and self.alert_socket is not None:
                welcome["alert_socket"] = self.alert_socket
            await ws.send(json.dumps(welcome))
            async for raw in ws:
                try:
                    msg = json.loads(raw)
                except ValueError:
                    await self._error(ws, None, "bad_json", "not JSON")
                    continue
                if not isinstance(msg, dict) or not isinstance(msg.get("id"), str) or not isinstance(msg.get("body"), dict):
                    await self._error(ws, msg.get("id") if isinstance(msg, dict) else None, "bad_envelope", "id/body")
                    continue
                if msg.get("type") not in TYPES:
                    await self._error(ws, msg["id"], "unknown_type", str(msg.get("type")))
                    continue
                if self.storage_down:
                    self.closes.append(1013)
                    await ws.close(1013, "storage unavailable")
                    return
                if msg["id"] in self.poison:
                    self.closes.append(1011)
                    await ws.close(1011, "internal error")
                    return
                if msg.get("type") == "heartbeat":
                    self.heartbeats.append(msg["body"])
                self.deliveries[msg["id"]] += 1
                self.by_path[(path, msg["id"])] += 1
                self.stored.setdefault(msg["id"], msg)  # unique by id: stored at most once
                if path == ALERT_PATH and self.hold_alert_lane:
                    continue
                if path == MAIN_PATH and msg.get("type") in self.hold_acks:
                    self._held.append((ws, msg["id"]))
                    continue
                await ws.send(json.dumps({"type": "ack", "ids": [msg["id"]]}))
        except Exception:  # noqa: BLE001 - a dropped connection is this server's normal end
            pass
        finally:
            self.connections.discard(ws)

    async def _error(self, ws: ServerConnection, mid: Any, code: str, text: str) -> None:
        self.errors.append({"id": mid, "code": code})
        await ws.send(json.dumps({"type": "error", "id": mid, "code": code, "message": text}))


async def wait_for(pred: Any, timeout: float = 20.0, every: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(every)
