"""The cluster-wide token bucket (``compare --engine ray``), on a manual clock: limits shown from its log."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from cloudderm.compare.bucket import GrantEvent, Limit, ManualClock, TokenBucket


def limit_violations(log: Sequence[GrantEvent], limits: dict[str, Limit]) -> list[str]:
    """Every place the log breaks a limit: slots in use above ``concurrency``, or more grants in some
    interval of length T than ``burst + rate x T`` (the token bucket's bound, checked for every pair of
    grants, since the tightest interval always starts and ends on a grant)."""
    problems = []
    for key, limit in limits.items():
        events = [e for e in log if e.provider == key]
        held: set[int] = set()
        for e in events:
            if e.event == "grant":
                held.add(e.ticket)
            else:
                held.discard(e.ticket)
            if len(held) > limit.concurrency or e.in_flight != len(held):
                problems.append(f"{key}: {len(held)} in flight at t={e.at} (limit {limit.concurrency})")
        if limit.rate is None:
            continue
        grants = [e.at for e in events if e.event == "grant"]
        for i, start in enumerate(grants):
            for j in range(i, len(grants)):
                allowed = limit.burst + limit.rate * (grants[j] - start) + 1e-9
                if j - i + 1 > allowed:
                    problems.append(
                        f"{key}: {j - i + 1} grants in [{start}, {grants[j]}] (allowed {allowed:.3f})"
                    )
    return problems


def test_concurrency_slots_are_granted_up_to_the_limit_and_freed_by_release() -> None:
    bucket = TokenBucket({"p": Limit(concurrency=2)}, clock=ManualClock())
    first, wait = bucket.try_acquire("p", "a")
    second, _ = bucket.try_acquire("p", "b")
    assert first is not None and second is not None and wait == 0.0
    refused, wait = bucket.try_acquire("p", "a")
    assert refused is None and wait > 0
    bucket.release("p", first)
    bucket.release("p", first)  # twice: nothing more is freed
    assert bucket.in_flight("p") == 1
    third, _ = bucket.try_acquire("p", "c")
    assert third is not None and bucket.in_flight("p") == 2


def test_rate_tokens_refill_on_the_injected_clock_only() -> None:
    clock = ManualClock()
    bucket = TokenBucket({"p": Limit(concurrency=10, rate=2.0)}, clock=clock)
    ticket, _ = bucket.try_acquire("p", "a")
    assert ticket is not None
    refused, wait = bucket.try_acquire("p", "a")
    assert refused is None and wait == pytest.approx(0.5)
    clock.advance(0.25)
    refused, wait = bucket.try_acquire("p", "a")
    assert refused is None and wait == pytest.approx(0.25)
    clock.advance(0.25)
    granted, _ = bucket.try_acquire("p", "a")
    assert granted is not None
    assert [e.at for e in bucket.log() if e.event == "grant"] == [0.0, 0.5]


def test_a_restarted_owner_reclaims_its_slots_and_its_old_releases_do_nothing() -> None:
    bucket = TokenBucket({"p": Limit(concurrency=2), "q": Limit(concurrency=1)}, clock=ManualClock())
    a1, _ = bucket.try_acquire("p", "p#0")
    b1, _ = bucket.try_acquire("p", "p#1")
    q1, _ = bucket.try_acquire("q", "p#0")
    assert bucket.reclaim("p#0") == 2
    assert (bucket.in_flight("p"), bucket.in_flight("q")) == (1, 0)
    assert a1 is not None and b1 is not None and q1 is not None
    bucket.release("p", a1)  # the dead copy's late release: already reclaimed
    assert bucket.in_flight("p") == 1
    assert [e.event for e in bucket.log()][-2:] == ["reclaim", "reclaim"]


@pytest.mark.parametrize("seed", range(5))
def test_random_callers_never_break_the_limits_shown_in_the_log(seed: int) -> None:
    """Many owners ask, hold for a random time and release, on a clock that moves in random steps."""
    rng = random.Random(seed)
    limits = {"p": Limit(concurrency=3, rate=5.0, burst=2), "q": Limit(concurrency=1)}
    clock = ManualClock()
    bucket = TokenBucket(limits, clock=clock)
    holding: list[tuple[float, str, int]] = []  # (release at, provider, ticket)
    granted = 0
    for _ in range(2000):
        clock.advance(rng.choice([0.0, 0.01, 0.05, 0.2]))
        for item in [h for h in holding if h[0] <= clock.now]:
            holding.remove(item)
            bucket.release(item[1], item[2])
        provider = rng.choice(["p", "q"])
        ticket, _ = bucket.try_acquire(provider, f"owner-{rng.randrange(4)}")
        if ticket is not None:
            granted += 1
            holding.append((clock.now + rng.choice([0.0, 0.1, 0.5]), provider, ticket))
    log = bucket.log()
    assert granted > 100
    assert max(e.in_flight for e in log if e.provider == "p") == 3, "the concurrency limit was never reached"
    assert limit_violations(log, limits) == []


def test_the_checker_catches_a_broken_log() -> None:
    """The log checker the Ray tests rely on is not vacuous: a bucket without limits fails it."""
    limits = {"p": Limit(concurrency=1, rate=1.0)}
    log = [
        GrantEvent(0.0, "p", "a", "grant", 1, 1),
        GrantEvent(0.1, "p", "a", "grant", 2, 2),
    ]
    problems = limit_violations(log, limits)
    assert any("in flight" in p for p in problems) and any("grants in" in p for p in problems)


@pytest.mark.parametrize(
    "kwargs", [{"concurrency": 0}, {"concurrency": 1, "rate": 0}, {"concurrency": 1, "burst": 0}]
)
def test_impossible_limits_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Limit(**kwargs)


def test_a_manual_clock_does_not_go_back() -> None:
    with pytest.raises(ValueError):
        ManualClock().advance(-1)
