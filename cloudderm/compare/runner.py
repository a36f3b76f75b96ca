"""The comparison engine: every image prepared once, sent to every provider, each answer stored at once.

Threads, not asyncio: provider SDKs (boto3, the REST transports, local models) are synchronous. The shape
is a bounded pipeline, so memory stays flat whatever the dataset size::

    feeder ──> [prep queue] ──> preparers (decode once, strictest limits, hash)
                                   │ writes run_items, skips pairs the store already answered
                                   └─> [queue per provider] ──> that provider's workers (its concurrency)
                                                                  rate limit, batch, retry, breaker
                                                                  └─> ResultStore (commit per result)

Every queue is bounded, so a slow provider slows the feeder instead of letting images pile up, and no
result is kept in memory: the store is the only record. ``stop()`` (or Ctrl-C in the calling thread)
stops taking new work, lets in-flight calls finish and be recorded, and returns ``interrupted=True``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudderm.classifier import ImageLimits
from cloudderm.compare.datasets import DatasetItem
from cloudderm.compare.executor import CallNotMade
from cloudderm.compare.pacing import CircuitBreaker, RateLimiter
from cloudderm.compare.progress import NullProgress, ProviderProgress
from cloudderm.compare.records import (
    ProviderPlan,
    ProviderStats,
    RunOutcome,
    empty_record,
    error_record,
    ok_record,
    source_sha,
)
from cloudderm.compare.store import ResultStore
from cloudderm.errors import InvalidImageError, ProviderError
from cloudderm.images import PreparedImage, prepare
from cloudderm.prediction import Prediction
from cloudderm.retry import call_with_retries

if TYPE_CHECKING:
    from cloudderm.compare.executor import Executor

__all__ = ["DEFAULT_BREAKER_THRESHOLD", "ProviderPlan", "ProviderStats", "RunOutcome", "Runner"]

DEFAULT_BREAKER_THRESHOLD = 5
_POLL_S = 0.1
_SENTINEL: Any = object()


class _Stopped(Exception):
    """Raised inside a worker's wait when the run is stopping: the call is not made."""


@dataclass(slots=True)
class _Work:
    seq: int
    key: str
    image: PreparedImage


@dataclass
class _Lane:
    """A provider's queue, pacing and counters."""

    plan: ProviderPlan
    queue: queue.Queue
    breaker: CircuitBreaker
    limiter: RateLimiter | None
    stats: ProviderStats
    lock: threading.Lock = field(default_factory=threading.Lock)


