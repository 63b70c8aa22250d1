"""Failed authentications counted per source, in a sliding window.

A source (a client address) that failed ``max_failures`` times within ``window_s``
seconds is refused until its oldest failure in the window ages out. The counts live in the
process: each server worker keeps its own, which bounds guessing at ``workers x
max_failures`` per window. The table of sources is bounded too (the least recently failing
source is forgotten first), so a flood of addresses cannot grow it without end.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["FailureLimiter"]


class FailureLimiter:
    def __init__(self, max_failures: int = 10, window_s: float = 60.0, *,
                 max_sources: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or window_s <= 0:
            raise ValueError("max_failures must be >= 1 and window_s > 0")
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_sources = max_sources
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, source: str, now: float) -> deque[float] | None:
        times = self._failures.get(source)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[source]
            return None
        return times

    def retry_after(self, source: str) -> float | None:
        """Seconds until ``source`` may try again, or None when it may now."""
        with self._lock:
            now = self._clock()
            times = self._recent(source, now)
            if times is None or len(times) < self.max_failures:
                return None
            return max(times[-self.max_failures] + self.window_s - now, 0.001)

    def failed(self, source: str) -> None:
        with self._lock:
            now = self._clock()
            times = self._recent(source, now)
            if times is None:
                times = self._failures[source] = deque(maxlen=self.max_failures)
            times.append(now)
            self._failures.move_to_end(source)
            while len(self._failures) > self.max_sources:
                self._failures.popitem(last=False)
