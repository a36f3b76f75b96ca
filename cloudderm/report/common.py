"""What every report format shares: number formatting, the metric rows, flags, and section shapes.

Why one place: the terminal table, report.md and report.html must show the same numbers with the same
names, print "n/a" (never 0) for an unknown value, and carry the same governance flag on every row where a
flagged provider's numbers appear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cloudderm.prediction import NOT_A_DIAGNOSIS

__all__ = [
    "DISCLAIMER",
    "NA",
    "MetricRow",
    "card_rows",
    "cards_by_provider",
    "cost_notes",
    "cost_section",
    "dig",
    "fact_text",
    "flags",
    "fmt_ci",
    "fmt_count",
    "fmt_ms",
    "fmt_num",
    "fmt_pct",
    "fmt_usd",
    "metric_rows",
    "pair_names",
    "provider_names",
    "risks",
    "sensitivity_rows",
]

NA = "n/a"
DISCLAIMER = (
    f"{NOT_A_DIAGNOSIS} These numbers compare software on a test set; they say nothing about any "
    "patient. A model flagged as prohibited for medical use or out-of-domain must not be used on skin "
    "images."
)
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}
_CARD_ORDER = (
    "service.service",
    "service.vendor",
    "service.region",
    "service.data_leaves_machine",
    "hipaa_eligible",
    "baa_available",
    "certifications",
    "data_retention",
    "training_use",
    "model.model_id",
    "model.intended_use",
    "model.prohibited_uses",
    "model.out_of_scope_uses",
    "model.label_domain",
    "model.training_data",
    "model.license",
    "model.known_biases",
    "model.source",
    "warnings",
)
_LIST_PREVIEW = 8


def dig(mapping: Any, path: str) -> Any:
    """``dig(d, "latency_ms.p50")`` -> d["latency_ms"]["p50"], or None when any step is missing."""
    for part in path.split("."):
        if not isinstance(mapping, Mapping):
            return None
        mapping = mapping.get(part)
    return mapping


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt_pct(value: Any, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}%" if _is_number(value) else NA


def fmt_num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else NA


def fmt_count(value: Any) -> str:
    return f"{value:,}" if _is_number(value) else NA


def fmt_ms(value: Any) -> str:
    return f"{value:,.0f} ms" if _is_number(value) else NA


def fmt_usd(value: Any) -> str:
    if not _is_number(value):
        return NA
    if value == 0:
        return "$0"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4g}"


def fmt_ci(ci: Any, as_pct: bool = True) -> str:
    """``[lo, hi]`` as "62.0–81.5%"; n/a when the interval could not be computed."""
    if not isinstance(ci, Sequence) or len(ci) != 2 or not all(_is_number(v) for v in ci):
        return NA
    if as_pct:
        return f"{ci[0] * 100:.1f}–{ci[1] * 100:.1f}%"
    return f"{ci[0]:.3f}–{ci[1]:.3f}"


@dataclass(frozen=True)
class MetricRow:
    """One line of the side-by-side comparison: a label, where the value lives, how to print it."""

    label: str
    path: str
    fmt: Callable[[Any], str]

    def text(self, provider: Mapping[str, Any]) -> str:
        return self.fmt(dig(provider, self.path))


def metric_rows(summary: Mapping[str, Any]) -> list[MetricRow]:
    """The comparison rows, in reading order; per-class sensitivity follows the taxonomy's codes."""
    rows = [
        MetricRow("images", "n", fmt_count),
        MetricRow("answered", "ok", fmt_count),
        MetricRow("errors", "errors", fmt_count),
        MetricRow("skipped", "skipped", fmt_count),
        MetricRow("scored (labelled)", "n_scored", fmt_count),
        MetricRow("answer rate (label given)", "answer_rate", fmt_pct),
        MetricRow("accuracy", "accuracy", fmt_pct),
        MetricRow("accuracy among answered", "accuracy_answered", fmt_pct),
        MetricRow("balanced accuracy", "balanced_accuracy", fmt_pct),
        MetricRow("macro-F1", "macro_f1", fmt_num),
        MetricRow("melanoma sensitivity", "melanoma_sensitivity", fmt_pct),
        MetricRow("triage sensitivity", "triage_sensitivity", fmt_pct),
        MetricRow("triage specificity", "triage_specificity", fmt_pct),
        MetricRow("calibration error (ECE)", "ece", fmt_num),
        MetricRow("out-of-domain rate", "out_of_domain_rate", fmt_pct),
        MetricRow("latency p50", "latency_ms.p50", fmt_ms),
        MetricRow("latency p95", "latency_ms.p95", fmt_ms),
        MetricRow("latency p99", "latency_ms.p99", fmt_ms),
        MetricRow("cost of this run (measured per call)", "cost_usd.total", fmt_usd),
        MetricRow("cost per 1,000 images (measured per call)", "cost_usd.per_1k", fmt_usd),
        MetricRow("cost per 1,000 images (projected at your volume)", "cost_usd.projected.per_1k", fmt_usd),
    ]
    return rows


def sensitivity_rows(summary: Mapping[str, Any]) -> list[MetricRow]:
    codes = dig(summary, "taxonomy.codes") or []
    return [MetricRow(f"sensitivity {code}", f"sensitivity.{code}", fmt_pct) for code in codes]


