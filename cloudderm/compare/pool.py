"""``compare --workers N``: CPU work (preparation, local models) in worker processes, bytes in and out.

Why: decoding a 24-megapixel photo and running a local model are CPU-bound and hold the GIL, so the
runner's threads share one core. Worker processes (spawn start method: no forked locks, threads or
SDK clients) each get the image bytes and the preparation limits and return a ``PreparedImage``; a local
adapter (one that sets ``runs_in_worker_process``) is pickled into every worker once — adapters rebuild from
their settings — and returns ``Prediction`` objects. Everything else stays in the parent: cloud calls on the
runner's threads, the retries, pacing and breaker, and the one writer of ``results.sqlite`` — so resume
and exactly-once behave as with one process.

Threads: each worker runs a local model with the provider's own ``threads`` setting (``threads``,
``onnx_threads`` or ``intra_op_threads``), 1 when unset, so the machine runs ``workers x threads`` model
threads in total (docs/compare.md).
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

from cloudderm.compare.remote_work import (
    configure_threads,
    portable_error,
    prepare_remote,
    runs_in_worker,
    with_thread_setting,
    worker_threads,
)
from cloudderm.errors import ConfigError, InvalidImageError

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.images import PreparedImage
    from cloudderm.prediction import Prediction

__all__ = ["MAX_DEFAULT_WORKERS", "WORKERS_ENV", "WorkerPool", "default_workers", "runs_in_worker"]

# Without --workers or $CLOUDDERM_WORKERS: one worker per core, up to 8 (what the issue asked). Workers are
# light: they prepare images and run only the local models that load without torch (zoo onnx, azureml-onnx;
# huggingface and torch stay in the parent, see Classifier.worker_startup_is_light), so a worker costs a
# spawn and a fraction of a second of imports; the 24-photo benchmark ran 1.08x faster with 2 workers than
# with 1, at the same CPU (docs/benchmarks.md, section 7).
MAX_DEFAULT_WORKERS = 8
WORKERS_ENV = "CLOUDDERM_WORKERS"  # the test suite sets it to 1; users may set their own default
_PARENT_POLL_S = 0.5

_ADAPTERS: dict[str, Classifier] = {}  # in a worker: config hash -> its own copy of the local adapter


def default_workers() -> int:
    """``$CLOUDDERM_WORKERS`` when set, else this process's usable cores, up to ``MAX_DEFAULT_WORKERS``."""
    text = os.environ.get(WORKERS_ENV)
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigError(f"{WORKERS_ENV}={text!r}: expected a whole number of at least 1")
        return value
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_WORKERS, cores))


class WorkerPool:
    """A spawn-method process pool that prepares images and runs the local adapters it was given.

    Args:
        workers: the number of processes.
        local: the adapters to run in the workers, keyed by their config hash.
    """

    def __init__(self, workers: int, local: dict[str, Classifier] | None = None) -> None:
        if workers < 1:
            raise ConfigError("--workers must be at least 1")
        self.workers = workers
        self.local = dict(local or {})
        threads = max([worker_threads(c) for c in self.local.values()] or [1])
        blob = pickle.dumps({key: with_thread_setting(clf) for key, clf in self.local.items()})
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=get_context("spawn"),
            initializer=_init_worker,
            initargs=(blob, threads),
        )

    def runs(self, config_hash: str) -> bool:
        return config_hash in self.local

    def paces(self, config_hash: str) -> bool:
        return False  # the runner's own limiter paces every provider on one machine

    def stop(self) -> None:
        """Nothing waits here for a grant: the runner stops feeding, and calls in a worker finish."""

    def prepare(
        self, data: bytes, *, max_bytes: int | None, max_side: int | None, source: str
    ) -> PreparedImage:
        """``cloudderm.images.prepare`` in a worker; its typed errors come back as they are."""
        outcome, value = self._executor.submit(_prepare, data, max_bytes, max_side, source).result()
        if outcome == "invalid":
            raise InvalidImageError(source, value)
        return value

    def classify(self, config_hash: str, images: Sequence[PreparedImage]) -> list[Prediction]:
        """The local adapter's ``classify_prepared`` in a worker (latency measured around the model)."""
        outcome, value = self._executor.submit(_classify, config_hash, list(images)).result()
        if outcome == "error":
            raise value
        return value

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- in the worker process ------------------------------------------------------------------------
def _init_worker(blob: bytes, threads: int) -> None:
    # Ctrl-C reaches the whole process group: the parent decides what stops; in-flight work finishes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(os.getppid())
    _ADAPTERS.update(pickle.loads(blob))
    if _ADAPTERS:
        configure_threads(threads)
    for clf in _ADAPTERS.values():
        clf.warm_up()  # the model loads once per worker, before any timed call


def _exit_with_parent(parent: int) -> None:
    """A parent killed with SIGKILL cannot shut the pool down: each worker notices and exits by itself."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_POLL_S)
        os._exit(0)

    threading.Thread(target=watch, name="cloudderm-parent-watch", daemon=True).start()


def _prepare(data: bytes, max_bytes: int | None, max_side: int | None, source: str) -> tuple[str, Any]:
    return prepare_remote(data, max_bytes, max_side, source)


def _classify(config_hash: str, images: list[PreparedImage]) -> tuple[str, Any]:
    clf = _ADAPTERS[config_hash]
    try:
        return "ok", clf.classify_prepared(images)
    except Exception as e:
        return "error", portable_error(e, clf.name)
