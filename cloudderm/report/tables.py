"""The report's tables as plain text cells, built once and rendered by both Markdown and HTML.

Why: report.md and report.html must never disagree on a number or forget a flag. Each builder returns a
:class:`TextTable` whose rows say whether they carry a flagged provider's numbers; the renderers only
decide how to escape and style.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloudderm.report.common import (
    NA,
    card_rows,
    cards_by_provider,
    cost_notes,
    cost_section,
    dig,
    flags,
    fmt_ci,
    fmt_count,
    fmt_ms,
    fmt_num,
    fmt_pct,
    fmt_usd,
    pair_names,
    provider_names,
    risks,
    short_flags,
)
from cloudderm.report.details import Details

__all__ = [
    "TextTable",
    "agreement_table",
    "confusion_tables",
    "cost_table",
    "diff_tables",
    "disagreement_table",
    "governance_table",
    "provider_cell",
    "risk_table",
    "sensitivity_table",
    "subgroup_tables",
    "summary_table",
]


@dataclass
class TextTable:
    """Headers, rows of text cells, and which rows show a flagged provider."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    flagged: list[bool] = field(default_factory=list)
    note: str | None = None
    key: str | None = None  # what the table is about (e.g. the subgroup column), for renderers

    def add(self, cells: list[str], flagged: bool = False) -> None:
        self.rows.append(cells)
        self.flagged.append(flagged)


def provider_cell(summary: Mapping[str, Any], name: str | None) -> str:
    """The provider's name with the headline of each governance flag beside it."""
    if not name:
        return "all providers"
    found = short_flags(summary, name)
    return f"{name} ⚠ {'; '.join(found)}" if found else name


def _is_flagged(summary: Mapping[str, Any], *names: str | None) -> bool:
    return any(flags(summary, n) for n in names if n)


def summary_table(summary: Mapping[str, Any]) -> TextTable:
    table = TextTable(
        "Comparison",
        [
            "provider",
            "model",
            "images",
            "answered",
            "errors",
            "answer rate",
            "accuracy",
            "acc. answered",
            "balanced acc.",
            "macro-F1",
            "melanoma sens.",
            "triage sens.",
            "triage spec.",
            "ECE",
            "out-of-domain",
            "p50",
            "p95",
            "$/1k measured",
            "$/1k projected",
        ],
        note="n/a = unknown or not computable (never 0). Accuracy metrics use labelled images; an abstention "
        "or unparseable answer counts as wrong, except in 'acc. answered' (answered images only). "
        "Cost per 1,000 images: measured = what this run's calls cost (unknown for always-on endpoints, "
        "which bill per hour); projected = at your monthly volume, see Cost estimates.",
    )
    for name in provider_names(summary):
        p = summary["providers"][name]
        table.add(
            [
                provider_cell(summary, name),
                str(p.get("model") or NA),
                fmt_count(p.get("n")),
                fmt_count(p.get("ok")),
                fmt_count(p.get("errors")),
                fmt_pct(p.get("answer_rate")),
                fmt_pct(p.get("accuracy")),
                fmt_pct(p.get("accuracy_answered")),
                fmt_pct(p.get("balanced_accuracy")),
                fmt_num(p.get("macro_f1")),
                fmt_pct(p.get("melanoma_sensitivity")),
                fmt_pct(p.get("triage_sensitivity")),
                fmt_pct(p.get("triage_specificity")),
                fmt_num(p.get("ece")),
                fmt_pct(p.get("out_of_domain_rate")),
                fmt_ms(dig(p, "latency_ms.p50")),
                fmt_ms(dig(p, "latency_ms.p95")),
                fmt_usd(dig(p, "cost_usd.per_1k")),
                fmt_usd(dig(p, "cost_usd.projected.per_1k")),
            ],
            _is_flagged(summary, name),
        )
    return table


def sensitivity_table(summary: Mapping[str, Any]) -> TextTable:
    codes = dig(summary, "taxonomy.codes") or []
    table = TextTable("Per-class sensitivity", ["provider", *codes, "p99 latency", "run cost (measured)"])
    for name in provider_names(summary):
        p = summary["providers"][name]
        sens = p.get("sensitivity") or {}
        cells = [fmt_pct(sens.get(c)) for c in codes]
        cells += [fmt_ms(dig(p, "latency_ms.p99")), fmt_usd(dig(p, "cost_usd.total"))]
        table.add([provider_cell(summary, name), *cells], _is_flagged(summary, name))
    return table


