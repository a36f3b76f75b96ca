"""Stream ``predictions.jsonl`` into the ``summary.json`` dict of DESIGN.md §2.

Why streaming: a comparison may cover tens of thousands of images x several providers. Each line is read
once and reduced to a few numbers per answer (class codes, top score, latency, cost, an interned image id
and subgroup value ids) kept in compact ``array`` buffers; full records are never held. Every metric is
then computed from those arrays by :mod:`cloudderm.compare.metrics`.
"""

from __future__ import annotations

import json
import math
import zlib
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from cloudderm.compare import metrics as m
from cloudderm.errors import CloudDermError
from cloudderm.prediction import NOT_A_DIAGNOSIS
from cloudderm.taxonomy import Taxonomy

__all__ = [
    "MIN_SUBGROUP_N",
    "MISSING_VALUE",
    "SCHEMA_VERSION",
    "build_summary",
    "governance_flags",
    "image_key",
    "iter_records",
]

SCHEMA_VERSION = 1
MIN_SUBGROUP_N = 30
MISSING_VALUE = "(missing)"
OOD_COLUMN = "out-of-domain"
_MEDICAL_WORDS = ("medic", "diagnos", "clinic", "health", "patient")
_TOP_WARNINGS = 20


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-blank line of a predictions.jsonl file.

    Raises:
        CloudDermError: naming the file and line when a line is not a JSON object.
    """
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise CloudDermError(
                    f"{path}:{lineno}: not valid JSON ({e.msg}); regenerate the file from results.sqlite "
                    "by re-running the same compare command"
                ) from e
            if not isinstance(record, dict):
                raise CloudDermError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield record


def image_key(record: Mapping[str, Any]) -> str:
    """How an image is identified across providers and runs: its dataset name, else its hash."""
    return str(record.get("image") or record.get("sha256") or "")


def governance_flags(
    card: Mapping[str, Any] | None, warnings: Sequence[str], ood_rate: float | None
) -> list[str]:
    """Short, loud flags for a provider whose numbers must not be read as a medical result.

    A flag is raised when the model's card prohibits medical use, when its labels are not skin-lesion
    classes (per the card, or because at least half its answers fell outside the taxonomy), or when a
    standing warning already says a use is prohibited.
    """
    flags: list[str] = []
    model = (card or {}).get("model") or {}
    prohibited = [str(u) for u in model.get("prohibited_uses") or []]
    medical = [u for u in prohibited if any(w in u.lower() for w in _MEDICAL_WORDS)]
    if medical:
        flags.append(f"PROHIBITED for medical use (model card: {', '.join(medical)})")
    elif any("prohibit" in w.lower() for w in warnings):
        flags.append("PROHIBITED use per governance warning")
    measured = f"{ood_rate:.0%} of answers outside the taxonomy" if ood_rate else None
    if model.get("label_domain") == "out-of-domain":
        flags.append(
            "OUT-OF-DOMAIN model (labels are not skin-lesion classes)" + (f"; {measured}" if measured else "")
        )
    elif ood_rate is not None and ood_rate >= 0.5:
        flags.append(f"OUT-OF-DOMAIN answers: {measured}")
    return flags


@dataclass
class _Acc:
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
    skip_reasons: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)


class _Stream:
    """One pass over the jsonl, interning image names and subgroup values to small integers."""

    def __init__(self, taxonomy: Taxonomy, subgroups: Sequence[str]) -> None:
        self.codes = list(taxonomy.codes)
        self.code_index = {c: i for i, c in enumerate(self.codes)}
        self.subgroups = list(subgroups)
        self.images: dict[str, int] = {}
        self.values: dict[str, dict[str, int]] = {col: {} for col in self.subgroups}
        self.accs: dict[str, _Acc] = {}
        self.label_counts: Counter = Counter()
        self.unmapped: Counter = Counter()

    def add(self, rec: Mapping[str, Any]) -> None:
        name = str(rec.get("provider") or "")
        acc = self.accs.setdefault(name, _Acc())
        key = image_key(rec)
        truth = self._truth(rec, key)
        acc.n += 1
        if rec.get("model"):
            acc.models[str(rec["model"])] += 1
        metadata = rec.get("metadata") or {}
        values = {col: _group_value(metadata.get(col)) for col in self.subgroups}
        for col, value in values.items():
            acc.group_n.setdefault(col, Counter())[value] += 1
        status = rec.get("status")
        if status == "skipped":
            acc.skipped += 1
            acc.skip_reasons[str(rec.get("error_type") or rec.get("error") or "skipped")] += 1
            return
        if status != "ok":
            acc.errors += 1
            acc.error_types[str(rec.get("error_type") or "error")] += 1
            return
        acc.ok += 1
        acc.warnings.update({str(w) for w in rec.get("warnings") or []})
        labels = rec.get("labels") or []
        acc.image.append(self.images[key])
        acc.truth.append(truth)
        acc.pred.append(self.code_index.get(rec.get("canonical"), m.OOD))  # type: ignore[arg-type]
        acc.conf.append(float(labels[0]["score"]) if labels else math.nan)
        acc.latency.append(_number(rec.get("latency_ms")))
        acc.cost.append(_number(rec.get("cost_usd")))
        for col, value in values.items():
            ids = self.values[col]
            acc.groups.setdefault(col, array("q")).append(ids.setdefault(value, len(ids)))

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


def build_summary(
    predictions_jsonl: Path,
    *,
    providers: dict[str, dict],
    dataset: dict,
    subgroups: list[str],
    taxonomy: Taxonomy,
    seed: int = 0,
    n_boot: int = 1000,
    min_subgroup_n: int = MIN_SUBGROUP_N,
    ece_bins: int = 10,
    pricing_as_of: str | None = None,
) -> dict:
    """The summary.json dict (DESIGN.md §2) computed from a predictions.jsonl file in one pass.

    Args:
        predictions_jsonl: one line per image x provider, as the compare runner writes it.
        providers: per configured provider ``{"adapter", "model", "region", "config_hash", "warnings",
            "governance"}`` (standing warnings; governance card as a dict). Order sets the report order.
        dataset: what the runner knows of the dataset (path, labels file, ...); counts are added.
        subgroups: metadata columns to break metrics down by (``--subgroup``).
        taxonomy: the canonical label set the ``truth`` and ``canonical`` codes belong to.
        seed: seeds the bootstrap, so the same inputs always give the same intervals.
        n_boot: bootstrap resamples per subgroup metric.
        min_subgroup_n: subgroups with fewer scored images carry a warning.
        ece_bins: equal-width confidence bins for the calibration error.
        pricing_as_of: the price catalog's date; else the latest ``pricing_as_of`` among ``providers``.
    """
    stream = _Stream(taxonomy, subgroups)
    for rec in iter_records(Path(predictions_jsonl)):
        stream.add(rec)
    names = list(providers) + [p for p in stream.accs if p not in providers]
    ctx = _Context(stream, taxonomy, seed, n_boot, min_subgroup_n, ece_bins)
    out_providers = {name: ctx.provider(name, providers.get(name) or {}) for name in names}
    dates = [str(p["pricing_as_of"]) for p in providers.values() if p.get("pricing_as_of")]
    summary_dataset = dict(dataset)
    summary_dataset.setdefault("n_images", len(stream.images))
    summary_dataset.setdefault("n_labelled", sum(stream.label_counts.values()))
    summary_dataset.setdefault("label_counts", {c: stream.label_counts.get(c, 0) for c in taxonomy.codes})
    summary_dataset.setdefault("unmapped_labels", dict(stream.unmapped.most_common(_TOP_WARNINGS)))
    summary_dataset.setdefault("subgroup_columns", list(subgroups))
    cards = {name: providers[name]["governance"] for name in providers if providers[name].get("governance")}
    return {
        "schema_version": SCHEMA_VERSION,
        "disclaimer": NOT_A_DIAGNOSIS,
        "taxonomy": {
            "name": taxonomy.name,
            "codes": list(taxonomy.codes),
            "concerning": sorted(taxonomy.concerning),
        },
        "providers": out_providers,
        "agreement": ctx.agreement(names),
        "dataset": summary_dataset,
        "pricing_as_of": pricing_as_of or (max(dates) if dates else None),
        "governance": cards,
        "settings": {
            "ece_bins": ece_bins,
            "bootstrap_resamples": n_boot,
            "bootstrap_seed": seed,
            "interval": 0.95,
            "min_subgroup_n": min_subgroup_n,
        },
    }


class _Context:
    """Turns each provider's compact arrays into its summary entry."""

    def __init__(
        self, stream: _Stream, taxonomy: Taxonomy, seed: int, n_boot: int, min_n: int, bins: int
    ) -> None:
        self.stream = stream
        self.taxonomy = taxonomy
        self.k = len(stream.codes)
        self.concerning = np.array([c in taxonomy.concerning for c in stream.codes] + [False])
        self.seed, self.n_boot, self.min_n, self.bins = seed, n_boot, min_n, bins

    def _triage(self, pred: np.ndarray) -> np.ndarray:
        """1 concerning, 0 benign, -1 out of domain."""
        return np.where(pred == m.OOD, -1, self.concerning[np.where(pred == m.OOD, 0, pred)].astype(int))

    def provider(self, name: str, info: Mapping[str, Any]) -> dict:
        acc = self.stream.accs.get(name, _Acc())
        truth = np.frombuffer(acc.truth, dtype=np.int8).astype(np.int64)
        pred = np.frombuffer(acc.pred, dtype=np.int8).astype(np.int64)
        conf = np.frombuffer(acc.conf, dtype=float)
        scored = truth >= 0
        t, p = truth[scored], pred[scored]
        entry: dict[str, Any] = {
            "adapter": info.get("adapter"),
            "model": info.get("model") or (acc.models.most_common(1)[0][0] if acc.models else None),
            "region": info.get("region"),
            "config_hash": info.get("config_hash"),
            "n": acc.n,
            "ok": acc.ok,
            "errors": acc.errors,
            "skipped": acc.skipped,
            "n_scored": int(t.size),
            **self._classification(t, p, conf[scored]),
            "out_of_domain_rate": float(np.mean(pred == m.OOD)) if pred.size else None,
            "latency_ms": m.latency_percentiles(np.frombuffer(acc.latency, dtype=float)),
            "cost_usd": m.cost_summary(np.frombuffer(acc.cost, dtype=float)),
            "error_types": dict(acc.error_types.most_common()),
            "skip_reasons": dict(acc.skip_reasons.most_common()),
        }
        entry["subgroups"], small = self._subgroups(name, acc, truth, pred)
        entry["subgroup_gaps"] = _gaps(entry["subgroups"])
        standing = [str(w) for w in info.get("warnings") or []]
        entry["prediction_warnings"] = {
            w: c for w, c in acc.warnings.most_common(_TOP_WARNINGS) if w not in standing
        }
        entry["warnings"] = list(dict.fromkeys(standing + self._derived_warnings(entry, acc, small)))
        entry["flags"] = governance_flags(info.get("governance"), standing, entry["out_of_domain_rate"])
        return entry

    def _classification(self, t: np.ndarray, p: np.ndarray, conf: np.ndarray) -> dict[str, Any]:
        codes = self.stream.codes
        if t.size == 0:
            return {
                "accuracy": None,
                "balanced_accuracy": None,
                "macro_f1": None,
                "sensitivity": dict.fromkeys(codes),
                "melanoma_sensitivity": None,
                "triage_sensitivity": None,
                "triage_specificity": None,
                "ece": None,
                "calibration": None,
                "confusion": None,
            }
        sens = dict(zip(codes, m.per_class_sensitivity(t, p, self.k)))
        tri_sens, tri_spec = m.triage_rates(self.concerning[t], self._triage(p))
        known = np.isfinite(conf)
        correct = t == p
        return {
            "accuracy": m.accuracy(t, p),
            "balanced_accuracy": m.balanced_accuracy(t, p, self.k),
            "macro_f1": m.macro_f1(t, p, self.k),
            "sensitivity": sens,
            "melanoma_sensitivity": sens.get("mel"),
            "triage_sensitivity": tri_sens,
            "triage_specificity": tri_spec,
            "ece": m.expected_calibration_error(conf[known], correct[known], self.bins),
            "calibration": m.calibration_bins(conf[known], correct[known], self.bins),
            "confusion": {
                "rows": list(codes),
                "columns": [*codes, OOD_COLUMN],
                "matrix": m.confusion_matrix(t, p, self.k).tolist(),
            },
        }

    def _subgroups(
        self, name: str, acc: _Acc, truth: np.ndarray, pred: np.ndarray
    ) -> tuple[dict[str, dict[str, dict]], list[str]]:
        out: dict[str, dict[str, dict]] = {}
        small: list[str] = []
        hits = truth == pred
        tri_class = np.where(self.concerning[np.where(truth >= 0, truth, self.k)], 0, -1)
        tri_hit = self._triage(pred) == 1
        any_scored = bool((truth >= 0).any())
        for col in self.stream.subgroups:
            ids = self.stream.values[col]
            group = np.frombuffer(acc.groups.get(col, array("q")), dtype=np.int64)
            out[col] = {}
            for value, n in sorted(acc.group_n.get(col, Counter()).items()):
                members = group == ids[value] if value in ids else np.zeros(group.size, dtype=bool)
                sel = members & (truth >= 0)
                t, p = truth[sel], pred[sel]
                rng = np.random.default_rng([self.seed, zlib.crc32(f"{name}\0{col}\0{value}".encode())])
                ba = m.balanced_accuracy(t, p, self.k) if t.size else None
                ts, _ = m.triage_rates(self.concerning[t], self._triage(p)) if t.size else (None, None)
                boot = dict(n_boot=self.n_boot, rng=rng)
                row: dict[str, Any] = {
                    "n": n,
                    "n_scored": int(t.size),
                    "accuracy": m.accuracy(t, p),
                    "balanced_accuracy": ba,
                    "balanced_accuracy_ci": (
                        m.percentile_interval(m.bootstrap_mean_recall(t, hits[sel], self.k, **boot))
                        if ba is not None
                        else None
                    ),
                    "triage_sensitivity": ts,
                    "triage_sensitivity_ci": (
                        m.percentile_interval(
                            m.bootstrap_mean_recall(tri_class[sel], tri_hit[sel], 1, **boot)
                        )
                        if ts is not None
                        else None
                    ),
                    "warning": None,
                }
                if any_scored and t.size < self.min_n:
                    row["warning"] = (
                        f"only {t.size} scored image{'s' if t.size != 1 else ''} (< {self.min_n}): "
                        "the interval is wide and the gap may be noise"
                    )
                    small.append(f"{col}={value} ({t.size})")
                out[col][value] = row
        return out, small

    def _derived_warnings(self, entry: Mapping[str, Any], acc: _Acc, small: list[str]) -> list[str]:
        out: list[str] = []
        if acc.errors:
            kinds = ", ".join(f"{k} x{c}" for k, c in acc.error_types.most_common(3))
            out.append(f"{acc.errors} of {acc.n} images failed ({kinds})")
        if acc.skipped:
            reasons = ", ".join(f"{k} x{c}" for k, c in acc.skip_reasons.most_common(3))
            out.append(f"{acc.skipped} of {acc.n} images were skipped ({reasons})")
        ood = int(np.sum(np.frombuffer(acc.pred, dtype=np.int8) == m.OOD))
        if ood:
            out.append(
                f"{ood} of {acc.ok} answers were outside the {self.taxonomy.name} taxonomy (out-of-domain)"
            )
        cost = entry["cost_usd"]
        if acc.ok and cost["total"] is None:
            out.append(
                f"cost unknown for {acc.ok - cost['n_priced']} of {acc.ok} answers, so the total is left null"
            )
        if small:
            out.append(f"subgroups under {self.min_n} scored images: {', '.join(small)}")
        return out

    def agreement(self, names: Sequence[str]) -> dict[str, dict]:
        answers: dict[str, dict[int, int]] = {}
        for name in names:
            acc = self.stream.accs.get(name, _Acc())
            answers[name] = dict(zip(acc.image, acc.pred))
        out: dict[str, dict] = {}
        for a, b in combinations(names, 2):
            common = sorted(answers[a].keys() & answers[b].keys())
            x = [answers[a][i] for i in common]
            y = [answers[b][i] for i in common]
            out[f"{a}|{b}"] = {
                "n": len(common),
                "agreement": m.agreement_rate(x, y),
                "kappa": m.cohen_kappa(x, y),
            }
        return out


def _gaps(subgroups: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict]:
    """Largest minus smallest value of each subgroup metric per column, with the groups involved."""
    out: dict[str, dict] = {}
    for col, groups in subgroups.items():
        out[col] = {}
        for metric in ("balanced_accuracy", "triage_sensitivity"):
            values = {v: g[metric] for v, g in groups.items() if g[metric] is not None}
            if len(values) < 2:
                out[col][metric] = None
                continue
            lo, hi = min(values, key=values.__getitem__), max(values, key=values.__getitem__)
            out[col][metric] = {
                "gap": values[hi] - values[lo],
                "lowest": lo,
                "highest": hi,
                "small_groups": sorted(v for v in values if groups[v]["warning"]),
            }
    return out
