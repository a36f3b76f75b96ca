"""Per-image facts the summary does not keep: latency samples and the images providers disagree on.

Why a second pass over predictions.jsonl: summary.json stays small (aggregates only), while the HTML
report wants distributions and concrete examples. Only a few fields per answer are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cloudderm.compare.summary import image_key, iter_records

__all__ = ["Answer", "Details", "ImageAnswers", "collect_details"]

DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Answer:
    """One provider's top answer for one image (or why there is none)."""

    status: str
    canonical: str | None = None
    label: str | None = None
    score: float | None = None

    @property
    def outcome(self) -> str:
        """What is compared between providers: the canonical code, "out-of-domain", or the status."""
        if self.status != "ok":
            return self.status
        return self.canonical or "out-of-domain"


@dataclass
class ImageAnswers:
    """Every provider's answer for one image."""

    key: str
    sha256: str | None
    truth: str | None
    answers: dict[str, Answer] = field(default_factory=dict)

    def distinct_outcomes(self) -> int:
        return len({a.outcome for a in self.answers.values() if a.status == "ok"})


@dataclass
class Details:
    """Latency samples per provider and the (capped) list of images with disagreeing answers."""

    latencies: dict[str, list[float]]
    disagreements: list[ImageAnswers]
    n_disagreements: int
    n_compared: int


def collect_details(
    predictions_jsonl: Path, providers: Sequence[str], *, limit: int = DEFAULT_LIMIT
) -> Details:
    """Read predictions.jsonl once for latencies and disagreements.

    An image counts as compared when at least two providers answered it; it is a disagreement when
    their outcomes differ (an out-of-domain answer is an outcome of its own). Labelled images come first,
    then images with the most distinct answers.
    """
    latencies: dict[str, list[float]] = {name: [] for name in providers}
    images: dict[str, ImageAnswers] = {}
    for rec in iter_records(Path(predictions_jsonl)):
        name = str(rec.get("provider") or "")
        key = image_key(rec)
        row = images.get(key)
        if row is None:
            row = images[key] = ImageAnswers(key=key, sha256=rec.get("sha256"), truth=rec.get("truth"))
        status = str(rec.get("status") or "error")
        labels = rec.get("labels") or []
        top = labels[0] if labels else {}
        row.answers[name] = Answer(
            status=status,
            canonical=rec.get("canonical"),
            label=top.get("label"),
            score=top.get("score"),
        )
        if status == "ok" and isinstance(rec.get("latency_ms"), (int, float)):
            latencies.setdefault(name, []).append(float(rec["latency_ms"]))
    compared = [r for r in images.values() if sum(a.status == "ok" for a in r.answers.values()) >= 2]
    split = [r for r in compared if r.distinct_outcomes() > 1]
    split.sort(key=lambda r: (r.truth is None, -r.distinct_outcomes(), r.key))
    return Details(
        latencies=latencies,
        disagreements=split[:limit],
        n_disagreements=len(split),
        n_compared=len(compared),
    )