def subgroup_tables(summary: Mapping[str, Any]) -> list[TextTable]:
    columns = dig(summary, "dataset.subgroup_columns") or []
    if not columns:
        columns = sorted({c for p in summary.get("providers", {}).values() for c in p.get("subgroups") or {}})
    out = []
    for col in columns:
        table = TextTable(
            f"Subgroup: {col}",
            [
                "provider",
                col,
                "images",
                "scored",
                "balanced acc.",
                "bal. acc. 95% CI",
                "triage sens.",
                "triage sens. 95% CI",
                "warning",
            ],
            note="Intervals: percentile bootstrap over the subgroup's scored images (seeded).",
            key=col,
        )
        for name in provider_names(summary):
            groups = dig(summary["providers"][name], f"subgroups.{col}") or {}
            for value, g in groups.items():
                table.add(
                    [
                        provider_cell(summary, name),
                        str(value),
                        fmt_count(g.get("n")),
                        fmt_count(g.get("n_scored")),
                        fmt_pct(g.get("balanced_accuracy")),
                        fmt_ci(g.get("balanced_accuracy_ci")),
                        fmt_pct(g.get("triage_sensitivity")),
                        fmt_ci(g.get("triage_sensitivity_ci")),
                        str(g.get("warning") or ""),
                    ],
                    _is_flagged(summary, name),
                )
        out.append(table)
    return out


def agreement_table(summary: Mapping[str, Any]) -> TextTable:
    table = TextTable(
        "Agreement between providers",
        ["provider A", "provider B", "images both answered", "agreement", "Cohen's kappa"],
        note="Canonical labels; an out-of-domain answer counts as its own label.",
    )
    for pair, v in (summary.get("agreement") or {}).items():
        a, b = pair_names(pair, v)
        table.add(
            [
                provider_cell(summary, a),
                provider_cell(summary, b),
                fmt_count(v.get("n")),
                fmt_pct(v.get("agreement")),
                fmt_num(v.get("kappa"), 2),
            ],
            _is_flagged(summary, a, b),
        )
    return table


def confusion_tables(summary: Mapping[str, Any]) -> list[TextTable]:
    out = []
    for name in provider_names(summary):
        confusion = summary["providers"][name].get("confusion")
        if not confusion:
            continue
        title = f"Confusion matrix: {provider_cell(summary, name)}"
        table = TextTable(title, ["true \\ predicted", *confusion["columns"]])
        for label, counts in zip(confusion["rows"], confusion["matrix"]):
            table.add([label, *(str(c) for c in counts)], _is_flagged(summary, name))
        out.append(table)
    return out


def cost_table(summary: Mapping[str, Any]) -> TextTable | None:
    """One row per provider: the projection at the stated volume beside what the run's calls cost.

    The figures come from ``providers.*.cost_usd`` (measured and ``projected``), the reasoning (basis,
    instances, assumptions, sources) from ``summary["cost"]``: each figure has one owner.
    """
    section = cost_section(summary)
    if section is None:
        return None
    facts, per = section
    volume = dig(summary, "volume.images_per_month")
    bits = [f"projected at {int(volume):,} images/month" if isinstance(volume, (int, float)) else ""]
    bits.append(f"prices as of {facts['pricing_as_of']}" if facts.get("pricing_as_of") else "")
    table = TextTable(
        "Cost estimates",
        [
            "provider",
            "pricing basis",
            "projected / month",
            "projected / 1k images",
            "measured / 1k (this run)",
            "utilisation",
            "assumptions and sources",
        ],
        note="; ".join(b for b in bits if b) or None,
    )
    for name, entry in per.items():
        cost = dig(summary, f"providers.{name}.cost_usd") or {}
        projected = cost.get("projected") or {}
        table.add(
            [
                provider_cell(summary, name),
                str(projected.get("basis") or entry.get("basis") or entry.get("kind") or NA),
                fmt_usd(projected.get("monthly")),
                fmt_usd(projected.get("per_1k")),
                fmt_usd(cost.get("per_1k")),
                fmt_pct(entry.get("utilisation")),
                cost_notes(entry),
            ],
            _is_flagged(summary, name),
        )
    return table


