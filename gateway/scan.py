"""The scan step: the bleak edge. Radio adverts in, frozen `Advert`s out, through a bounded queue.

The pattern that survives months on a Raspberry Pi (DOMAIN.md; habluetooth):
one long-lived `BleakScanner`; its detection callback only converts and
enqueues (never blocks, never raises: a full queue drops and counts);
start/stop under one lock; start retried on BlueZ errors
(`org.bluez.Error.InProgress` when another client is mid-discovery, an
adapter that is resetting); and a watchdog that restarts a scanner that has
heard nothing for `watchdog_s` — because BlueZ scanners die silently while
the process looks alive. Every restart is counted and its reason logged.
The clock is injectable so tests need no waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, Literal

from bleak import BleakScanner
from bleak.args.bluez import OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from chumphae.supervise import Supervisor, wait_up_to
from chumphae.timeutil import utcnow
from chumphae.values import Advert

log = logging.getLogger(__name__)

# Passive scanning (BlueZ AdvertisementMonitor) only reports adverts matching a pattern:
# our band frame (company 0xFFFF) and the service-data formats we decode.
DEFAULT_OR_PATTERNS = [
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\xff\xff"),
    OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00"),
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xaa\xfe"),
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xab\xfe"),
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc"),
]


class Scanner:
    def __init__(
        self,
        adapter: str | None,
        receiver_id: str,
        *,
        scan_mode: Literal["active", "passive"] = "active",
        or_patterns: list[OrPattern] | None = None,
        watchdog_s: float = 90.0,
        queue_size: int = 4096,
        start_retries: int = 5,
        retry_delay_s: float = 1.0,
        call_timeout_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.adapter = adapter
        self.receiver_id = receiver_id
        self.scan_mode = scan_mode
        self.or_patterns = or_patterns if or_patterns is not None else DEFAULT_OR_PATTERNS
        self.watchdog_s = watchdog_s
        self.start_retries = start_retries
        self.retry_delay_s = retry_delay_s
        # BlueZ that does not answer a start/stop (wedged bluetoothd) must not hang the watchdog loop for ever
        # while the heartbeat still says "scanning" (faults18): each call is given up after this long.
        self.call_timeout_s = call_timeout_s
        self.clock = clock
        self.wall = wall
        self.queue: asyncio.Queue[Advert] = asyncio.Queue(maxsize=queue_size)
        self.drops = 0
        self.adverts = 0
        self.restarts = 0
        self.start_failures = 0
        self.restart_reasons: list[str] = []
        self.state = "stopped"
        self.last_heard = clock()
        self._scanner: BleakScanner | None = None
        self._lock = asyncio.Lock()

    # -- the callback: convert and enqueue, nothing else ----------------------
    def _on_advert(self, device: BLEDevice, adv: AdvertisementData) -> None:
        now = self.clock()
        self.last_heard = now
        self.adverts += 1
        advert = Advert(
            address=device.address.upper(),
            rssi=int(adv.rssi),
            receiver=self.receiver_id,
            t=self.wall(),
            monotonic=now,
            manufacturer_data=dict(adv.manufacturer_data),
            service_data={k.lower(): bytes(v) for k, v in adv.service_data.items()},
            local_name=adv.local_name,
            tx_power=adv.tx_power,
        )
        try:
            self.queue.put_nowait(advert)
        except asyncio.QueueFull:
            self.drops += 1  # the pipeline is behind: shed load, keep the radio alive

    def _make(self) -> BleakScanner:
        bluez: dict[str, Any] = {}
        if self.adapter:
            bluez["adapter"] = self.adapter
        if self.scan_mode == "passive":
            bluez["or_patterns"] = self.or_patterns
        return BleakScanner(detection_callback=self._on_advert, scanning_mode=self.scan_mode, bluez=bluez)  # type: ignore[arg-type]

    async def start(self) -> None:
        """Start scanning, retrying BlueZ errors; raises the last error when retries run out."""
        async with self._lock:
            await self._start_locked()

    async def _start_locked(self) -> None:
        last: Exception | None = None
        for attempt in range(1, self.start_retries + 1):
            try:
                self._scanner = self._make()
                async with asyncio.timeout(self.call_timeout_s):
                    await self._scanner.start()
                self.state = "scanning"
                self.last_heard = self.clock()
                log.info("scanner started on %s (%s)", self.adapter or "default adapter", self.scan_mode)
                return
            except (BleakError, OSError, Exception) as e:  # dbus-fast raises its own DBusError
                last = e
                self.start_failures += 1
                self.state = "retrying"
                self._scanner = None
                log.warning("scanner start failed (attempt %d/%d): %s", attempt, self.start_retries, _reason(e))
                await asyncio.sleep(self.retry_delay_s * attempt)
        self.state = "failed"
        assert last is not None
        raise last

    async def stop(self) -> None:
        async with self._lock:
            await self._stop_locked()

    async def _stop_locked(self) -> None:
        s, self._scanner = self._scanner, None
        if s is not None:
            self.state = "stopping"
            try:
                async with asyncio.timeout(self.call_timeout_s):
                    await s.stop()
            except TimeoutError:
                log.warning("scanner stop did not return within %.0f s (BlueZ not answering): given up",
                            self.call_timeout_s)
            except Exception:  # noqa: BLE001, S110 - a dead adapter cannot be stopped cleanly
                pass
        self.state = "stopped"

    async def restart(self, reason: str) -> None:
        async with self._lock:
            self.restarts += 1
            self.restart_reasons.append(reason)
            log.warning("restarting scanner: %s", reason)
            await self._stop_locked()
            await self._start_locked()

    def check_watchdog(self) -> str | None:
        """The reason to restart, if the scanner has been silent too long."""
        silent = self.clock() - self.last_heard
        if self.state == "scanning" and silent >= self.watchdog_s:
            return f"no advert for {silent:.0f} s (watchdog {self.watchdog_s:.0f} s)"
        return None

    async def run(self, stop: asyncio.Event, check_every_s: float = 5.0) -> None:
        """Start, then keep the scanner alive until `stop`; never gives up while asked to run."""
        while not stop.is_set():
            try:
                if self.state != "scanning":
                    await self.start()
                reason = self.check_watchdog()
                if reason:
                    await self.restart(reason)
            except Exception as e:  # noqa: BLE001 - keep trying: a gateway that stops scanning is dead
                log.error("scanner down: %s", _reason(e))
            await wait_up_to(stop.wait(), check_every_s)
        await self.stop()

    def health(self) -> dict[str, Any]:
        return {"drops": self.drops, "restarts": self.restarts, "state": self.state, "adverts": self.adverts}


def _reason(e: BaseException) -> str:
    name = getattr(e, "type", None) or type(e).__name__  # dbus-fast DBusError has .type
    return f"{name}: {e}"


class RadioSource:
    """A `gateway.service.Source` over a Scanner: runs it (its watchdog loop supervised when a
    `Supervisor` is given), yields its adverts, None each idle second."""

    def __init__(self, scanner: Scanner, idle_s: float = 1.0, supervisor: Supervisor | None = None) -> None:
        self.scanner = scanner
        self.idle_s = idle_s
        self.supervisor = supervisor
        self._stop = asyncio.Event()

    def clock(self) -> float:
        return self.scanner.clock()

    def wall(self) -> datetime:
        return self.scanner.wall()

    async def __aiter__(self) -> AsyncIterator[Advert | None]:
        self._stop.clear()
        if self.supervisor is not None:
            task = self.supervisor.spawn("scanner", lambda: self.scanner.run(self._stop), self._stop,
                                         restart_on_return=True)
        else:
            task = asyncio.create_task(self.scanner.run(self._stop), name="scanner")
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_s):  # not wait_for: it can swallow a cancellation
                        advert = await self.scanner.queue.get()
                except TimeoutError:
                    advert = None
                yield advert
        finally:
            self._stop.set()
            await asyncio.gather(task, return_exceptions=True)