class Runner:
    """Drive a set of providers over a stream of dataset items, recording into a ``ResultStore``.

    Args:
        providers: the providers to call; their image limits are merged so one preparation fits all.
        store: where answers go (and where already-final answers are found on resume).
        progress: a progress reporter (bars, or counting only).
        sleep: how to wait between retries and for the rate limiter (inject a fake in tests).
        breaker_threshold: consecutive failed calls that open a provider's breaker (0 disables it).
        prepare_workers: threads decoding images (Pillow releases the GIL while decoding).
        queue_size: bound of each provider's queue (default: twice its concurrency x batch size).
        pool: where preparation and some providers' calls run instead of this process's threads: worker
            processes (``compare --workers``) or a Ray cluster (``--engine ray``); None: threads only.
    """

    def __init__(
        self,
        providers: Sequence[ProviderPlan],
        store: ResultStore,
        *,
        progress: ProviderProgress | None = None,
        sleep: Callable[[float], None] | None = None,
        breaker_threshold: int = DEFAULT_BREAKER_THRESHOLD,
        prepare_workers: int = 2,
        queue_size: int | None = None,
        pool: Executor | None = None,
    ) -> None:
        if not providers:
            raise ValueError("no providers to run")
        self.providers = list(providers)
        self.store = store
        self.progress = progress or NullProgress()
        self._stop = threading.Event()
        self._external_sleep = sleep
        self.pool = pool
        self.prepare_workers = max(1, prepare_workers, pool.workers if pool else 1)  # keep every worker fed
        self.limits = ImageLimits()
        for plan in self.providers:
            self.limits = self.limits.merge(plan.classifier.image_limits())
        self.limits_key = f"bytes={self.limits.max_bytes};side={self.limits.max_side}"
        self.lanes = [
            _Lane(
                plan=plan,
                queue=queue.Queue(maxsize=queue_size or max(4, 2 * plan.concurrency * plan.batch_size)),
                breaker=CircuitBreaker(breaker_threshold),
                limiter=RateLimiter(plan.requests_per_second, sleep=self._sleep)
                if plan.requests_per_second and not (pool is not None and pool.paces(plan.config_hash))
                else None,
                stats=ProviderStats(),
            )
            for plan in self.providers
        ]
        self._hashes = [plan.config_hash for plan in self.providers]
        self._errors: list[BaseException] = []
        self._images = 0
        self._invalid = 0
        self._unprepared: dict[str, str] = {}
        self._count_lock = threading.Lock()

    # ---- control ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop taking new work; in-flight calls finish and are recorded."""
        self._halt()

    def _halt(self) -> None:
        self._stop.set()
        if self.pool is not None:
            self.pool.stop()  # calls still waiting elsewhere (a Ray replica's grant) are not made

    def _sleep(self, seconds: float) -> None:
        if self._external_sleep is not None:
            self._external_sleep(seconds)
        else:
            self._stop.wait(seconds)
        if self._stop.is_set():
            raise _Stopped

    def _put(self, q: queue.Queue, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                q.put(value, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _get(self, q: queue.Queue) -> Any:
        while not self._stop.is_set():
            try:
                return q.get(timeout=_POLL_S)
            except queue.Empty:
                continue
        return None

    # ---- the run ------------------------------------------------------------------------------
    def run(self, items: Iterable[DatasetItem], total: int) -> RunOutcome:
        """Process every item; returns when all are answered, or after ``stop()`` / Ctrl-C."""
        self.store.begin_run()
        for plan in self.providers:
            self.store.register_provider(
                plan.config_hash, plan.name, plan.classifier.settings, plan.classifier.model_id
            )
        self.progress.start([p.name for p in self.providers], total)
        prep_q: queue.Queue = queue.Queue(maxsize=2 * self.prepare_workers)
        feeder = self._thread(self._feed, items, prep_q, name="feeder")
        preparers = [
            self._thread(self._prepare_loop, prep_q, name=f"prepare-{i}") for i in range(self.prepare_workers)
        ]
        workers = [
            self._thread(self._work_loop, lane, name=f"{lane.plan.name}-{i}")
            for lane in self.lanes
            for i in range(lane.plan.concurrency)
        ]
        interrupted = False
        try:
            self._join([feeder, *preparers])
            for lane in self.lanes:
                for _ in range(lane.plan.concurrency):
                    self._put(lane.queue, _SENTINEL)
            self._join(workers)
            interrupted = self._stop.is_set()
        except KeyboardInterrupt:
            interrupted = True
            self._halt()
            self._join(workers)  # in-flight calls finish and are recorded; a second Ctrl-C abandons them
        finally:
            self._stop.set()
            self.progress.stop()
        if self._errors:
            raise self._errors[0]
        return RunOutcome(
            interrupted=interrupted,
            images=self._images,
            invalid_images=self._invalid,
            unprepared=dict(self._unprepared),
            providers={lane.plan.name: lane.stats for lane in self.lanes},
        )

    def _thread(self, target: Callable[..., None], *args: Any, name: str) -> threading.Thread:
        def guarded() -> None:
            try:
                target(*args)
            except _Stopped:
                pass
            except BaseException as e:  # surfaced in run(), never swallowed
                self._errors.append(e)
                self._halt()

        thread = threading.Thread(target=guarded, name=f"cloudderm-{name}", daemon=True)
        thread.start()
        return thread

    @staticmethod
    def _join(threads: Sequence[threading.Thread]) -> None:
        for thread in threads:
            while thread.is_alive():
                thread.join(_POLL_S)

    def _feed(self, items: Iterable[DatasetItem], prep_q: queue.Queue) -> None:
        for seq, item in enumerate(items):
            if not self._put(prep_q, (seq, item)):
                return
        for _ in range(self.prepare_workers):
            self._put(prep_q, _SENTINEL)

    def _prepare_loop(self, prep_q: queue.Queue) -> None:
        while True:
            got = self._get(prep_q)
            if got is None or got is _SENTINEL:
                return
            self._prepare_one(*got)

    # ---- preparing ----------------------------------------------------------------------------
    def _prepare_one(self, seq: int, item: DatasetItem) -> None:
        with self._count_lock:
            self._images += 1
        if item.fingerprint:
            sha = self.store.prepared_sha(item.fingerprint, self.limits_key)
            if sha is not None and self.store.finished(sha, self._hashes) == set(self._hashes):
                self.store.add_item(seq, item.key, sha, item.truth, item.truth_raw, item.metadata)
                for lane in self.lanes:
                    self._reused(lane)
                return
        try:
            image = self._load_and_prepare(item)
        except InvalidImageError as e:
            self._record_invalid(seq, item, e)
            return
        except ProviderError as e:  # the executor failed, not the image: nothing stored, retried next run
            with self._count_lock:
                self._unprepared[item.key] = str(e)
            return
        if item.fingerprint:
            self.store.remember_prepared(item.fingerprint, self.limits_key, image.sha256)
        first = self.store.add_item(seq, item.key, image.sha256, item.truth, item.truth_raw, item.metadata)
        done = self.store.finished(image.sha256, self._hashes)
        work = _Work(seq, item.key, image)
        for lane in self.lanes:
            if not first or lane.plan.config_hash in done:
                self._reused(lane)  # answered earlier, or the same bytes are already queued in this run
            elif not self._put(lane.queue, work):
                return

    def _load_and_prepare(self, item: DatasetItem) -> PreparedImage:
        source = self._load(item)
        if self.pool is not None and isinstance(source, bytes):
            image = self.pool.prepare(
                source, max_bytes=self.limits.max_bytes, max_side=self.limits.max_side, source=item.key
            )
            return image.with_context(item.context)
        image = prepare(
            source, max_bytes=self.limits.max_bytes, max_side=self.limits.max_side, source=item.key
        )
        return image.with_context(item.context)  # the row's age/sex/site reach the adapters as image.context

    @staticmethod
    def _load(item: DatasetItem) -> Any:
        try:
            source = item.load()
            return source.read_bytes() if isinstance(source, Path) else source
        except InvalidImageError:
            raise
        except OSError as e:
            raise InvalidImageError(item.key, f"cannot read the file ({e.strerror or e})") from None
        except Exception as e:
            raise InvalidImageError(item.key, f"cannot load the image ({type(e).__name__}: {e})") from None

    def _record_invalid(self, seq: int, item: DatasetItem, error: InvalidImageError) -> None:
        """An unusable image is a final per-image error for every provider, keyed by its source bytes."""
        with self._count_lock:
            self._invalid += 1
        sha = source_sha(item)
        self.store.add_item(seq, item.key, sha, item.truth, item.truth_raw, item.metadata)
        done = self.store.finished(sha, self._hashes)
        for lane in self.lanes:
            if lane.plan.config_hash in done:
                self._reused(lane)
                continue
            record = error_record(lane.plan, error, retryable=False)
            self.store.put(
                lane.plan.config_hash, sha, lane.plan.name, "error", final=True, attempts=0, record=record
            )
            self._count(lane, "error")

    # ---- calling providers --------------------------------------------------------------------
    def _work_loop(self, lane: _Lane) -> None:
        size = lane.plan.batch_size
        while True:
            work = self._get(lane.queue)
            if work is None or work is _SENTINEL:
                return
            batch = [work]
            last = False
            while len(batch) < size:
                try:
                    more = lane.queue.get_nowait()
                except queue.Empty:
                    break
                if more is _SENTINEL:
                    last = True
                    break
                batch.append(more)
            self._process(lane, batch)
            if last:
                return

    def _process(self, lane: _Lane, batch: list[_Work]) -> None:
        plan = lane.plan
        if lane.breaker.is_open:
            record = {**empty_record(plan), "error": lane.breaker.reason, "error_type": "CircuitOpen"}
            for work in batch:
                self.store.put(
                    plan.config_hash,
                    work.image.sha256,
                    plan.name,
                    "skipped",
                    final=False,
                    attempts=0,
                    record=record,
                )
                self._count(lane, "skipped")
            return
        if self._stop.is_set():
            return
        attempts = 1

        def call() -> list[Prediction]:
            if self._stop.is_set():
                raise _Stopped
            if lane.limiter is not None:
                lane.limiter.acquire()
            with lane.lock:
                lane.stats.calls += 1
            if self.pool is not None and self.pool.runs(plan.config_hash):
                return self.pool.classify(plan.config_hash, [w.image for w in batch])
            return plan.classifier.classify_prepared([w.image for w in batch])

        def on_retry(attempt: int, error: ProviderError, wait: float) -> None:
            nonlocal attempts
            attempts = attempt + 1

        try:
            predictions = call_with_retries(
                call, plan.classifier.retry_policy, sleep=self._sleep, on_retry=on_retry
            )
        except (_Stopped, CallNotMade):
            return
        except ProviderError as e:
            if len(batch) > 1 and not e.retryable:
                for work in batch:  # one bad image must not fail its batch-mates
                    self._process(lane, [work])
                return
            self._record_failure(lane, batch, e, final=not e.retryable, attempts=attempts)
            return
        except Exception as e:  # an adapter bug: recorded, retried on the next run, never a crash
            self._record_failure(lane, batch, e, final=False, attempts=attempts)
            return
        lane.breaker.success()
        for work, prediction in zip(batch, predictions):
            self.store.put(
                plan.config_hash,
                work.image.sha256,
                plan.name,
                "ok",
                final=True,
                attempts=attempts,
                record=ok_record(prediction, lane.plan.classifier.standing_warnings),
            )
            self._count(lane, "ok")

    def _record_failure(
        self, lane: _Lane, batch: list[_Work], error: Exception, *, final: bool, attempts: int
    ) -> None:
        retryable = bool(getattr(error, "retryable", False))
        record = error_record(lane.plan, error, retryable=retryable)
        for work in batch:
            self.store.put(
                lane.plan.config_hash,
                work.image.sha256,
                lane.plan.name,
                "error",
                final=final,
                attempts=attempts,
                record=record,
            )
            self._count(lane, "error")
        if lane.breaker.failure(error):
            lane.stats.breaker = lane.breaker.reason

    # ---- counting -----------------------------------------------------------------------------
    def _count(self, lane: _Lane, status: str) -> None:
        with lane.lock:
            if status == "ok":
                lane.stats.ok += 1
            elif status == "error":
                lane.stats.errors += 1
            else:
                lane.stats.skipped += 1
        self.progress.advance(lane.plan.name, status)

    def _reused(self, lane: _Lane) -> None:
        with lane.lock:
            lane.stats.reused += 1
        self.progress.advance(lane.plan.name, "resumed")
