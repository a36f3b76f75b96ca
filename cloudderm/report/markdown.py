"""report.md: the same tables as the HTML report, as GitHub-flavoured Markdown (no plots, no images)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudderm.report import tables as t
from cloudderm.report.common import (
    DISCLAIMER,
    NA,
    cards_by_provider,
    fact_text,
    flags,
    md_escape,
    provider_names,
)
from cloudderm.report.details import Details
from cloudderm.report.explain_section import explain_markdown

__all__ = ["render_markdown"]


def _table(table: t.TextTable, level: str = "##") -> list[str]:
    lines = [f"{level} {md_escape(table.title)}", ""]
    if table.note:
        lines += [md_escape(table.note), ""]
    if table.headers and table.rows:
        lines.append("| " + " | ".join(md_escape(h) for h in table.headers) + " |")
        lines.append("|" + "|".join("---" for _ in table.headers) + "|")
        for cells in table.rows:
            lines.append("| " + " | ".join(md_escape(c) for c in cells) + " |")
        lines.append("")
    elif table.headers:
        lines += ["_No rows._", ""]
    return lines


def _provider_notes(summary: Mapping[str, Any]) -> list[str]:
    """Each model's flags, intended use and warnings, next to the numbers above."""
    cards = cards_by_provider(summary)
    lines = ["## Intended use and warnings", ""]
    for name in provider_names(summary):
        entry = summary["providers"][name]
        model = (cards.get(name) or {}).get("model") or {}
        lines.append(f"### {md_escape(name)}")
        lines.append("")
        for flag in flags(summary, name):
            lines.append(f"- **⚠ {md_escape(flag)}**")
        lines.append(f"- intended use: {md_escape(fact_text(model.get('intended_use')))}")
        if model.get("prohibited_uses"):
            lines.append(f"- prohibited uses: {md_escape(fact_text(model.get('prohibited_uses')))}")
        if model.get("out_of_scope_uses"):
            lines.append(f"- out of scope: {md_escape(fact_text(model.get('out_of_scope_uses')))}")
        lines.append(f"- label domain: {md_escape(model.get('label_domain') or 'unknown')}")
        for warning in entry.get("warnings") or []:
            lines.append(f"- warning: {md_escape(warning)}")
        for warning, count in (entry.get("prediction_warnings") or {}).items():
            lines.append(f"- on {count} answers: {md_escape(warning)}")
        lines.append("")
    return lines


def render_markdown(summary: Mapping[str, Any], details: Details) -> str:
    """The whole report.md text."""
    dataset = summary.get("dataset") or {}
    lines = [
        "# cloudderm comparison report",
        "",
        f"> **NOT A DIAGNOSIS.** {md_escape(DISCLAIMER)}",
        "",
        *(line for notice in summary.get("notices") or [] for line in (f"> **{md_escape(notice)}**", "")),
        f"- dataset: {md_escape(dataset.get('path') or dataset.get('name') or NA)}; "
        f"{dataset.get('n_images', NA)} images, {dataset.get('n_labelled', NA)} labelled",
        f"- taxonomy: {md_escape((summary.get('taxonomy') or {}).get('name') or NA)}",
        f"- prices as of: {md_escape(summary.get('pricing_as_of') or 'unknown (no dated catalog entry)')}",
        "- metric definitions: docs/reports.md in the cloudderm repository",
        "",
    ]
    lines += _table(t.summary_table(summary))
    lines += _table(t.sensitivity_table(summary))
    lines += _provider_notes(summary)
    if summary.get("agreement"):
        lines += _table(t.agreement_table(summary))
    for table in t.subgroup_tables(summary):
        lines += _table(table)
    for table in t.diff_tables(summary):
        lines += _table(table)
    lines += _table(t.disagreement_table(summary, details))
    lines += explain_markdown(summary)  # only when the run was given --explain N
    confusion = t.confusion_tables(summary)
    if confusion:
        lines += ["## Confusion matrices", "", "Rows: true label; columns: predicted label.", ""]
    for table in confusion:
        lines += _table(table, "###")
    for builder in (t.cost_table, t.governance_table, t.risk_table):
        table = builder(summary)
        if table is not None:
            lines += _table(table)
    lines += [f"_{md_escape(DISCLAIMER)}_", ""]
    return "\n".join(lines)