def provider_names(summary: Mapping[str, Any]) -> list[str]:
    return list((summary.get("providers") or {}).keys())


def pair_names(pair: str, entry: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """The two providers of an agreement entry: its ``providers`` list, else split from ``"A|B"``."""
    names = (entry or {}).get("providers")
    if isinstance(names, Sequence) and not isinstance(names, str) and len(names) == 2:
        return str(names[0]), str(names[1])
    a, _, b = pair.partition("|")
    return a, b


def cards_by_provider(summary: Mapping[str, Any]) -> dict[str, dict]:
    """Governance cards keyed by provider, whether stored as a mapping or as a list of cards."""
    cards = summary.get("governance") or {}
    if isinstance(cards, Mapping):
        return {str(k): dict(v) for k, v in cards.items() if isinstance(v, Mapping)}
    out = {}
    for card in cards:
        if isinstance(card, Mapping) and card.get("provider"):
            out[str(card["provider"])] = dict(card)
    return out


def flags(summary: Mapping[str, Any], name: str | None) -> list[str]:
    """The provider's governance flags, as the summary computed them (their one owner: ``summary.py``)."""
    if not name:
        return []
    entry = (summary.get("providers") or {}).get(name) or {}
    return list(dict.fromkeys(str(flag) for flag in entry.get("flags") or []))


def short_flags(summary: Mapping[str, Any], name: str | None) -> list[str]:
    """The flags cut to their headline ("PROHIBITED for medical use") for table cells and headers."""
    out = []
    for flag in flags(summary, name):
        for stop in (" (", ";", ":"):
            flag = flag.split(stop, 1)[0]
        out.append(flag)
    return list(dict.fromkeys(out))


def _fact_text(value: Any) -> str:
    """A card value as text: Facts show value, source and date; lists are previewed; None is unknown."""
    if value is None:
        return "unknown"
    if isinstance(value, Mapping) and "value" in value:
        text = _fact_text(value.get("value"))
        where = []
        if value.get("source"):
            where.append(f"source: {value['source']}")
        if value.get("as_of"):
            where.append(f"as of {value['as_of']}")
        return f"{text} ({'; '.join(where)})" if where else text
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        if not value:
            return "none stated"
        shown = "; ".join(_fact_text(v) for v in value[:_LIST_PREVIEW])
        more = len(value) - _LIST_PREVIEW
        return shown + (f" … ({more} more)" if more > 0 else "")
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_fact_text(v)}" for k, v in value.items())
    return str(value)


def _flatten(card: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in card.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and "value" not in value:
            yield from _flatten(value, path + ".")
        else:
            yield path, value


def card_rows(cards: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, dict[str, str]]]:
    """Governance cards side by side: (field, {provider: text}) in a stable, meaningful order."""
    flat = {name: dict(_flatten(card)) for name, card in cards.items()}
    fields = [f for f in _CARD_ORDER if any(f in c for c in flat.values())]
    skip = {"provider", "adapter", "model.labels"}
    for card in flat.values():
        fields += [f for f in card if f not in fields and f not in skip]
    return [(field, {name: _fact_text(card.get(field)) for name, card in flat.items()}) for field in fields]


def cost_section(summary: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict]] | None:
    """Split ``summary["cost"]`` into (run-wide facts, {provider: estimate}); None when absent.

    Accepts ``{"pricing_as_of", ..., "providers": {name: {...}}}`` or a bare ``{name: {...}}``.
    """
    cost = summary.get("cost")
    if not isinstance(cost, Mapping) or not cost:
        return None
    if isinstance(cost.get("providers"), Mapping):
        per = {str(k): dict(v) for k, v in cost["providers"].items() if isinstance(v, Mapping)}
        facts = {k: v for k, v in cost.items() if k != "providers"}
    else:
        per = {str(k): dict(v) for k, v in cost.items() if isinstance(v, Mapping)}
        facts = {k: v for k, v in cost.items() if not isinstance(v, Mapping)}
    facts.setdefault("pricing_as_of", summary.get("pricing_as_of"))
    return facts, per


def cost_notes(entry: Mapping[str, Any]) -> str:
    """Assumptions and sources of one estimate as one line of text."""
    parts = []
    for key in ("assumptions", "sources", "source"):
        if entry.get(key):
            parts.append(f"{key}: {_fact_text(entry[key])}")
    return " | ".join(parts) or NA


def fact_text(value: Any) -> str:
    return _fact_text(value)


def risks(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The risk register, most severe first (unknown severities last, original order kept)."""
    items = [dict(r) for r in summary.get("risks") or [] if isinstance(r, Mapping)]
    return sorted(items, key=lambda r: _SEVERITY_ORDER.get(str(r.get("severity", "")).lower(), 9))


def md_escape(text: Any) -> str:
    """Cell text that cannot break the table or inject HTML: pipes escaped, newlines flattened."""
    s = str(text).replace("\\", "\\\\").replace("|", "\\|")
    s = s.replace("<", "\\<").replace(">", "\\>")  # escaped for Markdown, still readable as text
    return " ".join(s.splitlines())
