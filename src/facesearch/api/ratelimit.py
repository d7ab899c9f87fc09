"""Per-key request limits: a token bucket per key, in memory.

Why a token bucket: it allows a short burst (a results page fetching twenty thumbnails at once)
while holding the sustained rate to ``per_minute``. The buckets live in this process only, which is
right for the single-process server ``facesearch serve`` runs; behind several processes each one
would enforce its own limit. The table is bounded: the least recently used buckets are dropped
first (a dropped bucket comes back full, which only ever errs towards letting a request through).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_BUCKETS = 10_000


class RateLimiter:
    """``take(key)`` spends one token of ``key``'s bucket: 0 when allowed, else seconds until one is back."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill = per_minute / 60.0  # tokens per second
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last time)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def take(self, key: str) -> int:
        """Spend a token; returns 0 if the request may go ahead, else the whole seconds to wait (Retry-After)."""
        if not self.enabled:
            return 0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.refill)
            if tokens >= 1.0:
                tokens -= 1.0
                wait = 0
            else:
                wait = max(1, math.ceil((1.0 - tokens) / self.refill))
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        return wait

    def peek(self, key: str) -> int:
        """Like :meth:`take` but spends nothing: seconds until ``key`` has a token (0: it has one now)."""
        if not self.enabled:
            return 0
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill)
        return 0 if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) / self.refill))
