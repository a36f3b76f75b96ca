"""The side-by-side terminal table (rich): one column per provider, one row per metric.

Every piece of text is a ``rich.text.Text`` so a provider or label name containing ``[brackets]`` is
printed as written, never interpreted as console markup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudderm.report.common import (
    DISCLAIMER,
    flags,
    fmt_count,
    fmt_num,
    fmt_pct,
    fmt_usd,
    metric_rows,
    pair_names,
    provider_names,
    sensitivity_rows,
    short_flags,
)

__all__ = ["render_terminal"]


def render_terminal(summary: Mapping[str, Any], console: Any) -> None:
    """Print the comparison, agreement, warnings and any run-vs-run changes to a rich Console."""
    from rich.panel import Panel
    from rich.text import Text

    console.print(
        Panel(Text(DISCLAIMER), title=Text("NOT A DIAGNOSIS", style="bold red"), border_style="red")
    )
    for notice in summary.get("notices") or []:
        console.print(Panel(Text(notice, style="bold"), border_style="red"))
    names = provider_names(summary)
    if not names:
        console.print(Text("No provider results to show."))
        return
    console.print(_comparison(summary, names))
    if summary.get("agreement"):
        console.print(_agreement(summary))
    _print_warnings(summary, names, console)
    diff = summary.get("baseline_diff")
    if isinstance(diff, Mapping) and diff.get("providers"):
        if diff.get("image_set"):  # said before any number: these changes mix data and model changes
            console.print(Text(f"WARNING: {diff['image_set']}", style="bold yellow"))
        console.print(_diff(summary, diff))
    as_of = summary.get("pricing_as_of")
    note = (
        f"Prices as of {as_of}." if as_of else "No dated price catalog: costs are unknown unless configured."
    )
    console.print(Text(note + " n/a = unknown or not computable (never 0).", style="dim"))


def _header(summary: Mapping[str, Any], name: str) -> Any:
    from rich.text import Text

    header = Text(name, style="bold")
    for flag in short_flags(summary, name):
        header.append(f"\n⚠ {flag}", style="bold red")
    return header


def _comparison(summary: Mapping[str, Any], names: list[str]) -> Any:
    from rich.table import Table
    from rich.text import Text

    providers = summary["providers"]
    dataset = summary.get("dataset") or {}
    title = Text(
        f"cloudderm comparison — {fmt_count(dataset.get('n_images'))} images, "
        f"{fmt_count(dataset.get('n_labelled'))} labelled"
    )
    table = Table(title=title, show_lines=False, header_style="bold")
    table.add_column(Text("metric"), no_wrap=True)
    for name in names:
        table.add_column(_header(summary, name), justify="right", overflow="fold")
    for row in [*metric_rows(summary), *sensitivity_rows(summary)]:
        table.add_row(Text(row.label), *(Text(row.text(providers[n])) for n in names))
    flag_cells = [Text("; ".join(flags(summary, n)) or "-", style="bold red") for n in names]
    table.add_row(Text("governance flags"), *flag_cells)
    table.add_row(
        Text("model"), *(Text(str(providers[n].get("model") or "n/a"), overflow="fold") for n in names)
    )
    return table


def _agreement(summary: Mapping[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text("agreement between providers (canonical labels, images both answered)"))
    for column in ("provider A", "provider B", "images", "agreement", "Cohen's kappa"):
        table.add_column(Text(column), justify="right" if column[0] in "iaC" else "left")
    for pair, values in summary["agreement"].items():
        a, b = pair_names(pair, values)
        cells = [_with_flag(summary, a), _with_flag(summary, b)]
        table.add_row(
            *cells,
            Text(fmt_count(values.get("n"))),
            Text(fmt_pct(values.get("agreement"))),
            Text(fmt_num(values.get("kappa"), 2)),
        )
    return table


def _with_flag(summary: Mapping[str, Any], name: str) -> Any:
    from rich.text import Text

    text = Text(name)
    if flags(summary, name):
        text.append(" ⚠", style="bold red")
    return text


def _print_warnings(summary: Mapping[str, Any], names: list[str], console: Any) -> None:
    from rich.text import Text

    for name in names:
        warnings = summary["providers"][name].get("warnings") or []
        if warnings:
            console.print(Text(f"{name}:", style="bold yellow"))
            for warning in warnings:
                console.print(Text(f"  - {warning}"))


def _diff(summary: Mapping[str, Any], diff: Mapping[str, Any]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"changes since {diff.get('baseline')}"))
    for column in (
        "provider",
        "status",
        "balanced accuracy",
        "accuracy",
        "cost / 1k",
        "fixed",
        "broke",
        "changed",
    ):
        table.add_column(Text(column))
    by = diff.get("flipped_by_provider") or {}
    for name, entry in diff["providers"].items():
        changes = entry.get("changes") or {}
        flips = by.get(name) or {}
        table.add_row(
            _with_flag(summary, name),
            Text(str(entry.get("status"))),
            Text(_delta(changes.get("balanced_accuracy"), fmt_pct)),
            Text(_delta(changes.get("accuracy"), fmt_pct)),
            Text(_delta(changes.get("cost_usd.per_1k"), fmt_usd)),
            *(Text(str(flips.get(k, 0))) for k in ("fixed", "broke", "changed")),
        )
    return table


def _delta(change: Any, fmt: Any) -> str:
    if not isinstance(change, Mapping):
        return "unchanged"
    return f"{fmt(change.get('before'))} → {fmt(change.get('after'))}"
