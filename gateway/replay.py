"""Replaying a recording (`chumphae-gateway --replay FILE [--speed X] [--now]`) through the real pipeline.

`ReplaySource` is a gateway source like the radio or the simulator: it reads
a JSON-lines recording (gateway/record.py, docs/gateway-protocol.md §6) and
yields its adverts at their recorded times (paced by `speed`: recorded
seconds per real second, 0 = as fast as possible), and `None` at every
whole second in between so the pipeline ticks (positions, coverage, dwell)
exactly as it did live. Its clock is the recording's: seconds since the
header's `started` (else the first advert), never going back; an advert
earlier than the one before it is handed over at the current time, with its
own `t`. After the last line it keeps ticking until the end line's time.

A bad line is logged (file, line number, reason — never the line's content)
and skipped, and counted in `bad_lines`; nothing else is lost. A file whose
first line is not a header of a version this gateway reads is refused at
start (`BadRecording`). With `shift_to_now`, every time is moved by the
same amount so that the recording starts now (the backend's window for
message times then accepts an old recording). `max_ahead_s` (set by
`chumphae-gateway` with a backend, as for `--simulate`): the replay runs at
`speed` until its clock is that far ahead of the wall clock, then at real
time (the backend refuses positions stamped 10 minutes ahead of its clock); a recording whose times start
further ahead than that waits until they are within it, said once at WARNING.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from chumphae.timeutil import utcnow
from chumphae.values import Advert
from gateway.record import MAX_LINE, BadLine, parse_advert, parse_header, parse_time

log = logging.getLogger(__name__)

# Held at `max_ahead_s`, the replay waits at most about a second a tick; a longer wait is a recording whose times
# start (or jump) that far ahead of the wall clock, which is said once at WARNING rather than waited out unsaid.
HOLD_SAY_S = 2.0


class BadRecording(ValueError):
    """The file cannot be replayed at all (missing, not a recording, unknown version)."""


class ReplaySource:
    def __init__(self, path: Path, *, speed: float = 1.0, shift_to_now: bool = False) -> None:
        self.path = path
        self.speed = speed
        self.adverts = 0
        self.bad_lines = 0
        self.done = False
        try:
            self._file = path.open("r", encoding="utf-8", errors="strict", newline="")
        except OSError as e:
            raise BadRecording(f"--replay {path}: {e.strerror or e}") from None
        self._line_no = 0
        first = self._next_line()
        try:
            if first is None:
                raise BadLine("the file is empty")
            started = parse_header(self._json(first[1]))
        except BadLine as e:
            self._file.close()
            raise BadRecording(f"--replay {path}: line 1: {e}") from None
        self._started = started
        self._shift_to_now = shift_to_now
        self._shift = utcnow() - started if shift_to_now and started is not None else timedelta(0)
        self._shifted = shift_to_now and started is not None
        self._end: datetime | None = None
        self._now = 0.0
        self.max_ahead_s: float | None = None
        self._said_ahead = False  # the WARNING of a recording that starts too far ahead, once

    # -- the Source protocol ------------------------------------------------
    def clock(self) -> float:
        return self._now

    def wall(self) -> datetime:
        base = self._started or utcnow()
        return base + self._shift + timedelta(seconds=self._now)

    # -- reading -------------------------------------------------------------
    def _next_line(self) -> tuple[int, str] | None:
        while True:
            try:
                raw = self._file.readline(MAX_LINE + 1)
            except UnicodeDecodeError:
                self._line_no += 1
                self._bad(self._line_no, "not UTF-8")
                self._skip_rest()
                continue
            if raw == "":
                return None
            self._line_no += 1
            if len(raw) > MAX_LINE and not raw.endswith("\n"):
                self._bad(self._line_no, f"longer than {MAX_LINE} characters")
                self._skip_rest()
                continue
            if raw.strip():
                return self._line_no, raw

    def _skip_rest(self) -> None:
        while True:
            try:
                chunk = self._file.readline(MAX_LINE)
            except UnicodeDecodeError:
                continue
            if chunk == "" or chunk.endswith("\n"):
                return

    @staticmethod
    def _json(text: str) -> Any:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise BadLine("not JSON") from None

    def _bad(self, line_no: int, reason: str) -> None:
        self.bad_lines += 1
        log.error("%s:%d: %s; line skipped", self.path, line_no, reason)

    def _records(self) -> Iterator[tuple[float, Advert | None]]:
        """(time in the recording's seconds, advert) per good line; (t, None) for the end line."""
        while (item := self._next_line()) is not None:
            line_no, text = item
            try:
                obj = self._json(text)
                if isinstance(obj, dict) and "end" in obj and "address" not in obj:
                    end = parse_time(obj["end"], "end")
                    self._anchor(end)
                    yield self._rel(end), None
                    continue
                a = parse_advert(obj)
            except BadLine as e:
                self._bad(line_no, str(e))
                continue
            self._anchor(a.t)
            yield self._rel(a.t), a

    def _anchor(self, t: datetime) -> None:
        if self._started is None:
            self._started = t
        if self._shift_to_now and not self._shifted:
            self._shift, self._shifted = utcnow() - self._started, True

    def _rel(self, t: datetime) -> float:
        assert self._started is not None
        return (t - self._started).total_seconds()

    async def __aiter__(self) -> AsyncIterator[Advert | None]:
        t0 = time.monotonic() - (self._now / self.speed if self.speed > 0 else 0.0)
        for rel, advert in self._records():
            while self._now + 1.0 <= rel:  # whole seconds pass before this line: the pipeline ticks
                await self._pace(t0, self._now + 1.0)
                self._now += 1.0
                yield None
            if advert is None:
                continue
            await self._pace(t0, max(self._now, rel))
            self.adverts += 1
            yield Advert(
                address=advert.address, rssi=advert.rssi, receiver=advert.receiver,
                t=(advert.t + self._shift).astimezone(UTC), monotonic=max(self._now, rel),
                manufacturer_data=advert.manufacturer_data, service_data=advert.service_data,
                local_name=advert.local_name, tx_power=advert.tx_power,
            )
        self._now += 1.0
        yield None  # a last tick after the last line
        self.done = True
        self._file.close()

    async def _pace(self, t0: float, at: float) -> None:
        delay = t0 + at / self.speed - time.monotonic() if self.speed > 0 else 0.0
        if self.max_ahead_s is not None and self._started is not None:  # flat out too (`SimSource.__aiter__`)
            ahead = (self._started + self._shift + timedelta(seconds=at) - utcnow()).total_seconds()
            hold = ahead - self.max_ahead_s
            if hold > max(delay, HOLD_SAY_S) and not self._said_ahead:  # held at the cap: at most ~1 s a tick
                self._said_ahead = True
                log.warning("%s: the recording's times are %.0f s ahead of this computer's clock, further than the "
                            "%.0f s a backend is sent: the replay waits %.0f s before going on (recorded on a clock "
                            "that was ahead, or local times written as UTC? --now starts it now)",
                            self.path, ahead, self.max_ahead_s, hold)
            delay = max(delay, hold)
        await asyncio.sleep(delay if delay > 0 else 0)
