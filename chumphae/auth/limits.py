"""Failed authentications per client address: after too many, refuse for a while (HTTP 429, close 4029).

Tokens carry 256 bits, so guessing one is hopeless; the limit stops a client
that hammers the backend with bad tokens (a script gone wrong, or someone
probing) from costing every caregiver database time. Counted in this
process's memory, per address the server sees (behind a proxy, run uvicorn
with `--proxy-headers` so that is the client's address).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailedAuthLimiter:
    """A sliding window of failure times per address; `max_failures` in `window_s` locks it out."""

    def __init__(self, *, max_failures: int = 30, window_s: float = 60.0, max_addresses: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures, self.window_s, self.max_addresses = max_failures, window_s, max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()  # sync routes run in worker threads

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None if it may try now."""
        if self.max_failures <= 0:
            return None
        with self._lock:
            times = self._failures.get(address)
            if times is None:
                return None
            now = self.clock()
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if not times:
                del self._failures[address]
                return None
            if len(times) < self.max_failures:
                return None
            return max(1, math.ceil(self.window_s - (now - times[0])))

    def failed(self, address: str) -> None:
        if self.max_failures <= 0:
            return
        with self._lock:
            times = self._failures.pop(address, None) or deque(maxlen=self.max_failures)
            times.append(self.clock())
            self._failures[address] = times  # most recent last
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)


class TooManyFailures(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after
