"""``cloudderm classify IMAGE... [-c CFG] [-p NAME]... [--json]``: one table row per image x provider."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cloudderm.cli import EXIT_FAILURES, EXIT_OK, add_config_option, add_provider_option, selected_providers


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="classify images with one or more configured providers")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_config_option(p)
    add_provider_option(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object per image x provider)")
    p.add_argument(
        "--policy",
        choices=["enforce", "warn"],
        help="override the config's policy mode: warn records violations on every prediction instead",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from cloudderm.classifier import ImageLimits
    from cloudderm.config import load_config
    from cloudderm.errors import CloudDermError, InvalidImageError
    from cloudderm.factory import build_classifier
    from cloudderm.governance.policy import with_policy_mode
    from cloudderm.images import prepare
    from cloudderm.prediction import NOT_A_DIAGNOSIS

    config = with_policy_mode(load_config(args.config), args.policy)
    names = selected_providers(config, args.providers)
    classifiers = [build_classifier(name, config) for name in names]  # policy checked before any send
    rows: list[dict[str, Any]] = []
    failures = 0
    try:
        limits = ImageLimits()
        for clf in classifiers:
            limits = limits.merge(clf.image_limits())
        for path in args.images:
            try:
                image = prepare(path, max_bytes=limits.max_bytes, max_side=limits.max_side)
            except InvalidImageError as e:
                failures += 1
                rows.extend({"image": path, "provider": c.name, "error": str(e)} for c in classifiers)
                continue
            for clf in classifiers:
                try:
                    prediction = clf.classify(image)
                    rows.append({"image": path, **prediction.model_dump(mode="json")})
                except CloudDermError as e:
                    failures += 1
                    rows.append({"image": path, "provider": clf.name, "error": str(e)})
    finally:
        for clf in classifiers:
            clf.close()
    console = Console()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        console.print(_table(rows))
        console.print(f"[dim]{NOT_A_DIAGNOSIS}[/]")
    return EXIT_FAILURES if failures else EXIT_OK


def _table(rows: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    from rich.table import Table

    table = Table(title="cloudderm classify", show_lines=False)
    for column in ("image", "provider", "top label", "score", "code", "triage", "ms", "warnings"):
        table.add_column(column, overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(row["image"], row["provider"], f"[red]error: {row['error']}[/]", "", "", "", "", "")
            continue
        if row.get("outcome", "answered") != "answered":  # a VLM abstained or answered unparseably
            what = f"[yellow]{row['outcome']}: {row.get('reason') or '-'}[/]"
            table.add_row(row["image"], row["provider"], what, "", "", "", f"{row['latency_ms']:.0f}", "")
            continue
        top = row["labels"][0] if row["labels"] else {"label": "-", "score": 0.0}
        table.add_row(
            row["image"],
            row["provider"],
            top["label"],
            f"{top['score']:.3f}",
            row["canonical"] or "[yellow]out-of-domain[/]",
            row["triage"] or "-",
            f"{row['latency_ms']:.0f}",
            "; ".join(row["warnings"]),
        )
    return table
