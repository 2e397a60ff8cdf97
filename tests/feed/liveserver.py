"""A real uvicorn server on 127.0.0.1 (a free port) in a thread, for WebSocket tests through real clients."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI


class LiveServer:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    ws="websockets-sansio", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def live_server(**state: Any) -> Iterator[LiveServer]:
    """The backend app on the engine already set (`set_engine`), with `app.state` overrides."""
    from chumphae.api.app import create_app

    app = create_app(manage_engine=False)
    for key, value in state.items():
        setattr(app.state, key, value)
    server = LiveServer(app)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    import json

    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: Any, pred: Any, timeout: float = 5.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Frames until one matches `pred`; returns it and those skipped before it."""
    skipped: list[dict[str, Any]] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        frame = await recv_json(ws, max(0.01, deadline - asyncio.get_running_loop().time()))
        if pred(frame):
            return frame, skipped
        skipped.append(frame)


@contextmanager
def serve_process(args: list[str], env: dict[str, str], *, start_s: float = 60.0,
                  stop_s: float = 45.0) -> Iterator[str]:
    """`chumphae serve ARGS` as a child process (the same package, this interpreter's environment) on a free
    port of loopback; yields its base URL once `/healthz` answers, stops it afterwards (SIGTERM; it must be
    gone within `stop_s`, workers included, or the test fails with the end of its log).

    The server logs to a file, not a pipe: nobody reads a pipe while the test runs, and a full one (64 KiB
    of warnings on a loaded machine) blocks every process writing to it, the shutdown included."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    exe = Path(sys.executable).parent / "chumphae"
    with tempfile.TemporaryFile() as errlog:
        proc = subprocess.Popen([str(exe), "serve", *args, "--host", "127.0.0.1", "--port", str(port)],
                                env={**env, "PATH": os.environ.get("PATH", "")},
                                stdout=subprocess.DEVNULL, stderr=errlog, start_new_session=True)

        def tail() -> str:
            errlog.seek(0)
            return errlog.read().decode(errors="replace")[-3000:]

        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + start_s
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"chumphae serve did not start: {tail()}")
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(stop_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the workers too: they are in its session
                proc.wait(10)
                raise AssertionError(f"chumphae serve did not stop within {stop_s:.0f} s of SIGTERM: {tail()}") from None
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # a worker left behind by its parent
