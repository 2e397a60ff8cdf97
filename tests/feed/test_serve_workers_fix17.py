"""fix17 (issue 13): `chumphae serve --workers 2` on PostgreSQL: a worker died once at start-up under load.

uvicorn `spawn`s its workers and kills one that has not answered a health check within its time (5 s by
default), pinging from 0.5 s after the start; before a worker can answer, multiprocessing imported the
parent's main module in it, the whole `chumphae` command (3 s of a loaded machine's time, measured). Here the
real command is started with Python's import log on: only the parent may import `chumphae.cli`, and no worker
may be replaced."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import Engine

from chumphae.db import upgrade
from tests.feed.test_fanout import schema_url


def test_workers_start_without_importing_the_command_and_none_is_replaced(pg_schema_engine: Engine,
                                                                          tmp_path: Path) -> None:
    upgrade(pg_schema_engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUMPHAE_")}
    env.update(CHUMPHAE_DATABASE_URL=schema_url(pg_schema_engine), CHUMPHAE_DATA_DIR=str(tmp_path / "data"),
               PYTHONPROFILEIMPORTTIME="1")
    log = tmp_path / "serve.log"
    exe = Path(sys.executable).parent / "chumphae"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while log.read_text(errors="replace").count("Application startup complete") < 2:
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        time.sleep(1.0)  # a health check or two after both are up
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text(errors="replace")
    lines = text.splitlines()
    imported = [x.rsplit("|", 1)[1].strip() for x in lines if x.startswith("import time:")]
    assert imported.count("chumphae.cli") == 1, f"chumphae.cli imported {imported.count('chumphae.cli')} times " \
                                                "(the parent, and each worker before it could answer a health check)"
    assert imported.count("chumphae.api.routes.district") == 3  # the parent and both workers, each once
    assert "died" not in text and "failed to start" not in text, [x for x in lines if "died" in x or "failed" in x]
