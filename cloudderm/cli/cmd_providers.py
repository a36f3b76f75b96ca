"""``cloudderm providers [-c CFG]``: what each configured provider is, where data goes, what it costs."""

from __future__ import annotations

import argparse

from cloudderm.cli import EXIT_OK, add_config_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("providers", help="list configured providers with pricing and governance facts")
    add_config_option(p)
    p.add_argument("--json", action="store_true", help="print the governance cards as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from cloudderm.config import load_config
    from cloudderm.factory import build_classifier
    from cloudderm.governance.policy import policy_findings

    config = load_config(args.config)
    cards = []
    table = Table(title=f"providers in {config.source}")
    for column in ("name", "adapter", "model", "service", "region", "data leaves", "policy", "warnings"):
        table.add_column(column, overflow="fold")
    for name in config.providers:
        clf = build_classifier(name, config, check_policy=False)
        try:
            card = clf.governance
            findings = policy_findings(clf, config.policy)
        finally:
            clf.close()
        cards.append(card.model_dump(mode="json"))
        table.add_row(
            name,
            card.adapter,
            card.model.model_id or "-",
            card.service.service,
            card.service.region or "unknown",
            "yes" if card.service.data_leaves_machine else "no",
            "[green]ok[/]" if not findings else "[red]" + "; ".join(f"{r}: {f}" for r, f in findings) + "[/]",
            "; ".join(card.warnings),
        )
    if args.json:
        print(json.dumps(cards, indent=2))
    else:
        Console().print(table)
    return EXIT_OK
