"""``cloudderm cost [-c CFG] --volume N``: monthly cost and cost per 1,000 images for each provider."""

from __future__ import annotations

import argparse

from cloudderm.cli import EXIT_OK, add_config_option, add_provider_option, output_console, selected_providers
from cloudderm.pricing.section import DEFAULT_VOLUME


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cost", help="estimate monthly cost per provider at N images/month (dated list prices)"
    )
    add_config_option(p)
    add_provider_option(p)
    p.add_argument(
        "--volume",
        type=int,
        default=DEFAULT_VOLUME,
        metavar="N",
        help=f"images per month (default: {DEFAULT_VOLUME:,}, as compare assumes)",
    )
    p.add_argument(
        "--images-per-second",
        type=float,
        metavar="X",
        help="assumed throughput of each always-on endpoint (default: not assumed; run compare to measure)",
    )
    p.add_argument("--json", action="store_true", help="print the estimates as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from cloudderm.config import load_config
    from cloudderm.errors import ConfigError
    from cloudderm.factory import build_classifier
    from cloudderm.pricing import catalog_as_of, estimate

    if args.volume < 0:
        raise ConfigError("--volume must be 0 or more images per month")
    if args.images_per_second is not None and args.images_per_second <= 0:
        raise ConfigError("--images-per-second must be positive")
    config = load_config(args.config)
    estimates = []
    for name in selected_providers(config, args.providers):
        clf = build_classifier(name, config, check_policy=False)  # nothing is sent: pricing only
        try:
            estimates.append(estimate(clf, args.volume, args.images_per_second))
        finally:
            clf.close()
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in estimates], indent=2))
        return EXIT_OK
    console = output_console()
    console.print(_table(estimates, args.volume))
    for e in estimates:  # assumptions are sentences: a list reads better than a squeezed column
        console.print(f"[bold]{e.provider}[/] assumptions:")
        for assumption in e.assumptions:
            console.print(f"  - {assumption}", highlight=False)
    console.print(
        f"[dim]List prices from the cloudderm catalog as of {catalog_as_of()} (USD, on-demand, "
        "before tax and "
        "discounts); 730 hours a month. Nothing was fetched: check the source pages before buying.[/]"
    )
    return EXIT_OK


def _usd(value: float | None) -> str:
    return "[yellow]unknown[/]" if value is None else f"${value:,.2f}"


def _table(estimates, volume: int):  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title=f"projected cost at {volume:,} images/month", show_lines=True)
    for column in ("provider", "pricing basis", "projected / month", "projected / 1k images", "as of"):
        table.add_column(column, overflow="fold")
    for e in estimates:
        table.add_row(
            e.provider,
            e.basis or e.kind,
            _usd(e.monthly_usd),
            _usd(e.per_1k_usd),
            e.as_of or ("override" if e.kind != "unknown" else "-"),
        )
    return table
