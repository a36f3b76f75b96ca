"""What both out-of-process engines do away from the runner: prepare bytes, run an adapter, return errors.

Why one module: ``compare --workers N`` (a spawn process pool, pool.py) and ``compare --engine ray``
(ray_engine.py) run the same two jobs — fit an image to the providers' limits, and call one adapter's
``classify_prepared`` — in another process, and must agree on how a typed error crosses the process
boundary and on how many model threads a copy of a local adapter may start.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cloudderm.errors import InvalidImageError, ProviderError

if TYPE_CHECKING:
    from cloudderm.classifier import AdapterSettings, Classifier

__all__ = [
    "THREAD_FIELDS",
    "AdapterRecipe",
    "configure_threads",
    "portable_error",
    "prepare_remote",
    "runs_in_worker",
    "with_thread_setting",
    "worker_threads",
]

THREAD_FIELDS = ("threads", "onnx_threads", "intra_op_threads")


def runs_in_worker(classifier: Classifier) -> bool:
    """Whether this adapter's inference may move to a worker process (a local model that pickles)."""
    if not getattr(type(classifier), "runs_in_worker_process", False):
        return False
    try:
        pickle.dumps(classifier)
    except Exception:
        return False
    return True


def worker_threads(classifier: Classifier) -> int:
    """The model threads one worker uses for this provider: its own setting, 1 when unset."""
    for name in THREAD_FIELDS:
        value = getattr(classifier.settings, name, None)
        if isinstance(value, int) and value >= 1:
            return value
    return 1


def with_thread_setting(classifier: Classifier) -> Classifier:
    """A copy whose unset thread setting is 1, so N workers do not each start one thread per core."""
    for name in THREAD_FIELDS:
        if name in type(classifier.settings).model_fields and getattr(classifier.settings, name) is None:
            rebuild, args = classifier.__reduce__()[:2]  # (type, name, settings, taxonomy, retry, state)
            settings = classifier.settings.model_copy(update={name: 1})
            return rebuild(args[0], args[1], settings, *args[3:])
    return classifier


def configure_threads(threads: int) -> None:
    """Cap this worker process's BLAS/OpenMP/torch threads (call before a model loads)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)


def prepare_remote(data: bytes, max_bytes: int | None, max_side: int | None, source: str) -> tuple[str, Any]:
    """``images.prepare`` in another process: ``("ok", PreparedImage)`` or ``("invalid", reason)``."""
    from cloudderm.images import prepare

    try:
        return "ok", prepare(data, max_bytes=max_bytes, max_side=max_side, source=source)
    except InvalidImageError as e:  # its constructor takes two arguments: sent back as the reason alone
        return "invalid", e.reason


def portable_error(error: Exception, provider: str) -> Exception:
    """The error itself when it survives pickling, else a ProviderError saying the same thing."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        pass
    detail = getattr(error, "detail", None) or str(error)
    return ProviderError(
        f"{type(error).__name__}: {detail}",
        provider=getattr(error, "provider", None) or provider,
        endpoint=getattr(error, "endpoint", None),
        retryable=bool(getattr(error, "retryable", False)),
    )


@dataclass(frozen=True)
class AdapterRecipe:
    """How to build an adapter on another machine, carrying ``${VAR}`` references instead of their values.

    Why not pickle the adapter itself: its settings hold what this process read from its environment
    (API keys included), and Ray keeps actor arguments in the cluster's store and sends them over the
    network. The recipe holds the settings with each ``${VAR}`` put back (``config.without_env_values``);
    ``build`` resolves them from the environment of the process it runs in. Settings made in Python
    rather than read from a config have no ``${VAR}`` and travel as they are.
    """

    rebuild: Callable[..., Classifier]
    adapter_type: type
    name: str
    settings: AdapterSettings
    rest: tuple[Any, ...]  # taxonomy, retry policy, state: see Classifier.__reduce__

    @classmethod
    def of(cls, classifier: Classifier) -> AdapterRecipe:
        from cloudderm.config import without_env_values

        rebuild, args = classifier.__reduce__()[:2]
        return cls(rebuild, args[0], args[1], without_env_values(args[2]), tuple(args[3:]))

    def build(self) -> Classifier:
        """The adapter, its ``${VAR}`` resolved here (ConfigError naming a variable this machine lacks)."""
        from cloudderm.config import with_env_values

        settings = with_env_values(self.settings, self.name)
        return self.rebuild(self.adapter_type, self.name, settings, *self.rest)
