"""Retrying provider calls that are safe to repeat, with exponential backoff and full jitter.

Inference calls are idempotent reads, so a throttled, timed-out or 5xx call may be sent again; a 4xx or
a malformed answer would fail the same way again and is not retried. A provider's ``Retry-After`` wins
over our own backoff when it is longer.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from cloudderm.errors import ProviderError

__all__ = ["RetryPolicy", "call_with_retries"]

T = TypeVar("T")


@dataclass
class RetryPolicy:
    """How many times and how patiently to retry a retryable provider error."""

    max_retries: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, error: ProviderError) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        backoff = min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1)))
        jittered = self.rng.uniform(0, backoff)
        if error.retry_after is not None:
            return min(self.max_delay_s, max(jittered, error.retry_after))
        return jittered


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, ProviderError, float], None] | None = None,
) -> T:
    """Call ``fn``; on a retryable ``ProviderError`` wait and try again up to ``policy.max_retries`` times."""
    attempt = 0
    while True:
        try:
            return fn()
        except ProviderError as e:
            if not e.retryable or attempt >= policy.max_retries:
                raise
            attempt += 1
            wait = policy.delay(attempt, e)
            if on_retry is not None:
                on_retry(attempt, e, wait)
            sleep(wait)
