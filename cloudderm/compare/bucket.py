"""A cluster-wide token bucket: each provider's ``concurrency`` and ``requests_per_second`` for every caller.

Why: with ``compare --engine ray`` a provider's calls leave from several processes on several machines, so
the per-process ``RateLimiter`` (pacing.py) no longer bounds what the provider sees. One ``TokenBucket``
(held by one Ray actor) grants every call cluster-wide: a grant needs a free concurrency slot *and* a rate
token. A caller that gets no grant is told how long to wait, and asks again; a caller releases its slot
when the call ends. A worker that dies while holding slots gets them back when it restarts
(``reclaim``), so a crash never shrinks a provider's concurrency for the rest of the run.

The bucket takes its clock as an argument and writes every grant, release and reclaim to a log, so the
limits can be shown from the log under an injected clock (``ManualClock``) rather than by timing calls.
The arithmetic is the classic token bucket: tokens refill at ``rate`` per second up to ``burst``; in any
interval of length T at most ``burst + rate x T`` calls are granted.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["GrantEvent", "Limit", "ManualClock", "TokenBucket"]

_FULL_POLL_S = 0.01  # wait hint when every concurrency slot is taken: a release can come at any moment
DEFAULT_LOG_SIZE = 100_000


@dataclass(frozen=True)
class Limit:
    """One provider's cluster-wide limits: in-flight calls, and optionally calls per second."""

    concurrency: int
    rate: float | None = None
    burst: int = 1

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")


@dataclass(frozen=True)
class GrantEvent:
    """One line of the grant log: what happened, to whom, at which clock time, and the slots then in use."""

    at: float
    provider: str
    owner: str
    event: str  # "grant", "release" or "reclaim"
    ticket: int
    in_flight: int


class ManualClock:
    """A clock that moves only when told to (tests, and simulations of a run's pacing)."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self.now += seconds
        return self.now


@dataclass
class _State:
    limit: Limit
    tokens: float
    stamp: float
    held: dict[int, str] = field(default_factory=dict)  # ticket -> owner


class TokenBucket:
    """Grants calls for several providers under their ``Limit``; thread-safe, clock injected.

    Args:
        limits: provider key -> its limits.
        clock: seconds as a float, monotonic (default ``time.monotonic``).
        log_size: how many recent events the grant log keeps.
    """

    def __init__(
        self,
        limits: dict[str, Limit],
        *,
        clock: Callable[[], float] = time.monotonic,
        log_size: int = DEFAULT_LOG_SIZE,
    ) -> None:
        self._clock = clock
        now = clock()
        self._state = {key: _State(limit, float(limit.burst), now) for key, limit in limits.items()}
        self._tickets = itertools.count(1)
        self._log: deque[GrantEvent] = deque(maxlen=log_size)
        self._closed = False
        self._lock = threading.Lock()

    def try_acquire(self, provider: str, owner: str) -> tuple[int | None, float]:
        """A grant ``(ticket, 0.0)``; ``(None, seconds)``: ask again after about that long; ``(None, -1.0)``:
        never, the run is stopping (``close``)."""
        with self._lock:
            if self._closed:
                return None, -1.0
            state = self._state[provider]
            now = self._clock()
            self._refill(state, now)
            if len(state.held) >= state.limit.concurrency:
                return None, _FULL_POLL_S
            if state.limit.rate is not None and state.tokens < 1.0:
                return None, (1.0 - state.tokens) / state.limit.rate
            if state.limit.rate is not None:
                state.tokens -= 1.0
            ticket = next(self._tickets)
            state.held[ticket] = owner
            self._record(now, provider, owner, "grant", ticket, state)
            return ticket, 0.0

    def close(self) -> None:
        """Grant nothing more: the run is stopping, so calls still waiting for a grant are not made."""
        with self._lock:
            self._closed = True

    def release(self, provider: str, ticket: int) -> None:
        """The call holding ``ticket`` has ended; releasing twice (or after a reclaim) does nothing."""
        with self._lock:
            state = self._state[provider]
            owner = state.held.pop(ticket, None)
            if owner is not None:
                self._record(self._clock(), provider, owner, "release", ticket, state)

    def reclaim(self, owner: str) -> int:
        """Free every slot ``owner`` holds (it restarted, so its calls are gone); returns how many."""
        freed = 0
        with self._lock:
            now = self._clock()
            for provider, state in self._state.items():
                for ticket in [t for t, who in state.held.items() if who == owner]:
                    del state.held[ticket]
                    freed += 1
                    self._record(now, provider, owner, "reclaim", ticket, state)
        return freed

    def in_flight(self, provider: str) -> int:
        with self._lock:
            return len(self._state[provider].held)

    def log(self) -> list[GrantEvent]:
        """The most recent events, oldest first."""
        with self._lock:
            return list(self._log)

    def limits(self) -> dict[str, Limit]:
        return {key: state.limit for key, state in self._state.items()}

    # ---- internals ----------------------------------------------------------------------------
    @staticmethod
    def _refill(state: _State, now: float) -> None:
        if state.limit.rate is not None:
            elapsed = max(0.0, now - state.stamp)
            state.tokens = min(float(state.limit.burst), state.tokens + elapsed * state.limit.rate)
        state.stamp = now

    def _record(self, now: float, provider: str, owner: str, event: str, ticket: int, state: _State) -> None:
        self._log.append(GrantEvent(now, provider, owner, event, ticket, len(state.held)))
