"""What the runner works with and writes: provider plans, run counts, and the records it stores.

Kept apart from the engine so the shapes of a stored answer (``ok``, error, skipped) are in one place:
``export.py`` reads exactly these keys back out of the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudderm.compare.datasets import DatasetItem
from cloudderm.prediction import Prediction
from cloudderm.redact import scrub_text
from cloudderm.taxonomy import is_out_of_domain_warning

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier

__all__ = [
    "ProviderPlan",
    "ProviderStats",
    "RunOutcome",
    "empty_record",
    "error_record",
    "ok_record",
    "source_sha",
]


@dataclass
class ProviderPlan:
    """One provider as the runner drives it."""

    name: str
    classifier: Classifier
    config_hash: str
    concurrency: int = 1
    requests_per_second: float | None = None

    @property
    def batch_size(self) -> int:
        return max(1, int(getattr(self.classifier, "max_batch_size", 1) or 1))


@dataclass
class ProviderStats:
    """What happened to one provider's images in this run."""

    calls: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    reused: int = 0
    breaker: str | None = None


@dataclass
class RunOutcome:
    """The end of a run: counts per provider, whether it was interrupted, how many images were read."""

    interrupted: bool
    images: int
    invalid_images: int
    providers: dict[str, ProviderStats] = field(default_factory=dict)
    # images the executor could not prepare (a Ray preparer that kept dying): nothing stored, so the next
    # run of the same command tries them again; key -> reason
    unprepared: dict[str, str] = field(default_factory=dict)


def source_sha(item: DatasetItem) -> str:
    """Identity of an unusable image: its raw bytes when readable, else its name."""
    try:
        source = item.load()
        data = source.read_bytes() if isinstance(source, Path) else source
        if hasattr(data, "tobytes"):
            data = data.tobytes()
        if isinstance(data, (bytes, bytearray, memoryview)):
            return hashlib.sha256(bytes(data)).hexdigest()
    except Exception:
        pass
    return hashlib.sha256(f"unreadable:{item.key}".encode()).hexdigest()


def empty_record(plan: ProviderPlan) -> dict[str, Any]:
    return {
        "model": plan.classifier.model_id,
        "labels": [],
        "latency_ms": None,
        "cost_usd": None,
        "request_id": None,
        "warnings": [],  # the provider's standing (card) warnings are added on export, current ones
        "error": None,
        "error_type": None,
    }


def error_record(plan: ProviderPlan, error: BaseException, *, retryable: bool) -> dict[str, Any]:
    return {
        **empty_record(plan),
        "request_id": getattr(error, "request_id", None),
        "error": scrub_text(str(error)),
        "error_type": type(error).__name__,
        "retryable": retryable,
    }


def answer_warnings(prediction: Prediction, standing: Sequence[str]) -> list[str]:
    """The warnings that belong to this answer alone: not the provider's standing (card) warnings and not
    the out-of-domain one, which export re-derives from the raw label with the current taxonomy."""
    drop = set(standing)
    return [w for w in prediction.warnings if w not in drop and not is_out_of_domain_warning(w)]


def ok_record(prediction: Prediction, standing: Sequence[str] = ()) -> dict[str, Any]:
    """What the store keeps of an answer: the provider's raw labels and facts, nothing derived from the
    taxonomy (so a label-map change re-maps stored answers on export, without sending anything again)."""
    return {
        "model": prediction.model,
        "labels": [{"label": ls.label, "score": ls.score} for ls in prediction.labels],
        "latency_ms": prediction.latency_ms,
        "cost_usd": prediction.cost_usd,
        "request_id": prediction.request_id,
        "warnings": answer_warnings(prediction, standing),
        "error": None,
        "error_type": None,
        "details": prediction.provider_details,
        "outcome": prediction.outcome,
        "reason": prediction.reason,
        "usage": prediction.usage.as_dict() if prediction.usage is not None else None,
    }
