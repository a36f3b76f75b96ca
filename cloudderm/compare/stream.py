"""Read predictions.jsonl once into compact per-provider arrays.

Why: a comparison may cover tens of thousands of images x several providers. Each line is reduced to a
few numbers per answer — class codes, top score, latency, cost, an interned image id and subgroup value
ids — kept in ``array`` buffers; full records are never held, so memory grows by tens of bytes per
answer rather than by the size of the JSON.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudderm.compare.metrics import OOD
from cloudderm.results import image_key, iter_records, iter_records_at, read_records_at
from cloudderm.taxonomy import Taxonomy

__all__ = [
    "MISSING_VALUE",
    "Accumulator",
    "PredictionStream",
    "image_key",
    "iter_records",
    "iter_records_at",
    "read_records_at",
]

MISSING_VALUE = "(missing)"


@dataclass
class Accumulator:
    """Compact running state for one provider: counts plus one array slot per answered image."""

    n: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    image: array = field(default_factory=lambda: array("q"))
    truth: array = field(default_factory=lambda: array("b"))
    pred: array = field(default_factory=lambda: array("b"))
    conf: array = field(default_factory=lambda: array("d"))
    latency: array = field(default_factory=lambda: array("d"))
    cost: array = field(default_factory=lambda: array("d"))
    groups: dict[str, array] = field(default_factory=dict)
    group_n: dict[str, Counter] = field(default_factory=dict)
    error_types: Counter = field(default_factory=Counter)
    first_errors: dict[str, str] = field(default_factory=dict)  # error type -> its first message
    skip_reasons: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    outcomes: Counter = field(
        default_factory=Counter
    )  # answered / abstained / unparseable, of the ok answers
    answered: array = field(default_factory=lambda: array("b"))  # per ok answer: 1 when it gave a label


class PredictionStream:
    """One pass over the jsonl, interning image names and subgroup values to small integers."""

    def __init__(self, taxonomy: Taxonomy, subgroups: Sequence[str]) -> None:
        self.codes = list(taxonomy.codes)
        self.code_index = {c: i for i, c in enumerate(self.codes)}
        self.subgroups = list(subgroups)
        self.images: dict[str, int] = {}
        self.values: dict[str, dict[str, int]] = {col: {} for col in self.subgroups}
        self.accs: dict[str, Accumulator] = {}
        self.label_counts: Counter = Counter()
        self.unmapped: Counter = Counter()

    def add(self, rec: Mapping[str, Any]) -> None:
        name = str(rec.get("provider") or "")
        acc = self.accs.get(name)
        if acc is None:
            acc = self.accs[name] = Accumulator(group_n={col: Counter() for col in self.subgroups})
        key = image_key(rec)
        truth = self._truth(rec, key)
        acc.n += 1
        if rec.get("model"):
            acc.models[str(rec["model"])] += 1
        metadata = rec.get("metadata") or {}
        values = {col: _group_value(metadata.get(col)) for col in self.subgroups}
        for col, value in values.items():
            acc.group_n[col][value] += 1
        status = rec.get("status")
        if status == "skipped":
            acc.skipped += 1
            acc.skip_reasons[str(rec.get("error_type") or rec.get("error") or "skipped")] += 1
            return
        if status != "ok":
            acc.errors += 1
            kind = str(rec.get("error_type") or "error")
            acc.error_types[kind] += 1
            acc.first_errors.setdefault(kind, str(rec.get("error") or kind))
            return
        acc.ok += 1
        outcome = str(rec.get("outcome") or "answered")
        acc.outcomes[outcome] += 1
        acc.answered.append(1 if outcome == "answered" else 0)
        acc.warnings.update({str(w) for w in rec.get("warnings") or []})
        labels = rec.get("labels") or []
        acc.image.append(self.images[key])
        acc.truth.append(truth)
        acc.pred.append(self.code_index.get(rec.get("canonical"), OOD))  # type: ignore[arg-type]
        acc.conf.append(float(labels[0]["score"]) if labels else math.nan)
        acc.latency.append(_number(rec.get("latency_ms")))
        acc.cost.append(_number(rec.get("cost_usd")))
        for col, value in values.items():
            ids = self.values[col]
            index = ids.get(value)
            if index is None:
                index = ids[value] = len(ids)
            groups = acc.groups.get(col)
            if groups is None:
                groups = acc.groups[col] = array("q")
            groups.append(index)

    def _truth(self, rec: Mapping[str, Any], key: str) -> int:
        """The true class index (-1 unlabelled); dataset label counts are taken once per image."""
        code = rec.get("truth")
        index = self.code_index.get(code, -1) if code is not None else -1
        if key not in self.images:
            self.images[key] = len(self.images)
            if index >= 0:
                self.label_counts[code] += 1
            elif code is not None or rec.get("truth_raw") not in (None, ""):
                self.unmapped[str(rec.get("truth_raw") or code)] += 1
        return index


def _group_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return MISSING_VALUE
    return str(value)


def _number(value: Any) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan
