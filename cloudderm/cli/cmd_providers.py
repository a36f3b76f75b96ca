"""``cloudderm providers [-c CFG]``: each provider's governance card, pricing and policy status.

Nothing is sent: classifiers are built without the policy check (so a refused provider can still be shown
with the reason) and closed again.
"""

from __future__ import annotations

import argparse
from typing import Any

from cloudderm.cli import EXIT_OK, add_config_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("providers", help="list configured providers with pricing and governance facts")
    add_config_option(p)
    p.add_argument("--json", action="store_true", help="print the governance cards as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console

    from cloudderm.config import load_config
    from cloudderm.factory import build_classifier
    from cloudderm.governance.policy import policy_findings
    from cloudderm.pricing import catalog_as_of, describe_pricing

    config = load_config(args.config)
    cards: list[dict[str, Any]] = []
    console = Console()
    for name in config.providers:
        clf = build_classifier(name, config, check_policy=False)
        try:
            card = clf.governance
            findings = policy_findings(clf, config.policy)
            pricing = describe_pricing(clf)
        finally:
            clf.close()
        dumped = card.model_dump(mode="json")
        dumped["pricing"] = pricing
        dumped["policy_findings"] = [{"rule": r, "fact": f} for r, f in findings]
        cards.append(dumped)
        if not args.json:
            console.print(_card_table(card, pricing, findings))
    if args.json:
        print(json.dumps(cards, indent=2))
    else:
        console.print(
            f"[dim]Vendor facts and prices are dated and sourced (price catalog as of {catalog_as_of()}); "
            "'unknown' means no source was found. `cloudderm providers --json` lists every source URL.[/]"
        )
    return EXIT_OK


def _fact(fact: Any) -> str:
    from rich.markup import escape

    if fact is None:
        return "[yellow]unknown[/]"
    value = fact.value
    if isinstance(value, bool):
        value = "yes" if value else "no"
    elif isinstance(value, list):
        value = ", ".join(str(v) for v in value)
    return f"{escape(str(value))} [dim](as of {fact.as_of}; {escape(str(fact.source))})[/]"


def _card_table(card: Any, pricing: str, findings: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    from rich.markup import escape as e
    from rich.table import Table

    local = not card.service.data_leaves_machine
    na = "[dim]n/a: images stay on this machine[/]"
    model = card.model
    table = Table(title=f"{card.provider} ({card.adapter})", show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    rows = [
        ("model", e(model.model_id or "-")),
        ("service", f"{e(card.service.service)} [dim]({e(card.service.vendor)})[/]"),
        (
            "region",
            e(card.service.region) if card.service.region else ("local" if local else "[yellow]unknown[/]"),
        ),
        ("data leaves machine", "yes" if card.service.data_leaves_machine else "no"),
        ("HIPAA eligible", na if local else _fact(card.hipaa_eligible)),
        ("BAA available", na if local else _fact(card.baa_available)),
        ("certifications", na if local else _fact(card.certifications)),
        ("data retention", na if local else _fact(card.data_retention)),
        ("training use", na if local else _fact(card.training_use)),
        ("intended use", e(model.intended_use) if model.intended_use else "[yellow]unknown[/]"),
        ("out of scope", e(", ".join(model.out_of_scope_uses)) or "-"),
        ("prohibited uses", e(", ".join(model.prohibited_uses)) or "-"),
        ("label domain", model.label_domain),
        ("licence", e(model.license) if model.license else "[yellow]unknown[/]"),
        ("model facts from", e(model.source or "adapter")),
        ("pricing", e(pricing)),
        (
            "policy",
            "[green]ok[/]"
            if not findings
            else "[red]" + e("; ".join(f"{r}: {f}" for r, f in findings)) + "[/]",
        ),
        ("warnings", e("; ".join(card.warnings)) or "-"),
    ]
    for field, value in rows:
        table.add_row(field, value)
    return table
