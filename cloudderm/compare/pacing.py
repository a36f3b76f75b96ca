"""Per-provider pacing: a requests-per-second limiter and a circuit breaker.

Both are shared by all of one provider's worker threads. The limiter spaces requests evenly (the next
slot is reserved under a lock, the wait happens outside it) so a quota of N requests per second holds
however many threads there are. The breaker stops a run from hammering an endpoint that is down: after
``threshold`` consecutive failed images (after retries) it opens, and the runner records the rest of that
provider's images as skipped with the reason, instead of sending them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["CircuitBreaker", "RateLimiter"]


class RateLimiter:
    """At most ``rate`` acquisitions per second across threads, evenly spaced."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for the next slot; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next)
            self._next = slot + self.interval
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
        return max(0.0, wait)


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; any success before that resets the count."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.consecutive = 0
        self.reason: str | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self.reason is not None

    def success(self) -> None:
        with self._lock:
            if self.reason is None:
                self.consecutive = 0

    def failure(self, error: BaseException) -> bool:
        """Count a failed image; True when this failure opened the breaker."""
        with self._lock:
            if self.reason is not None or self.threshold <= 0:
                return False
            self.consecutive += 1
            if self.consecutive < self.threshold:
                return False
            self.reason = (
                f"circuit breaker open after {self.consecutive} consecutive failures; last: "
                f"{type(error).__name__}: {error}"
            )
            return True
