"""``Classifier._finish`` as it was before the one-pass change (805616d), kept as the reference it must equal.

Why a copy: ``_finish`` now sorts and clamps the labels as plain rows and lets the ``Prediction`` validate
them, and ``Taxonomy.map_top`` remembers what it derived per label. Tests build both predictions from the
same ``RawResult`` and compare their ``model_dump()``: same labels, scores, order, codes, warnings, cost
and details, so the faster path changes nothing a user can see.
"""

from __future__ import annotations

import math

from pydantic import TypeAdapter

from cloudderm.classifier import (
    INDEPENDENT_SCORES_WARNING,
    NOT_NORMALISED_WARNING,
    Classifier,
    RawResult,
    _clamp,
)
from cloudderm.core import truncate_reason
from cloudderm.images import PreparedImage
from cloudderm.prediction import LabelScore, Prediction
from cloudderm.taxonomy import OUT_OF_DOMAIN_WARNING

__all__ = ["prediction_before"]


def _label_scores_before(pairs: list[tuple[str, float]]) -> list[LabelScore]:
    rows = sorted(
        ((str(label), _clamp(score)) for label, score in pairs), key=lambda row: row[1], reverse=True
    )
    return TypeAdapter(list[LabelScore]).validate_python(
        [{"label": label, "score": score} for label, score in rows]
    )


def prediction_before(
    clf: Classifier, image: PreparedImage, raw: RawResult, latency_ms: float, batch: int
) -> Prediction:
    """What ``clf._finish(image, raw, latency_ms, batch)`` returned at 805616d (taxonomy derived afresh)."""
    labels = _label_scores_before(raw.labels)
    warnings = [*clf.standing_warnings, *raw.warnings]
    answered = bool(labels) and raw.outcome == "answered"
    canonical = triage = out_of_domain = None
    if answered:
        top = labels[0].label
        canonical = clf.taxonomy.canonical(top)
        triage = clf.taxonomy.triage(canonical)
        if canonical is None:
            out_of_domain = OUT_OF_DOMAIN_WARNING.format(label=top, taxonomy=clf.taxonomy.name)
    if out_of_domain:
        warnings.append(out_of_domain)
    if answered:
        total = sum(ls.score for ls in labels)
        if raw.scores_independent:
            warnings.append(INDEPENDENT_SCORES_WARNING)
        elif not math.isclose(total, 1.0, abs_tol=0.02) and clf._returns_all_labels(raw):
            warnings.append(NOT_NORMALISED_WARNING.format(total=total))
    details = dict(raw.details)
    if batch > 1:
        details.setdefault("batch_size", batch)
    pricing = clf.pricing
    cost = pricing.cost_per_call(batch) if pricing is not None else None
    cost_for_usage = getattr(pricing, "cost_for_usage", None)
    if raw.usage is not None and cost_for_usage is not None:
        cost = cost_for_usage(raw.usage)
    return Prediction(
        provider=clf.name,
        adapter=clf.adapter,
        model=raw.model or clf.model_id,
        image_sha256=image.sha256,
        labels=labels,
        canonical=canonical,
        triage=triage,  # type: ignore[arg-type]
        latency_ms=latency_ms,
        cost_usd=cost,
        request_id=raw.request_id,
        warnings=list(dict.fromkeys(warnings)),
        provider_details=details,
        outcome=raw.outcome,
        reason=truncate_reason(raw.reason),
        usage=raw.usage,
    )
