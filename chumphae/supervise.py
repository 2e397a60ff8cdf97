"""Supervised background tasks: a task that fails is logged with its traceback and started again.

Used by the gateway (pipeline, uplink, config poll, …) and the backend (feed
listener, alert clock, and anything else its lifespan starts). A process that
looks alive while one of its loops died silently is the failure we refuse:
every exception is logged at ERROR with its cause, counted per task, and the
task is restarted after a backoff (doubling from `backoff_min_s` to
`backoff_max_s`, ±20 % jitter; back to the minimum once a run lasted
`healthy_after_s`). `health()` says how often each task restarted and the
last error (type and a short, scrubbed message: no digits runs that could be
a national ID, no bearer tokens).

    sup = Supervisor()
    task = sup.spawn("uplink", lambda: uplink.run(stop), stop)
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import multiprocessing
import os
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_SECRETS = re.compile(r"\b(?:ch[a-z]_|Bearer\s+)\S+|\d{6,}")


async def wait_up_to(awaitable: Awaitable[Any], seconds: float) -> bool:
    """Await `awaitable` for at most `seconds`: True if it finished, False if the time ran out.

    Use this rather than `asyncio.wait_for` in loops: on Python 3.11, a cancellation that arrives just as
    the awaited thing finishes is swallowed by `wait_for`, and a loop that ends only by being cancelled
    (an uplink sender, a feed socket) then runs on for ever and holds its stop (a hang seen in CI).
    `asyncio.timeout` never loses a cancellation."""
    try:
        async with asyncio.timeout(seconds):
            await awaitable
    except TimeoutError:
        return False
    return True


def short_error(exc: BaseException, limit: int = 120) -> str:
    """`Type: message`, one line, at most `limit` characters, tokens and long digit runs masked."""
    text = " ".join(str(exc).split())
    text = _SECRETS.sub("…", text)
    out = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return out if len(out) <= limit else out[: limit - 1] + "…"


@dataclass(slots=True)
class Supervisor:
    """Starts tasks that restart on failure; keeps references to them and their counts."""

    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    healthy_after_s: float = 60.0
    restarts: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None
    last_error_task: str | None = None
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    delays: dict[str, list[float]] = field(default_factory=dict)  # the last waits before a restart

    def spawn(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        stop: asyncio.Event | None = None,
        *,
        restart_on_return: bool = False,
    ) -> asyncio.Task[None]:
        """Run `factory()` as task `name` until `stop` is set (or the task is cancelled).

        A return ends the task, unless `restart_on_return` (for loops that must never end while
        `stop` is clear: returning early is then a fault too). An exception always restarts it."""
        self.restarts.setdefault(name, 0)
        task = asyncio.create_task(self._run(name, factory, stop, restart_on_return), name=name)
        self.tasks[name] = task
        return task

    async def _run(
        self, name: str, factory: Callable[[], Awaitable[None]], stop: asyncio.Event | None, restart_on_return: bool
    ) -> None:
        backoff = self.backoff_min_s
        while stop is None or not stop.is_set():
            started = time.monotonic()
            try:
                await factory()
                if not restart_on_return or (stop is not None and stop.is_set()):
                    return
                raise RuntimeError("ended while it should still run")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the point of supervision: log, count, restart
                if time.monotonic() - started >= self.healthy_after_s:
                    backoff = self.backoff_min_s
                delay = backoff * random.uniform(0.8, 1.2)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.last_error, self.last_error_task = short_error(exc), name
                self.delays[name] = [*self.delays.get(name, [])[-9:], delay]
                log.error("task %s failed (restart %d in %.1f s)", name, self.restarts[name], delay, exc_info=exc)
                backoff = min(self.backoff_max_s, backoff * 2.0)
            if stop is None:
                await asyncio.sleep(delay)
            else:
                await wait_up_to(stop.wait(), delay)

    def health(self) -> dict[str, Any]:
        """For a heartbeat: restarts per task, their total, and the last error (or None)."""
        return {
            "task_restarts": dict(self.restarts),
            "task_restarts_total": sum(self.restarts.values()),
            "last_error": f"{self.last_error_task}: {self.last_error}" if self.last_error else None,
        }

    async def cancel_all(self) -> None:
        tasks = list(self.tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def die_with_parent() -> None:
    """In a child process (Linux): SIGTERM when the parent dies, even by SIGKILL, so a killed `chumphae serve`
    leaves no process holding its ports: its alert processes (called before exec) and its `--workers`
    (uvicorn's, from `worker_app`; docs18 found them serving on after `kill -9` of their parent, and the next
    `serve` failing with `Address already in use`). A worker whose parent died before this call ends at once.
    Elsewhere nothing: `serve`'s `finally` stops what it started. (Imports at the top: this runs between fork
    and exec, where importing is not safe.)"""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid != os.getppid():
        os.kill(os.getpid(), signal.SIGTERM)  # the parent is already gone: no signal would come
