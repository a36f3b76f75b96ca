"""Build the ``summary.json`` dict (shape: ``cloudderm.results.Summary``) from a predictions.jsonl file.

One streaming pass (:mod:`cloudderm.compare.stream`) reduces the lines to compact per-provider arrays;
every metric is then computed from those arrays by :mod:`cloudderm.compare.metrics`, and the governance
flags that every report repeats beside a provider's numbers are decided here, once.
"""

from __future__ import annotations

import zlib
from array import array
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from cloudderm.compare import metrics as m
from cloudderm.compare.stream import MISSING_VALUE, Accumulator, PredictionStream, image_key, iter_records
from cloudderm.core import OUTCOMES
from cloudderm.prediction import NOT_A_DIAGNOSIS
from cloudderm.redact import scrub_text
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
OOD_COLUMN = "out-of-domain"
_MEDICAL_WORDS = ("medic", "diagnos", "clinic", "health", "patient")
_TOP_WARNINGS = 20
FIRST_ERROR_CHARS = 300  # enough for "HTTP 401: ..." and the vendor hint, short enough for a table


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
    """The summary.json dict (see docs/architecture.md) computed from a predictions.jsonl file in one pass.

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
    stream = PredictionStream(taxonomy, subgroups)
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
        self, stream: PredictionStream, taxonomy: Taxonomy, seed: int, n_boot: int, min_n: int, bins: int
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
        acc = self.stream.accs.get(name, Accumulator())
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
            "out_of_domain_rate": _ood_answers(pred, acc) / pred.size if pred.size else None,
            "outcomes": {o: int(acc.outcomes.get(o, 0)) for o in OUTCOMES},
            **_answer_rates(acc, truth, pred),
            "latency_ms": m.latency_percentiles(np.frombuffer(acc.latency, dtype=float)),
            "cost_usd": m.cost_summary(np.frombuffer(acc.cost, dtype=float)),
            "error_types": dict(acc.error_types.most_common()),
            "first_errors": {k: scrub_text(v)[:FIRST_ERROR_CHARS] for k, v in acc.first_errors.items()},
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
        self, name: str, acc: Accumulator, truth: np.ndarray, pred: np.ndarray
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
                if any_scored and t.size == 0:
                    row["warning"] = "no scored images: no metric for this group"
                elif any_scored and t.size < self.min_n:
                    row["warning"] = (
                        f"only {t.size} scored image{'s' if t.size != 1 else ''} (< {self.min_n}): "
                        "the interval is wide and the gap may be noise"
                    )
                    small.append(f"{col}={value} ({t.size})")
                out[col][value] = row
        return out, small

    def _derived_warnings(self, entry: Mapping[str, Any], acc: Accumulator, small: list[str]) -> list[str]:
        out: list[str] = []
        if acc.errors:
            kinds = ", ".join(f"{k} x{c}" for k, c in acc.error_types.most_common(3))
            out.append(f"{acc.errors} of {acc.n} images failed ({kinds})")
            for kind, _ in acc.error_types.most_common():  # the reason (a 401 and its hint), per kind
                first = scrub_text(acc.first_errors.get(kind, kind))[:FIRST_ERROR_CHARS]
                out.append(f"first {kind}: {first}")
        if acc.skipped:
            reasons = ", ".join(f"{k} x{c}" for k, c in acc.skip_reasons.most_common(3))
            out.append(f"{acc.skipped} of {acc.n} images were skipped ({reasons})")
        ood = _ood_answers(np.frombuffer(acc.pred, dtype=np.int8), acc)
        unanswered = acc.ok - acc.outcomes.get("answered", acc.ok)
        if unanswered:
            kinds = ", ".join(f"{k} x{c}" for k, c in acc.outcomes.items() if k != "answered" and c)
            out.append(
                f"{unanswered} of {acc.ok} answers gave no usable label ({kinds}); they count as wrong"
            )
        if ood:
            out.append(
                f"{ood} of {acc.ok} answers were outside the {self.taxonomy.name} taxonomy (out-of-domain)"
            )
        cost = entry["cost_usd"]
        if acc.ok and cost["total"] is None:
            out.append(
                f"measured per-call cost unknown for {acc.ok - cost['n_priced']} of {acc.ok} answers, so the "
                "run total is left null (an endpoint billed per hour has no per-call cost: see projected)"
            )
        if small:
            out.append(f"subgroups under {self.min_n} scored images: {', '.join(small)}")
        return out

    def agreement(self, names: Sequence[str]) -> dict[str, dict]:
        """Agreement and kappa for every pair, matched on image ids with sorted arrays (no dicts)."""
        answers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in names:
            acc = self.stream.accs.get(name, Accumulator())
            ids, first = np.unique(np.frombuffer(acc.image, dtype=np.int64), return_index=True)
            answers[name] = (ids, np.frombuffer(acc.pred, dtype=np.int8)[first])
        out: dict[str, dict] = {}
        for a, b in combinations(names, 2):
            (ids_a, pred_a), (ids_b, pred_b) = answers[a], answers[b]
            _, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
            x, y = pred_a[ia], pred_b[ib]
            out[f"{a}|{b}"] = {
                "providers": [a, b],
                "n": int(ia.size),
                "agreement": m.agreement_rate(x, y),
                "kappa": m.cohen_kappa(x, y),
            }
        return out


def _answer_rates(acc: Accumulator, truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """How often a label came back, and accuracy among those answers only.

    ``accuracy`` (above) counts an abstention or unparseable answer as wrong; ``accuracy_answered`` leaves
    them out. Both are needed: a model that abstains on every hard image looks good by the second alone.
    """
    answered = np.frombuffer(acc.answered, dtype=np.int8).astype(bool)
    if answered.size != pred.size:  # records from before outcomes existed: every ok answer answered
        answered = np.ones(pred.size, dtype=bool)
    scored = (truth >= 0) & answered
    return {
        "answer_rate": float(answered.mean()) if answered.size else None,
        "n_answered_scored": int(scored.sum()),
        "accuracy_answered": m.accuracy(truth[scored], pred[scored]) if scored.any() else None,
    }


def _ood_answers(pred: np.ndarray, acc: Accumulator) -> int:
    """Answers outside the taxonomy; abstentions and unparseable answers have no label, so are not OOD."""
    unanswered = acc.ok - acc.outcomes.get("answered", acc.ok)
    return int(np.sum(pred == m.OOD)) - unanswered


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