def governance_table(summary: Mapping[str, Any]) -> TextTable | None:
    cards = cards_by_provider(summary)
    if not cards:
        return None
    names = list(cards)
    table = TextTable(
        "Governance cards",
        ["fact", *(provider_cell(summary, n) for n in names)],
        note="Each fact carries its source and date where one exists; unknown means nobody could source it.",
    )
    for fact, values in card_rows(cards):
        table.add([fact, *(values[n] for n in names)], False)
    return table


def risk_table(summary: Mapping[str, Any]) -> TextTable | None:
    items = risks(summary)
    if not items:
        return None
    table = TextTable("Risk register", ["severity", "risk", "provider", "detail", "mitigation"])
    for r in items:
        provider = r.get("provider")
        table.add(
            [
                str(r.get("severity") or NA),
                str(r.get("risk") or NA),
                provider_cell(summary, provider),
                str(r.get("detail") or ""),
                str(r.get("mitigation") or ""),
            ],
            _is_flagged(summary, provider),
        )
    return table


def disagreement_table(summary: Mapping[str, Any], details: Details) -> TextTable:
    names = provider_names(summary)
    shown = len(details.disagreements)
    note = (
        f"{details.n_disagreements} of {details.n_compared} images answered by two or more providers got "
        f"different answers; showing {shown}. ✓ = matches the label."
    )
    table = TextTable(
        "Per-image disagreements", ["image", "label", *(provider_cell(summary, n) for n in names)]
    )
    table.note = note
    for row in details.disagreements:
        cells = [row.key, row.truth or NA]
        for name in names:
            answer = row.answers.get(name)
            if answer is None:
                cells.append("—")
            elif answer.status != "ok":
                cells.append(answer.status)
            else:
                mark = " ✓" if row.truth and answer.canonical == row.truth else ""
                score = f" {answer.score:.2f}" if isinstance(answer.score, (int, float)) else ""
                code = answer.canonical or f"out-of-domain: {answer.label}"
                cells.append(f"{code}{score}{mark}")
        table.add(cells, _is_flagged(summary, *names))
    return table


def diff_tables(summary: Mapping[str, Any]) -> list[TextTable]:
    diff = summary.get("baseline_diff")
    if not isinstance(diff, Mapping):
        return []
    if diff.get("error"):
        return [TextTable(f"Changes since {diff.get('baseline')}", [], note=str(diff["error"]))]
    by = diff.get("flipped_by_provider") or {}
    changes = TextTable(
        f"Changes since {diff.get('baseline')}",
        ["provider", "status", "metric changes", "fixed", "broke", "changed"],
        note=(f"{diff['image_set']}. " if diff.get("image_set") else "")
        + f"{diff.get('flipped_total', 0)} answers flipped in total.",
    )
    for name, entry in (diff.get("providers") or {}).items():
        moved = [
            f"{metric}: {_fmt_any(c.get('before'))} → {_fmt_any(c.get('after'))}"
            for metric, c in (entry.get("changes") or {}).items()
        ]
        if entry.get("model"):
            moved.insert(0, f"model: {entry['model'].get('before')} → {entry['model'].get('after')}")
        if entry.get("config_changed"):
            moved.insert(0, "provider settings changed")
        flips = by.get(name) or {}
        changes.add(
            [
                provider_cell(summary, name),
                str(entry.get("status")),
                "; ".join(moved) or "none",
                *(str(flips.get(k, 0)) for k in ("fixed", "broke", "changed")),
            ],
            _is_flagged(summary, name),
        )
    flipped = TextTable("Flipped images", ["image", "provider", "label", "before", "after", "direction"])
    for f in diff.get("flipped") or []:
        flipped.add(
            [
                str(f.get("image")),
                provider_cell(summary, f.get("provider")),
                str(f.get("truth") or NA),
                str(f.get("before")),
                str(f.get("after")),
                str(f.get("direction")),
            ],
            _is_flagged(summary, f.get("provider")),
        )
    if not flipped.rows:
        flipped.note = "No image changed its answer."
    return [changes, flipped]


def _fmt_any(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return NA if value is None else str(value)
